"""The service's listening socket: TCP congestion control chosen, applied, inherited and reported.

Loopback only. Reads back with getsockopt what the kernel really applied; where the kernel here
lacks an algorithm a test needs, it says so and skips.
"""

from __future__ import annotations

import socket
import threading

import pytest

from paramcast.cloud.tcp import (
    AUTO,
    SYSTEM,
    apply_congestion_control,
    available_congestion_controls,
    listening_socket,
    system_congestion_control,
)

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_CONGESTION"), reason="no TCP_CONGESTION on this platform")


def _accepted_algorithm(server: socket.socket) -> str:
    """Connect over loopback; the congestion control of the socket the server accepted."""
    server.setblocking(True)
    port = server.getsockname()[1]
    got: dict[str, str] = {}

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            got["cc"] = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).split(b"\0")[0].decode()

    t = threading.Thread(target=accept)
    t.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        t.join(5)
    return got["cc"]


def _proc(tmp_path, available: str, default: str):
    (tmp_path / "tcp_available_congestion_control").write_text(available + "\n")
    (tmp_path / "tcp_congestion_control").write_text(default + "\n")
    return tmp_path


def test_auto_is_bbr_where_offered_and_accepted_sockets_inherit_it():
    sock, cc = listening_socket("127.0.0.1", 0)
    with sock:
        want = "bbr" if "bbr" in available_congestion_controls() and not cc.note else system_congestion_control()
        assert cc.requested == AUTO and cc.algorithm == want, cc
        assert _accepted_algorithm(sock) == cc.algorithm
        assert cc.algorithm in cc.describe() and cc.as_dict()["algorithm"] == cc.algorithm


def test_explicit_algorithm_overrides_and_is_inherited():
    other = [a for a in available_congestion_controls() if a != "bbr"]
    if not other:
        pytest.skip("the kernel here offers no algorithm besides bbr")
    try:
        sock, cc = listening_socket("127.0.0.1", 0, other[0])
    except ValueError as exc:  # not allowed for this (unprivileged) process
        pytest.skip(str(exc))
    with sock:
        assert cc.algorithm == other[0] and _accepted_algorithm(sock) == other[0]


def test_unknown_algorithm_is_a_clear_error():
    with pytest.raises(ValueError, match="not offered by this kernel"):
        listening_socket("127.0.0.1", 0, "no-such-cc")


def test_auto_without_bbr_keeps_the_system_default(tmp_path):
    proc = _proc(tmp_path, "reno cubic", "cubic")
    with socket.socket() as s:
        before = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).split(b"\0")[0].decode()
        cc = apply_congestion_control(s, AUTO, proc)
        assert cc.algorithm == before and "not offered" in cc.note and cc.available == ("reno", "cubic")
        assert cc.system_default == "cubic"
        assert apply_congestion_control(s, SYSTEM, proc).note == ""


def test_info_reports_the_socket(make_app):
    from fastapi.testclient import TestClient

    import toy_service as toy
    from paramcast.cloud import create_app

    with socket.socket() as s:
        cc = apply_congestion_control(s)
    app = create_app(toy.ToyHyper(), congestion_control=cc.as_dict())
    with TestClient(app) as client:
        assert client.get("/v1/info").json()["tcp"] == cc.as_dict()
    app.state.close()
    with TestClient(make_app()) as client:
        assert client.get("/v1/info").json()["tcp"] is None
