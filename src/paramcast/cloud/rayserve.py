"""``paramcast serve --engine ray``: the same FastAPI app as a Ray Serve deployment of N replicas.

Each replica builds the app itself from an :class:`~paramcast.cloud.spec.AppSpec` (a plain, picklable recipe: method name or
checkpoint, plugins, token file, store, limits, batching) with ``build_app``, exactly as the
uvicorn engine does, so routes, refusals, auth and metrics are the same code. Ray Serve's HTTP proxy
(one per node) spreads requests over the replicas and restarts a replica that dies.

    start_ray(run_dir)                      # a local Ray instance (or address="auto": join a cluster)
    url = deploy(spec, replicas=2, host="127.0.0.1", port=8000)
    ... ; shutdown()

Decisions (docs/scale.md):

* **Batching**: by default (``AppSpec.batcher = "replica"``) the existing
  :class:`~paramcast.cloud.batching.DynamicBatcher` inside each replica: it is the same code path the
  uvicorn engine measures. ``batcher="serve"`` (``paramcast serve --ray-batching serve``) uses Ray
  Serve's ``@serve.batch`` instead (:class:`~paramcast.cloud.serve_batch.ServeBatcher`); docs/scale.md
  compares the two. Either way Ray's ``max_ongoing_requests`` (set here to ``max_ongoing`` per replica,
  not Serve's default of 5, which caps a batch at 5) lets enough requests reach a replica to fill its batches.
* **State on disk**: Ray's session files go to ``<run_dir>/ray`` (not /tmp/ray) and its cluster auth
  token to ``<run_dir>/ray-auth-token`` (mode 0600; not ~/.ray/auth_token), unless ``RAY_AUTH_TOKEN_PATH``
  or ``RAY_AUTH_MODE`` is already set. Usage statistics are off unless ``RAY_USAGE_STATS_ENABLED`` says so.
* **Threads**: a replica uses ``spec.threads`` torch threads, by default ``cpus // replicas`` (at least
  1), so N replicas on one machine do not oversubscribe its cores.
* **What differs from uvicorn**: the socket-level guards of :mod:`paramcast.cloud.server` (header
  deadline, connection limit with a JSON 503) are uvicorn's; behind Ray the proxy owns the socket, so
  a request over a replica's ``max_ongoing`` queues in the proxy instead of being refused.
* **Metrics**: the replicas run ``prometheus_client`` in multiprocess mode, all writing to one folder
  (``metrics_dir``, a fresh temporary one by default), so whichever replica answers ``/metrics``
  reports the sum over every replica of the deployment on that machine, including replicas that Ray
  restarted (on a cluster: per node). Ray's own metrics cover the proxy.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ray import serve

from paramcast.cloud.metrics import MULTIPROC_ENV
from paramcast.cloud.spec import AppSpec, build_app

__all__ = ["deploy", "replica_pids", "shutdown", "start_ray"]

log = logging.getLogger("paramcast.cloud")
APP_NAME = "paramcast"
MAX_RUN_DIR = 40  # + "/ray/session_<date>_<time>_<pid>/sockets/plasma_store" must fit a 107-byte socket path


@serve.ingress()
class Paramcast:
    """One replica: the app built in the replica's own process."""

    def __init__(self, spec: AppSpec):
        self.spec = spec

    def __serve_build_asgi_app__(self):
        return build_app(self.spec)


def start_ray(run_dir: str | Path, *, address: str | None = None, num_cpus: int | None = None) -> None:
    """Start a local Ray instance whose files stay under ``run_dir`` (or join ``address``, e.g. "auto")."""
    import ray

    run_dir = Path(run_dir).resolve()
    if address is None and len(str(run_dir)) > MAX_RUN_DIR:
        raise ValueError(f"run directory {run_dir} is {len(str(run_dir))} characters long; Ray puts unix sockets "
                         f"about 65 characters below it and a socket path may not exceed 107: use one of at most "
                         f"{MAX_RUN_DIR} characters")
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None and "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN_PATH" not in os.environ:
        token = run_dir / "ray-auth-token"
        if not token.exists():
            fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
        try:  # ray read RAY_AUTH_MODE when imported; re-read it (what ray's own token set-up does)
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):  # another Ray 2.x: it reads the variables at init
            pass
    if address is not None:
        ray.init(address=address, log_to_driver=False)
        return
    # A local instance is one machine: its processes talk over loopback only (127.0.0.1), not the node's IP.
    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, _temp_dir=str(run_dir / "ray"),
             _node_ip_address="127.0.0.1", object_store_memory=128 << 20, log_to_driver=False)


def deploy(spec: AppSpec, *, replicas: int = 1, host: str = "127.0.0.1", port: int = 8000,
           max_ongoing: int = 512, cpus_per_replica: float = 0.0, keep_alive_s: int = 5,
           timeout_s: float = 120.0, metrics_dir: str | Path | None = None) -> str:
    """Run ``spec`` as ``replicas`` Ray Serve replicas behind Ray's HTTP proxy on ``host:port``; return
    its URL once every replica answers. ``cpus_per_replica``: what each replica reserves from Ray's
    scheduler (0 on one machine, where threads already share the cores; 1+ on a cluster to spread them).
    ``metrics_dir``: the replicas' shared prometheus_client multiprocess folder (emptied first)."""
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    metrics_dir = Path(metrics_dir) if metrics_dir else Path(tempfile.mkdtemp(prefix="paramcast-metrics-"))
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):  # counts of an earlier deployment (prometheus_client's rule)
        stale.unlink()
    if spec.threads == 0:
        spec = replace(spec, threads=max(1, (os.cpu_count() or 1) // replicas))
    serve.start(http_options={"host": host, "port": port, "keep_alive_timeout_s": keep_alive_s})
    deployment = serve.deployment(Paramcast, name="Paramcast", num_replicas=replicas,
                                  max_ongoing_requests=max_ongoing, health_check_period_s=1,
                                  health_check_timeout_s=10, graceful_shutdown_timeout_s=5,
                                  ray_actor_options={"num_cpus": cpus_per_replica, "runtime_env": {
                                      "env_vars": {MULTIPROC_ENV: str(metrics_dir.resolve())}}})
    serve.run(deployment.bind(spec), name=APP_NAME, route_prefix="/", blocking=False)
    deadline = time.monotonic() + timeout_s
    while serve.status().applications[APP_NAME].status != "RUNNING":
        status = serve.status().applications[APP_NAME]
        if status.status in ("DEPLOY_FAILED", "UNHEALTHY") or time.monotonic() > deadline:
            raise RuntimeError(f"Ray Serve app {APP_NAME!r} is {status.status}: {status.message[-2000:]}")
        time.sleep(0.2)
    return f"http://{host}:{port}"


def replica_pids() -> list[int]:
    """Process ids of this machine's paramcast replicas (Ray titles them ``ray::ServeReplica:paramcast:...``)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(f"ray::ServeReplica:{APP_NAME}:".encode()):
                pids.append(int(p.name))
    return sorted(pids)


def shutdown() -> None:
    import ray

    serve.shutdown()
    ray.shutdown()
