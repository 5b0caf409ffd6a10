"""The cloud service: a FastAPI app around one method.

Routes (OpenAPI docs at ``/docs``):

* ``POST /v1/adapt``    body: a wire-encoded :class:`~paramcast.types.Upload`
  (``application/octet-stream``); ``?quant=`` or header ``X-Paramcast-Quant`` picks the downlink
  quantisation (one of ``QUANTS``, default fp32). Answers the wire-encoded update. A
  :class:`~paramcast.types.WeightDelta` whose method chose its quantisation (CD-CCA's DWC: NF4; the
  cloud's copy of what the device holds assumes exactly that) travels in that one.
* ``POST /v1/history``  body: labelled samples (:mod:`paramcast.wire.history`); stored in SQLite or PostgreSQL.
* ``GET /v1/info``      method, task, model version, upload and head shapes, quant options, limits.
* ``GET /healthz``      liveness.
* ``GET /metrics``      Prometheus text format.
* ``GET /docs``, ``/openapi.json``  Swagger UI from assets packaged with ``fastapi-offline`` (no CDN);
  ``docs=False`` removes both. ``protect_meta=True`` makes ``/docs``, ``/openapi.json``, ``/metrics``
  and ``/v1/info`` require a device token too (``/healthz`` stays open for liveness probes).

Concurrent adapt requests are grouped by :class:`~paramcast.cloud.batching.DynamicBatcher` into one
``method.cloud_step_batch`` call on its worker thread (``Batching(encode_threads=0)``: by
:class:`~paramcast.cloud.batching.InlineBatcher`, on the event loop). Every refusal is a 4xx whose JSON body ``{"error", "detail"}`` says
what is wrong; a 500 means a bug in the server, never bad input. A client that hangs up mid-request
is counted as 499 (``client_closed``, nginx's code) and logged on one line. Nothing is unpickled.
Limits that need the socket (header timeout, connection limit) live in :mod:`paramcast.cloud.server`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import torch
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from paramcast import catalog, wire
from paramcast.cloud.auth import TokenStore
from paramcast.cloud.batching import DynamicBatcher, InlineBatcher
from paramcast.cloud.errors import ApiError
from paramcast.cloud.metrics import Metrics, MetricsMiddleware
from paramcast.cloud.openapi import ADAPT, BEARER, HISTORY, PLAIN
from paramcast.cloud.quota import DeviceQuota
from paramcast.cloud.store import StoreUnavailable, open_store
from paramcast.methods.base import Method, UploadRejected
from paramcast.types import QUANTS, HeadParams, Upload, WeightDelta
from paramcast.wire.history import HistoryError, LabelError, decode_history

__all__ = ["Batching", "Limits", "create_app", "load_method"]

log = logging.getLogger("paramcast.cloud")
OCTET = "application/octet-stream"
ROUTES = ("/v1/adapt", "/v1/history", "/v1/info", "/healthz", "/metrics", "/docs", "/openapi.json")
DOCS_ASSETS = "/docs-assets"  # Swagger UI's JS/CSS, shipped in the fastapi-offline wheel


@dataclass(frozen=True)
class Batching:
    max_batch: int = 32       # uploads answered by one generator call; 1 = naive per-request generation
    max_wait_ms: float = 2.0  # how long a non-full batch waits for more uploads
    encode_threads: int = 1   # threads encoding answers (an fp32 answer runs no torch op; quantising ones do, and
                              # more threads then oversubscribe torch's OpenMP pools); 0: no worker threads at all,
                              # uploads are batched, generated and encoded on the event loop (InlineBatcher)

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 (1 disables batching), got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.encode_threads < 0:
            raise ValueError(f"encode_threads must be >= 0 (0: generate and encode on the event loop), got {self.encode_threads}")


@dataclass(frozen=True)
class Limits:
    """What one request (and one device's history) may cost; docs/service.md "Limits and quotas"."""

    max_upload_bytes: int = 1 << 20    # body of /v1/adapt; a 192-float feature is < 2 KB on the wire
    max_history_bytes: int = 16 << 20  # body of /v1/history
    max_rows: int = 4096               # rows of Upload.features and of one history upload
    max_feature_dim: int = 65536       # columns of Upload.features when the method does not fix them
    max_abs_feature: float = 1e4       # |feature| bound: encoder features are O(10); 1e30 overflows heads
    body_timeout_s: float = 60.0       # whole body of one request: 16 MiB at ~2.2 Mbit/s
    history_posts_per_minute: int = 60        # per device, token bucket
    history_bytes_per_hour: int = 64 << 20    # per device, token bucket (>= max_history_bytes)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"limit {name} must be > 0, got {value}")
        if self.history_bytes_per_hour < self.max_history_bytes:
            raise ValueError(f"history_bytes_per_hour ({self.history_bytes_per_hour}) must be >= max_history_bytes "
                             f"({self.max_history_bytes}), else a full-size history post could never pass")


def load_method(name: str | None = None, checkpoint: str | Path | None = None, **kwargs: Any) -> Method:
    """The served method: rebuilt from ``checkpoint`` (``paramcast train``'s file names its method,
    shapes and config) or, without one, a fresh ``catalog.create(name, **kwargs)``."""
    if checkpoint is None:
        if name is None:
            raise ValueError("name a method or give a checkpoint")
        return catalog.create(name, **kwargs)
    method = catalog.from_checkpoint(checkpoint, **kwargs)
    if name is not None and method.name != name:
        raise ValueError(f"{checkpoint} holds a {method.name!r} checkpoint, but method {name!r} was asked for")
    return method


def _error(status: int, error: str, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refusing as soon as it exceeds ``limit`` bytes (413) or ``timeout_s`` seconds (408)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "bad_request", f"Content-Length must be a non-negative integer, got {declared[:32]!r}")
        if int(declared) > limit:
            raise ApiError(413, "body_too_large", f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    with anyio.move_on_after(timeout_s) as scope:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "body_too_large", f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    if scope.cancelled_caught:
        raise ApiError(408, "body_timeout", f"the body did not arrive within {timeout_s:g} s ({size} bytes came)",
                       {"Connection": "close"})
    return b"".join(chunks)


def _upload_key(upload: Upload) -> tuple:
    return tuple(upload.features.shape), upload.positions is None, upload.samples is None


def create_app(method: Method, *, store_path: str | Path | None = None,
               tokens: TokenStore | str | Path | None = None, batching: Batching = Batching(),
               limits: Limits = Limits(), upload_shape: tuple[int, int] | None = None,
               task: str | None = None, model_version: str | None = None, num_labels: int | None = None,
               docs: bool = True, protect_meta: bool = False,
               congestion_control: dict | None = None, static_answer: bytes | None = None,
               batcher: Callable[..., Any] = DynamicBatcher) -> FastAPI:
    """The service for ``method``.

    ``store_path``: the history, an SQLite file or a ``postgresql://`` URL (:func:`~paramcast.cloud.store.open_store`).
    ``tokens``: a :class:`TokenStore` or a token file, re-read when it changes (no tokens: every
    device is refused, 401). ``upload_shape``: the (N, C) every Upload.features must have (default:
    ``method.upload_shape`` if the method has one, else any shape within ``limits``). ``task`` /
    ``model_version``: what uploads must name (default: the method's attributes of that name, if
    any). ``num_labels``: the answer vocabulary V that history labels must lie in, ``[-1, V)``
    (default: ``method.num_answers``, else the rows of the probed head, else ``wire.MAX_INDEX``).
    ``docs=False`` serves no ``/docs`` or ``/openapi.json``; ``protect_meta=True`` puts ``/docs``,
    ``/openapi.json``, ``/metrics`` and ``/v1/info`` behind a device token.
    ``congestion_control``: what the listening socket uses (:meth:`paramcast.cloud.tcp.CongestionControl.as_dict`),
    reported by ``/v1/info`` as ``tcp``; None where the engine made the socket.
    ``static_answer``: the benchmark's HTTP ceiling (``paramcast bench serve``, mode ``static``) —
    ``/v1/adapt`` authenticates, reads, decodes and checks each upload as always, then answers these
    bytes instead of generating and encoding an update.
    ``batcher``: what groups concurrent uploads, called as :class:`DynamicBatcher` is (``fn, *, max_batch,
    max_wait_ms, key, on_batch``) and answering ``await .run(upload)`` and ``.close()``; Ray Serve's
    ``@serve.batch`` is :class:`paramcast.cloud.serve_batch.ServeBatcher` (``paramcast serve --ray-batching serve``).
    """
    if not getattr(method, "collaborative", False):
        raise ValueError(f"method {method.name!r} is device-only (collaborative = False): nothing to serve")
    if not isinstance(tokens, TokenStore):
        tokens = TokenStore.from_file(tokens) if tokens is not None else TokenStore()
    if len(tokens) == 0:
        log.warning("no device tokens configured: every adapt/history request will be refused (401)")
    upload_shape = upload_shape or getattr(method, "upload_shape", None)
    task = task or getattr(method, "task", None)
    model_version = model_version or getattr(method, "model_version", None)
    store = open_store(store_path) if store_path is not None else None
    metrics = Metrics(ROUTES)
    quota = DeviceQuota(limits.history_posts_per_minute, limits.history_bytes_per_hour)

    cloud = method.cloud_half()  # the service's half: answers every device, keeps per-device state by device_id

    def generate(uploads):
        with torch.inference_mode():
            if len(uploads) == 1:
                return [cloud.cloud_step(uploads[0])]
            return cloud.cloud_step_batch(uploads)

    inline = batching.encode_threads == 0
    if inline and batcher is DynamicBatcher:
        batcher = InlineBatcher
    elif inline and batcher is not InlineBatcher:
        raise ValueError(f"encode_threads=0 (everything on the event loop) needs paramcast's InlineBatcher, but the batcher "
                         f"is {getattr(batcher, '__name__', batcher)!r}, which generates on its own thread: use encode_threads >= 1")
    batcher = batcher(generate, max_batch=batching.max_batch, max_wait_ms=batching.max_wait_ms,
                      key=_upload_key, on_batch=metrics.observe_batch)
    # Answers are encoded on their own thread(s), overlapping the next generator call. Not in the
    # default thread pool: 40 threads each running torch ops oversubscribe the cores (measured 4x slower).
    encoder = None if inline else ThreadPoolExecutor(max_workers=batching.encode_threads, thread_name_prefix="paramcast-encode")
    update_info = _probe(method, upload_shape, task, model_version)
    num_labels = (num_labels or getattr(method, "num_answers", None)
                  or (update_info["weight"][0] if update_info and update_info["type"] == "HeadParams" else None)
                  or wire.MAX_INDEX)

    def close() -> None:
        batcher.close()
        if encoder is not None:
            encoder.shutdown(wait=False)
        if store is not None:
            store.close()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        close()

    app = FastAPI(title="paramcast cloud", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None,  # served below, so that they can be switched off or protected
                  description="Cloud side of cloud-device collaborative adaptation: uploads in, "
                              "generated head parameters / weight deltas out.")
    app.state.batcher, app.state.store, app.state.metrics, app.state.close = batcher, store, metrics, close
    app.state.method = method

    # ---- error handling: every refusal a JSON 4xx -------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(wire.WireError)
    async def _wire_error(request: Request, exc: wire.WireError):
        return _error(400, "bad_payload", str(exc) or "malformed payload")

    @app.exception_handler(HistoryError)
    async def _history_error(request: Request, exc: HistoryError):
        if isinstance(exc, LabelError):
            return _error(422, "label_out_of_range", str(exc))
        return _error(400, "bad_history", str(exc))

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(request: Request, exc: StoreUnavailable):
        log.warning("%s", exc)  # the database is down or unreachable: the device retries later
        return _error(503, "history_unavailable", "the history database is unreachable; retry later",
                      {"Retry-After": "1"})

    @app.exception_handler(ClientDisconnect)
    async def _client_closed(request: Request, exc: ClientDisconnect):
        # Not a server error: nobody reads this answer; the status is for /metrics (499, as nginx).
        log.info("client closed the connection during %s %s", request.method, request.url.path)
        return _error(499, "client_closed", "the client closed the connection before the request was complete")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        name = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, name, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        detail = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors())
        return _error(422, "invalid_request", detail or "invalid request")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        # Log the route and the exception only: never headers (they carry bearer tokens).
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, "internal", "internal server error (a bug in the server, not your request); see the server log")

    # ---- routes ---------------------------------------------------------------------------
    def _check_meta(obj_device: str, authed: str, what: str) -> None:
        if obj_device != authed:
            raise ApiError(403, "forbidden", f"{what} names device {obj_device[:128]!r} but the token belongs to "
                                             f"{authed!r}; a device may only speak for itself")

    def _check_upload(upload: Upload) -> None:
        if upload.method != method.name:
            raise ApiError(400, "wrong_method", f"upload is for method {upload.method[:64]!r}; this server serves {method.name!r}")
        if task is not None and upload.task != task:
            raise ApiError(400, "wrong_task", f"upload is for task {upload.task[:64]!r}; this server serves {task!r}")
        if model_version is not None and upload.model_version != model_version:
            raise ApiError(409, "model_version_mismatch",
                           f"upload was made by model {upload.model_version[:64]!r}; this server serves {model_version!r}: "
                           "update the device model")
        f = upload.features
        if not isinstance(f, torch.Tensor) or f.dtype != torch.float32 or f.ndim != 2:
            raise ApiError(422, "bad_shape", "features must be a 2-D float32 tensor (N, C)")
        if upload_shape is not None and tuple(f.shape) != tuple(upload_shape):
            raise ApiError(422, "bad_shape", f"features must have shape {tuple(upload_shape)}, got {tuple(f.shape)}")
        if not (1 <= f.shape[0] <= limits.max_rows and 1 <= f.shape[1] <= limits.max_feature_dim):
            raise ApiError(422, "bad_shape", f"features must be (N, C) with 1 <= N <= {limits.max_rows} and "
                                             f"1 <= C <= {limits.max_feature_dim}, got {tuple(f.shape)}")
        for name in ("positions", "samples"):
            t = getattr(upload, name)
            if t is not None and (t.dtype != torch.int64 or tuple(t.shape) != (f.shape[0],)):
                raise ApiError(422, "bad_shape", f"{name} must be an int64 tensor of shape ({f.shape[0]},)")
        if not bool(torch.isfinite(f).all()):
            raise ApiError(400, "non_finite", "features contain NaN or Inf")
        if float(f.abs().max()) > limits.max_abs_feature:
            raise ApiError(422, "feature_out_of_range", f"features must satisfy |x| <= {limits.max_abs_feature:g} "
                                                        f"(max_abs_feature), got max |x| = {float(f.abs().max()):.3g}")

    @app.post("/v1/adapt", response_class=Response, summary="Generate an update for one device's upload",
              openapi_extra={"requestBody": {"required": True, "content": {OCTET: {"schema": {"type": "string", "format": "binary"}}}}},
              responses={200: {"content": {OCTET: {}}, "description": "wire-encoded HeadParams or WeightDelta"}, **ADAPT},
              dependencies=[BEARER])
    async def adapt(request: Request,
                    quant: str | None = Query(None, description=f"downlink quantisation, one of {list(QUANTS)}"),
                    x_paramcast_quant: str | None = Header(None, description="same as ?quant= (the query wins)")):
        t = [time.perf_counter()]  # the stages' boundaries, for /metrics (Metrics.observe_stages)
        device = tokens.authenticate(request.headers.get("authorization"))
        q = quant or x_paramcast_quant or "fp32"
        if q not in QUANTS:
            raise ApiError(400, "bad_quant", f"quant {q[:32]!r} is not one of {list(QUANTS)}")
        body = await _read_body(request, limits.max_upload_bytes, limits.body_timeout_s)
        upload = wire.decode(body, max_bytes=limits.max_upload_bytes, expect=Upload)
        if not isinstance(upload, Upload):
            raise ApiError(400, "bad_payload", f"expected an Upload, got a {type(upload).__name__}")
        _check_meta(upload.device_id, device, "the upload")
        _check_upload(upload)
        t.append(time.perf_counter())
        if static_answer is not None:
            metrics.observe_stages(t)
            return Response(static_answer, media_type=OCTET, headers={"X-Paramcast-Quant": q})
        try:
            update = await batcher.run(upload)
            t.append(time.perf_counter())
        except UploadRejected as exc:  # the method's own checks (token indices, a stale version)
            raise ApiError(exc.status, exc.error, str(exc)) from None
        if not isinstance(update, HeadParams | WeightDelta):
            raise RuntimeError(f"{method.name}.cloud_step returned {type(update).__name__}, not an Update")
        if isinstance(update, WeightDelta) and update.quant != "fp32":
            q = update.quant  # a compressed delta travels as its method quantised it (DWC's error feedback)
        try:
            if encoder is None:  # inline: on the event loop
                data = wire.encode(update, quant=q)
            else:
                data = await asyncio.get_running_loop().run_in_executor(encoder, partial(wire.encode, update, quant=q))
        except wire.WireError as exc:  # an update that cannot travel (NaN/Inf, fp16 overflow) is not the payload's fault
            raise ApiError(422, "update_overflow",
                           f"the update generated for these features cannot be encoded as {q} ({exc}); features "
                           f"within |x| <= {limits.max_abs_feature:g} (max_abs_feature) and fp32 usually fit") from None
        t.append(time.perf_counter())
        metrics.observe_stages(t)
        return Response(data, media_type=OCTET, headers={"X-Paramcast-Quant": q})

    @app.post("/v1/history", summary="Store a device's labelled samples in the cloud's history",
              openapi_extra={"requestBody": {"required": True, "content": {OCTET: {"schema": {"type": "string", "format": "binary"}}}}},
              responses=HISTORY, dependencies=[BEARER])
    async def history(request: Request) -> dict:
        device = tokens.authenticate(request.headers.get("authorization"))
        if store is None:
            raise ApiError(404, "history_disabled", "this server keeps no history (start it with --store PATH|URL)")
        quota.charge(device, posts=1)
        body = await _read_body(request, limits.max_history_bytes, limits.body_timeout_s)
        quota.charge(device, nbytes=len(body))
        feature_dim = upload_shape[1] if upload_shape is not None else None
        # Off the event loop: hashing and checking 16 MiB takes tens of ms that /healthz should not wait.
        batch = await anyio.to_thread.run_sync(partial(decode_history, body, max_rows=limits.max_rows,
                                                       feature_dim=feature_dim, num_labels=num_labels))
        _check_meta(batch.device_id, device, "the history upload")
        if task is not None and batch.task != task:
            raise ApiError(400, "wrong_task", f"history is for task {batch.task[:64]!r}; this server serves {task!r}")
        ids = await anyio.to_thread.run_sync(lambda: store.add(device, batch.task, batch.tensors))
        return {"stored": len(ids), "first_id": ids[0], "last_id": ids[-1]}

    def meta_auth(request: Request) -> None:
        if protect_meta:
            tokens.authenticate(request.headers.get("authorization"))

    guarded = [Depends(meta_auth)]

    @app.get("/v1/info", summary="What this server serves", dependencies=guarded, responses=PLAIN)
    async def info() -> dict:
        return {"method": method.name, "task": task, "model_version": model_version,
                "upload": {"features": list(upload_shape) if upload_shape else None},
                "update": update_info, "quants": list(QUANTS), "default_quant": "fp32", "num_labels": num_labels,
                "batching": {**asdict(batching), "batcher": type(batcher).__name__}, "limits": asdict(limits), "history": store is not None,
                "tcp": congestion_control}

    @app.get("/healthz", summary="Liveness", responses=PLAIN)
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics", dependencies=guarded,
             responses=PLAIN)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    if docs:
        import fastapi_offline  # its wheel ships Swagger UI's assets: no CDN, a deployment may have no internet

        app.mount(DOCS_ASSETS, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"), "docs-assets")

        @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
        async def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False, dependencies=guarded)
        async def swagger() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="paramcast cloud",
                                       swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                       swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                       swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _probe(method: Method, upload_shape, task, model_version) -> dict | None:
    """Shapes of the method's update, from one call on a zero upload (also warms the generator up)."""
    if upload_shape is None:
        return None
    zero = Upload(device_id="probe", method=method.name, task=task or "", model_version=model_version or "",
                  features=torch.zeros(tuple(upload_shape)))
    try:
        with torch.inference_mode():
            update = method.cloud_step(zero)
    except Exception as exc:  # the info route says so; serving still works
        log.warning("could not probe %s for its update shape: %r", method.name, exc)
        return None
    if isinstance(update, HeadParams):
        return {"type": "HeadParams", "weight": list(update.weight.shape), "bias": list(update.bias.shape)}
    if isinstance(update, WeightDelta):
        return {"type": "WeightDelta", "deltas": {k: list(v.shape) for k, v in update.deltas.items()},
                "base_version": update.base_version}
    return None
