"""The service's listening socket, with the TCP congestion control set on it (docs/link.md).

The cloud sends almost every byte of an adaptation (a ~580 KB head down, a 768 B feature up), so
its congestion control decides how the downlink behaves on a lossy radio link. Loss-based control
(cubic, Linux's default) halves its window on every lost packet: at 1 % loss and 40 ms RTT a 580 KB
head takes ~1.6 s (Mathis: 1.22·MSS/(RTT·√p) ≈ 450 KB/s). BBR models the path's bandwidth and RTT
instead and does not back off on random loss (``paramcast bench link``, benchmarks/results/link_grid).

:func:`listening_socket` makes a bound socket with ``TCP_CONGESTION`` set; Linux copies the option
to every connection ``accept()`` returns, so one ``setsockopt`` covers the whole service. Any engine
that can serve on a socket it is handed uses it: uvicorn (``Server.run(sockets=[sock])``, what
``paramcast serve`` does), gunicorn (a file descriptor), or Ray Serve's HTTP proxy (see docs/link.md
for why Ray needs the option per accepted socket or the namespace's default instead).

Decisions where the issue is silent:

* ``auto`` (the default) picks ``bbr`` when the kernel lists it in
  ``/proc/sys/net/ipv4/tcp_available_congestion_control``, else leaves the system default alone.
* A name the kernel does not offer is a configuration error (:class:`ValueError`), not a silent
  fallback. ``system`` never calls ``setsockopt``.
* An unprivileged process may only pick algorithms in ``tcp_allowed_congestion_control``; when
  ``auto``'s ``bbr`` is refused (EPERM) the socket keeps the system default and the reason is kept,
  while an explicitly named algorithm that is refused raises.
* What the socket really uses is read back with ``getsockopt`` and reported, never assumed.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AUTO", "PREFERRED", "SYSTEM", "CongestionControl", "apply_congestion_control",
           "available_congestion_controls", "listening_socket", "system_congestion_control"]

AUTO, SYSTEM = "auto", "system"
_PROC = Path("/proc/sys/net/ipv4")
PREFERRED = "bbr"


def _read_names(name: str, proc: Path) -> list[str]:
    try:
        return (proc / name).read_text().split()
    except OSError:
        return []


def available_congestion_controls(proc: Path = _PROC) -> list[str]:
    """Algorithms the kernel offers (built in or loaded); empty where it does not say (not Linux)."""
    return _read_names("tcp_available_congestion_control", proc)


def system_congestion_control(proc: Path = _PROC) -> str | None:
    """The default new sockets get in this network namespace, or None where it is not readable."""
    names = _read_names("tcp_congestion_control", proc)
    return names[0] if names else None


@dataclass(frozen=True)
class CongestionControl:
    """What was asked for, what the listening socket uses, and why (for ``/v1/info`` and the log)."""

    requested: str            # "auto", "system" or an algorithm name
    algorithm: str | None     # what getsockopt(TCP_CONGESTION) reads back (None: not readable here)
    available: tuple[str, ...]
    system_default: str | None
    note: str = ""            # e.g. why auto did not get bbr

    def as_dict(self) -> dict:
        return {"requested": self.requested, "algorithm": self.algorithm, "available": list(self.available),
                "system_default": self.system_default, "note": self.note}

    def describe(self) -> str:
        text = f"TCP congestion control {self.algorithm or 'unknown'} (requested {self.requested}; " \
               f"kernel offers {' '.join(self.available) or 'nothing readable'}; system default {self.system_default})"
        return text + (f": {self.note}" if self.note else "")


def _read_back(sock: socket.socket) -> str | None:
    if not hasattr(socket, "TCP_CONGESTION"):
        return None
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
    return raw.split(b"\0", 1)[0].decode() or None


def apply_congestion_control(sock: socket.socket, requested: str = AUTO, proc: Path = _PROC) -> CongestionControl:
    """Set ``TCP_CONGESTION`` on ``sock`` as ``requested`` says (see the module doc) and report it."""
    available = tuple(available_congestion_controls(proc))
    system = system_congestion_control(proc)
    note = ""
    if requested == SYSTEM:
        target = None
    elif requested == AUTO:
        target = PREFERRED if PREFERRED in available else None
        if target is None:
            note = f"{PREFERRED} is not offered by this kernel; kept the system default"
    else:
        if available and requested not in available:
            raise ValueError(f"TCP congestion control {requested!r} is not offered by this kernel "
                             f"(available: {' '.join(available)}); load its module or pick another")
        target = requested
    if target is not None:
        if not hasattr(socket, "TCP_CONGESTION"):
            if requested != AUTO:
                raise ValueError("this platform has no TCP_CONGESTION socket option")
            note = "no TCP_CONGESTION socket option on this platform; kept the system default"
        else:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, target.encode())
            except OSError as exc:
                if requested != AUTO:
                    raise ValueError(f"cannot set TCP congestion control {target!r}: {exc.strerror}"
                                     + (" (not in tcp_allowed_congestion_control and no CAP_NET_ADMIN)"
                                        if exc.errno == errno.EPERM else "")) from None
                note = f"setting {target} was refused ({exc.strerror}); kept the system default"
    return CongestionControl(requested, _read_back(sock), available, system, note)


def listening_socket(host: str, port: int, congestion_control: str = AUTO, backlog: int = 2048,
                     proc: Path = _PROC) -> tuple[socket.socket, CongestionControl]:
    """A bound, listening TCP socket for ``host:port`` with the congestion control applied.

    Accepted connections inherit ``TCP_CONGESTION`` from it. The caller owns (and closes) the socket.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        cc = apply_congestion_control(sock, congestion_control, proc)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, cc
