"""The socket-level limits of ``paramcast serve``: a header deadline and a connection limit.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but nothing closes a connection
that never finishes its request headers, and its ``limit_concurrency`` answers a plain-text 503.
:class:`GuardedProtocol` is uvicorn's httptools protocol plus:

* **header deadline** — a connection must deliver complete request headers within
  ``timeout_headers_s`` of being accepted or of its previous response; otherwise it is answered
  408 ``{"error": "header_timeout"}`` and closed.
  Data arriving does not extend the deadline (one byte every few seconds is how a slow client
  holds a socket forever). The body has its own deadline in the app (``Limits.body_timeout_s``, 408).
* **connection limit** — with more than ``limit_concurrency`` open connections (or that many
  requests in flight), a request is answered 503 ``{"error": "over_capacity"}`` with
  ``Retry-After: 1`` and its connection closed. Accepting and refusing keeps the server answering
  instead of running out of file descriptors; :func:`raise_fd_limit` makes room for the limit.

    config = server_config(app, host="127.0.0.1", port=8000, limit_concurrency=512, timeout_headers_s=10)
    uvicorn.Server(config).run()
"""

from __future__ import annotations

import json
import logging
import resource
from asyncio import TimerHandle

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["GuardedProtocol", "raise_fd_limit", "server_config"]

log = logging.getLogger("paramcast.cloud")
FD_HEADROOM = 64  # descriptors beyond the connections: the store, logs, threads' pipes, the listener


def _json(error: str, detail: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": error, "detail": detail}).encode()
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")], body


async def _over_capacity(scope, receive, send) -> None:
    headers, body = _json("over_capacity", "the server is at its connection limit (--limit-concurrency); retry shortly")
    await send({"type": "http.response.start", "status": 503, "headers": [*headers, (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": body})


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a JSON 503 beyond the connection limit."""

    limit_connections: int | None = None
    timeout_headers_s: float = 10.0

    @classmethod
    def configured(cls, limit_concurrency: int | None, timeout_headers_s: float) -> type[GuardedProtocol]:
        if limit_concurrency is not None and limit_concurrency < 1:
            raise ValueError(f"limit_concurrency must be >= 1, got {limit_concurrency}")
        if not timeout_headers_s > 0:
            raise ValueError(f"timeout_headers_s must be > 0, got {timeout_headers_s}")
        return type(cls.__name__, (cls,), {"limit_connections": limit_concurrency,
                                          "timeout_headers_s": float(timeout_headers_s)})

    _headers_timer: TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._headers_timer = self.loop.call_later(self.timeout_headers_s, self._headers_late)

    def _disarm(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _headers_late(self) -> None:
        self._headers_timer = None
        if not self.transport.is_closing():
            log.debug("closing a connection that sent no complete request headers in %g s", self.timeout_headers_s)
            headers, body = _json("header_timeout", f"request headers did not arrive within {self.timeout_headers_s:g} s")
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\n"
                                 + b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n" + body)
            self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm()
        limit = self.limit_connections
        if limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit):
            app, self.app = self.app, _over_capacity  # this one request only; uvicorn reads self.app here
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._arm()  # the next request's headers are due (keep-alive closes a silent one sooner)


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``needed`` if the hard limit allows; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def server_config(app, *, host: str = "127.0.0.1", port: int = 8000, limit_concurrency: int | None = 512,
                  timeout_headers_s: float = 10.0, timeout_keep_alive_s: int = 5,
                  log_level: str | int = "info") -> uvicorn.Config:
    """uvicorn's config for ``app`` with :class:`GuardedProtocol`; ``limit_concurrency=None`` is no limit.

    Raises ``ValueError`` if the file-descriptor limit cannot hold ``limit_concurrency`` connections.
    """
    if limit_concurrency is not None:
        have = raise_fd_limit(limit_concurrency + FD_HEADROOM)
        if have < limit_concurrency + FD_HEADROOM:
            raise ValueError(f"--limit-concurrency {limit_concurrency} needs {limit_concurrency + FD_HEADROOM} file "
                             f"descriptors but RLIMIT_NOFILE allows {have}: lower it or raise `ulimit -n`")
    protocol = GuardedProtocol.configured(limit_concurrency, timeout_headers_s)
    return uvicorn.Config(app, host=host, port=port, http=protocol, timeout_keep_alive=timeout_keep_alive_s,
                          log_level=log_level, access_log=False, lifespan="on")
