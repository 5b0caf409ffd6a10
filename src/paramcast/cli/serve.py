"""``paramcast serve``: run the cloud service (uvicorn, or Ray Serve replicas) for one method; mint device tokens.

    paramcast serve --issue-token phone-17 --token-file tokens.json     # prints the token once
    paramcast serve --checkpoint runs/train/checkpoint.safetensors --token-file tokens.json \\
                    --store runs/history.sqlite --port 8000
    paramcast serve --engine ray --replicas 4 --checkpoint ... --store postgresql://paramcast@db/paramcast

Every flag can also come from a ``PARAMCAST_*`` environment variable (shown in ``--help``). The limits,
their defaults and the answer beyond each are tabled in docs/service.md ("Limits and quotas").
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

__all__ = ["serve"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
TRACE = 5  # uvicorn's level below DEBUG; it names it only once a uvicorn.Config exists


def _method_kwargs(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise typer.BadParameter(f"--method-arg {item!r} must be key=value (value as JSON, else a string)")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _shape(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        n, c = (int(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"--upload-shape {text!r} must be N,C (e.g. 1,192)") from None
    return n, c


def serve(
    method: str = typer.Option(None, envvar="PARAMCAST_METHOD",
                               help="registered method (default: the checkpoint's, else cdc-mmpg untrained)"),
    checkpoint: Path = typer.Option(None, envvar="PARAMCAST_CHECKPOINT",
                                    help="`paramcast train`'s checkpoint.safetensors (names its method)"),
    method_arg: list[str] = typer.Option([], "--method-arg", help="key=value for the method's constructor (repeatable)"),
    plugin: list[str] = typer.Option([], envvar="PARAMCAST_PLUGINS", help="module to import first, e.g. one that registers a method"),
    host: str = typer.Option("127.0.0.1", envvar="PARAMCAST_HOST"),
    port: int = typer.Option(8000, envvar="PARAMCAST_PORT"),
    token_file: Path = typer.Option(None, envvar="PARAMCAST_TOKEN_FILE", help="JSON file of device token digests"),
    issue_token: str = typer.Option(None, "--issue-token", metavar="DEVICE", help="mint a token for DEVICE into --token-file, print it, exit"),
    store: str = typer.Option(None, envvar="PARAMCAST_STORE",
                              help="history store, an SQLite file or a postgresql:// URL (enables POST /v1/history)"),
    max_batch: int = typer.Option(32, envvar="PARAMCAST_MAX_BATCH", help="uploads per generator call (1 = no batching)"),
    max_wait_ms: float = typer.Option(2.0, envvar="PARAMCAST_MAX_WAIT_MS", help="wait for a batch to fill"),
    encode_threads: int = typer.Option(1, envvar="PARAMCAST_ENCODE_THREADS",
                                        help="threads encoding answers; 0 = no worker threads: batch, generate and encode "
                                             "on the event loop (more req/s, a longer p99 tail: docs/service.md)"),
    max_upload_bytes: int = typer.Option(1 << 20, envvar="PARAMCAST_MAX_UPLOAD_BYTES"),
    max_history_bytes: int = typer.Option(16 << 20, envvar="PARAMCAST_MAX_HISTORY_BYTES"),
    upload_shape: str = typer.Option(None, envvar="PARAMCAST_UPLOAD_SHAPE", help="N,C every upload must have, e.g. 1,192"),
    task: str = typer.Option(None, envvar="PARAMCAST_TASK", help="task uploads must name (default: the method's)"),
    model_version: str = typer.Option(None, envvar="PARAMCAST_MODEL_VERSION", help="model version uploads must name"),
    num_labels: int = typer.Option(None, envvar="PARAMCAST_NUM_LABELS",
                                   help="history labels must lie in [-1, N) (default: the method's answer count)"),
    limit_concurrency: int = typer.Option(512, envvar="PARAMCAST_LIMIT_CONCURRENCY",
                                          help="open connections (and requests in flight) before answering 503; 0 = no limit"),
    timeout_headers: float = typer.Option(10.0, envvar="PARAMCAST_TIMEOUT_HEADERS",
                                          help="seconds a connection has to send complete request headers"),
    timeout_body: float = typer.Option(60.0, envvar="PARAMCAST_TIMEOUT_BODY",
                                       help="seconds a request has to send its whole body (then 408)"),
    timeout_keep_alive: int = typer.Option(5, envvar="PARAMCAST_TIMEOUT_KEEP_ALIVE",
                                           help="seconds an idle keep-alive connection stays open"),
    max_abs_feature: float = typer.Option(1e4, envvar="PARAMCAST_MAX_ABS_FEATURE",
                                          help="uploads with |feature| above this are refused (422)"),
    history_posts_per_minute: int = typer.Option(60, envvar="PARAMCAST_HISTORY_POSTS_PER_MINUTE",
                                                 help="per-device history posts per minute (then 429)"),
    history_bytes_per_hour: int = typer.Option(64 << 20, envvar="PARAMCAST_HISTORY_BYTES_PER_HOUR",
                                               help="per-device history body bytes per hour (then 429)"),
    docs: bool = typer.Option(True, "--docs/--no-docs", envvar="PARAMCAST_DOCS",
                              help="serve /docs and /openapi.json (Swagger UI assets are local, no CDN)"),
    protect_meta: bool = typer.Option(False, "--protect-meta", envvar="PARAMCAST_PROTECT_META",
                                      help="/docs, /openapi.json, /metrics and /v1/info need a device token"),
    threads: int = typer.Option(0, envvar="PARAMCAST_THREADS", help="torch threads (0 = torch's default)"),
    static_answer: Path = typer.Option(None, "--static-answer", hidden=True,
                                       help="benchmark ceiling: answer every valid upload with this file's bytes"),
    log_level: str = typer.Option("info", envvar="PARAMCAST_LOG_LEVEL", help=" | ".join(LOG_LEVELS)),
    congestion_control: str = typer.Option(
        "auto", envvar="PARAMCAST_CONGESTION_CONTROL",
        help="TCP congestion control of the listening socket (and every accepted one): 'auto' = bbr where "
             "the kernel offers it, else the system default; 'system' = leave it; or a name, e.g. cubic"),
    engine: str = typer.Option("uvicorn", envvar="PARAMCAST_ENGINE",
                               help="uvicorn (one process) | ray (Ray Serve replicas; docs/scale.md)"),
    replicas: int = typer.Option(1, envvar="PARAMCAST_REPLICAS", help="with --engine ray: replicas of the app"),
    run_dir: Path = typer.Option(Path("runs/serve"), envvar="PARAMCAST_RUN_DIR",
                                 help="with --engine ray: where a local Ray keeps its session files and auth token"),
    ray_address: str = typer.Option(None, envvar="PARAMCAST_RAY_ADDRESS",
                                    help="with --engine ray: join this Ray cluster (e.g. auto) instead of starting one"),
    ray_batching: str = typer.Option("replica", envvar="PARAMCAST_RAY_BATCHING",
                                     help="with --engine ray: replica (paramcast's batcher in each replica) | "
                                          "serve (Ray Serve's @serve.batch); docs/scale.md"),
) -> None:
    """Serve a method over HTTP: POST /v1/adapt, POST /v1/history, GET /v1/info, /healthz, /metrics, /docs."""
    from paramcast.cloud import Batching, Limits
    from paramcast.cloud import issue_token as mint
    from paramcast.cloud.store import StoreUnavailable

    log_level = log_level.lower()
    if log_level not in LOG_LEVELS:
        raise typer.BadParameter(f"--log-level {log_level!r} must be one of {' | '.join(LOG_LEVELS)}")

    if issue_token is not None:
        if token_file is None:
            raise typer.BadParameter("--issue-token needs --token-file (or PARAMCAST_TOKEN_FILE)")
        token = mint(token_file, issue_token)
        typer.echo(token)
        typer.echo(f"token for {issue_token} stored (as a sha256 digest) in {token_file}; it is shown only now", err=True)
        return
    from dataclasses import asdict, replace

    from paramcast.cloud.spec import AppSpec, build_app

    logging.addLevelName(TRACE, "TRACE")
    logging.basicConfig(level=TRACE if log_level == "trace" else log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if engine not in ("uvicorn", "ray"):
        raise typer.BadParameter(f"--engine {engine!r} must be uvicorn or ray")
    if ray_batching != "replica" and engine != "ray":
        raise typer.BadParameter(f"--ray-batching {ray_batching!r} needs --engine ray (@serve.batch runs in Ray Serve only)")
    if ray_batching == "serve" and encode_threads == 0:
        raise typer.BadParameter("--encode-threads 0 runs everything on the event loop with paramcast's batcher; "
                                 "--ray-batching serve generates on Ray's own thread: use --encode-threads >= 1")
    try:
        limits = Limits(max_upload_bytes=max_upload_bytes, max_history_bytes=max_history_bytes,
                        max_abs_feature=max_abs_feature, body_timeout_s=timeout_body,
                        history_posts_per_minute=history_posts_per_minute, history_bytes_per_hour=history_bytes_per_hour)
        spec = AppSpec(method=method, checkpoint=str(checkpoint) if checkpoint else None,
                       method_kwargs=_method_kwargs(method_arg), plugins=tuple(plugin), threads=threads,
                       app_kwargs={"store_path": store, "tokens": str(token_file) if token_file else None,
                                   "batching": asdict(Batching(max_batch, max_wait_ms, encode_threads)), "limits": asdict(limits),
                                   "upload_shape": _shape(upload_shape), "task": task, "model_version": model_version,
                                   "num_labels": num_labels, "docs": docs, "protect_meta": protect_meta,
                                   **({"static_answer": static_answer.read_bytes()} if static_answer else {})},
                       batcher=ray_batching)
        if engine == "ray":  # Ray's HTTP proxy owns its socket: --congestion-control applies to uvicorn only
            _serve_ray(spec, replicas, host, port, run_dir, ray_address, limit_concurrency, timeout_keep_alive)
            return
        from paramcast.cloud.server import server_config
        from paramcast.cloud.tcp import listening_socket

        try:  # made before the app, so /v1/info reports what the socket really uses
            sock, cc = listening_socket(host, port, congestion_control)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--congestion-control") from None
        try:
            app = build_app(replace(spec, app_kwargs={**spec.app_kwargs, "congestion_control": cc.as_dict()}))
        except BaseException:
            sock.close()
            raise
        config = server_config(app, host=host, port=port, limit_concurrency=limit_concurrency or None,
                               timeout_headers_s=timeout_headers, timeout_keep_alive_s=timeout_keep_alive,
                               log_level=log_level)
    except (ValueError, FileNotFoundError, StoreUnavailable) as exc:
        raise typer.BadParameter(str(exc)) from None
    import uvicorn

    logging.getLogger("paramcast.cloud").info("serving %s on http://%s:%d with %s", app.state.method.name, host,
                                              sock.getsockname()[1], cc.describe())
    uvicorn.Server(config).run(sockets=[sock])  # uvicorn serves on the pre-configured socket


def _serve_ray(spec, replicas: int, host: str, port: int, run_dir: Path, address: str | None,
               max_ongoing: int, keep_alive_s: int) -> None:
    """Deploy on Ray Serve and block until SIGINT / SIGTERM, then shut Serve (and a local Ray) down."""
    import signal
    import threading

    try:
        from paramcast.cloud import rayserve
    except ImportError as exc:
        raise typer.BadParameter(f"--engine ray needs Ray Serve ({exc}): pip install 'paramcast[ray]'") from None
    if replicas < 1:
        raise typer.BadParameter(f"--replicas must be >= 1, got {replicas}")
    from dataclasses import replace

    from paramcast.cloud.spec import build_app

    build_app(replace(spec, threads=1)).state.close()  # bad flags fail here, with the usual message, not in Ray
    rayserve.start_ray(run_dir, address=address)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        url = rayserve.deploy(spec, replicas=replicas, host=host, port=port, max_ongoing=max_ongoing or 100_000,
                              keep_alive_s=keep_alive_s)
        logging.getLogger("paramcast.cloud").warning("serving on %s with %d Ray Serve replicas", url, replicas)
        stop.wait()
    finally:
        rayserve.shutdown()

if __name__ == "__main__":
    typer.run(serve)
