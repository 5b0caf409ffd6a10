"""The processes :mod:`paramcast.bench.link` runs inside its network namespaces.

Run as a script (``python _delayline.py ROLE JSON``), never imported by them, so a process starts in
~0.1 s instead of paying for ``import paramcast`` (torch). Three roles:

* ``delay``  the user-space delay line (the kernel here has no netem). It owns a TUN device in the
  router namespace; policy routing sends every packet the router forwards into it, and it writes
  each one back ``one_way_ms`` (+ jitter) later, dropping a fraction ``loss``. The kernel forwards
  what it writes on to its destination. Packets to one destination leave in arrival order (jitter
  never reorders a direction, as on a real path); the two directions are independent.
* ``serve``  a minimal HTTP(S) adapt endpoint (Starlette on uvicorn) that answers a POST of exactly
  ``up_bytes`` with the head in the quantisation asked for (files prepared by the parent), on a
  socket from the service's own ``paramcast/cloud/tcp.py`` (its congestion-control logic).
* ``client`` ICMP pings, then per configuration ("series": port, HTTP or HTTPS, quantisation or
  ``auto``) keep-alive and new-connection adapt calls (httpx, TCP_NODELAY); ``auto`` runs the
  device's own ``paramcast/device/downlink.py`` policy. Prints one JSON line with the latencies.

The two paramcast modules are loaded by file path: both import only the standard library.

Every role stops by itself: when its parent dies, after ``max_seconds``, or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import ctypes
import fcntl
import heapq
import json
import os
import random
import select
import signal
import socket
import statistics
import struct
import sys
import threading
import time

_TUNSETIFF = 0x400454CA
_TUNSETOFFLOAD = 0x400454D0
_IFF_TUN, _IFF_NO_PI, _IFF_VNET_HDR = 0x0001, 0x1000, 0x4000
_TUN_F_CSUM, _TUN_F_TSO4, _TUN_F_TSO6, _TUN_F_TSO_ECN = 0x01, 0x02, 0x04, 0x08
_PR_SET_TIMERSLACK = 29


def _exit_with_parent(parent_pid: int, max_seconds: float) -> None:
    """A daemon thread that ends the process when its parent is gone or its time is up."""

    def watch() -> None:
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.25)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()


def _realtime(priority: int) -> bool:
    """Move this process to SCHED_FIFO; True when that worked.

    On 2 cores shared with other work, a normal-priority process waits behind whatever else is
    runnable, which shows up as milliseconds of latency that no link has. Every role blocks in
    select()/recv(), so a real-time one cannot spin; the kernel's RT throttling bounds it anyway.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError):
        return False
    return True


# --------------------------------------------------------------------------------------- delay line
def delay(tun: str, one_way_ms: float, jitter_ms: float, loss: float, seed: int, stats_path: str,
          realtime: bool, offload: bool, **_: object) -> None:
    # Wake-ups within ~1 µs instead of the default 50 µs timer slack.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
    realtime = realtime and _realtime(10)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    flags = _IFF_TUN | _IFF_NO_PI | (_IFF_VNET_HDR if offload else 0)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", tun.encode(), flags))
    if offload:
        # Accept TCP segmentation offload: the kernel hands over whole GSO packets (up to 64 KB,
        # a virtio-net header in front) and segments them after we write them back, so Python
        # moves ~40 objects per 580 KB response instead of ~400 MTU packets. The bytes on the
        # wire, and what tbf meters at the senders, are unchanged.
        fcntl.ioctl(fd, _TUNSETOFFLOAD, _TUN_F_CSUM | _TUN_F_TSO4 | _TUN_F_TSO6 | _TUN_F_TSO_ECN)
    rng = random.Random(seed)
    base, spread = one_way_ms / 1e3, jitter_ms / 1e3
    dst_at = (10 if offload else 0) + 16  # IPv4 destination, after the virtio-net header if any
    # (due, arrival number, packet): a heap, because jitter is kept in order per direction only.
    queue: list[tuple[float, int, bytes]] = []
    last_due: dict[bytes, float] = {}  # per destination: a later packet never overtakes
    stats = {"forwarded": 0, "dropped": 0, "late_us": [], "realtime": realtime}
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    arrivals = 0
    print("ready", flush=True)
    while not stop:
        while queue and queue[0][0] <= time.monotonic():
            due, _, packet = heapq.heappop(queue)
            os.write(fd, packet)
            stats["forwarded"] += 1
            if len(stats["late_us"]) < 200_000:
                stats["late_us"].append((time.monotonic() - due) * 1e6)
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.2
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        except InterruptedError:
            continue
        if not ready:
            continue
        arrived = time.monotonic()
        while True:
            try:
                packet = os.read(fd, 70000)
            except BlockingIOError:
                break
            if loss and rng.random() < loss:
                stats["dropped"] += 1
                continue
            due = arrived + base + (rng.uniform(-spread, spread) if spread else 0.0)
            dst = packet[dst_at:dst_at + 4]
            due = last_due[dst] = max(due, last_due.get(dst, 0.0))
            arrivals += 1
            heapq.heappush(queue, (due, arrivals, packet))
    late = sorted(stats.pop("late_us"))
    if late:
        stats.update(late_us_median=late[len(late) // 2], late_us_p99=late[int(len(late) * 0.99)],
                     late_us_max=late[-1])
    with open(stats_path, "w") as f:
        json.dump(stats, f)


# ------------------------------------------------------------------------------------------- server
def _load(relpath: str, name: str):  # type: ignore[no-untyped-def]
    """A stdlib-only paramcast module by file path (importing the package would import torch)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), relpath)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def serve(host: str, port: int, up_bytes: int, payload_paths: dict[str, str], congestion_control: str,
          realtime: bool, tls_cert: str = "", tls_key: str = "", **_: object) -> None:
    """Answer ``POST /adapt?quant=Q`` (exactly ``up_bytes`` up) with the head encoded as ``Q``.

    The listening socket comes from the service's own :func:`paramcast.cloud.tcp.listening_socket`:
    ``congestion_control`` is what ``paramcast serve --congestion-control`` takes (``auto`` = the
    service's default, ``system``, or a name); accepted connections inherit it.
    """
    if realtime:
        _realtime(5)  # below the delay line: a packet due to leave beats the server's own work
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    payloads = {}
    for quant, path in payload_paths.items():
        with open(path, "rb") as f:
            payloads[quant] = f.read()

    async def adapt(request):  # type: ignore[no-untyped-def]
        body = await request.body()
        if len(body) != up_bytes:
            return PlainTextResponse(f"expected a {up_bytes}-byte upload, got {len(body)}", status_code=400)
        quant = request.query_params.get("quant", "fp32")
        if quant not in payloads:
            return PlainTextResponse(f"quant {quant!r} is not one of {list(payloads)}", status_code=400)
        return Response(payloads[quant], media_type="application/octet-stream")

    async def health(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/adapt", adapt, methods=["POST"]), Route("/health", health)])
    tcp = _load("cloud/tcp.py", "paramcast_link_tcp")
    sock, cc = tcp.listening_socket(host, port, congestion_control)
    print(json.dumps(cc.as_dict()), flush=True)
    tls = {"ssl_certfile": tls_cert, "ssl_keyfile": tls_key} if tls_cert else {}
    config = uvicorn.Config(app, log_level="warning", access_log=False, loop="uvloop", http="httptools",
                            timeout_graceful_shutdown=1, **tls)
    uvicorn.Server(config).run(sockets=[sock])


# ------------------------------------------------------------------------------------------- client
def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _ping(host: str, count: int, timeout: float) -> list[float]:
    """ICMP echo round trips in ms (raw socket: needs root, which creating the namespaces did)."""
    rtts = []
    ident = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.settimeout(timeout)
        for seq in range(count):
            body = b"paramcast-link" * 4
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            packet = struct.pack("!BBHHH", 8, 0, _checksum(header + body), ident, seq) + body
            t0 = time.perf_counter()
            s.sendto(packet, (host, 0))
            while True:
                try:
                    reply = s.recv(2048)
                except TimeoutError:
                    break
                ihl = (reply[0] & 0x0F) * 4
                kind, _, _, rid, rseq = struct.unpack("!BBHHH", reply[ihl:ihl + 8])
                if kind == 0 and rid == ident and rseq == seq:
                    rtts.append((time.perf_counter() - t0) * 1e3)
                    break
            time.sleep(0.01)
    return rtts


def _summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"median_ms": statistics.median(ms), "p90_ms": ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))],
            "min_ms": ms[0], "max_ms": ms[-1], "n": len(ms)}


def _tcp_socket_options(congestion_control: str) -> list[tuple[int, int, int | bytes]]:
    # Per socket, because a namespace may only default to the host's *allowed* algorithms, while
    # a CAP_NET_ADMIN process may pick any available one for its own sockets.
    return [(socket.IPPROTO_TCP, socket.TCP_CONGESTION, congestion_control.encode())] if congestion_control else []


def _verify(spec: dict):  # type: ignore[no-untyped-def]
    import ssl

    return ssl.create_default_context(cafile=spec["tls_ca"]) if spec.get("tls_ca") else True


def _series(ping_host: str, body: bytes, sizes: dict[str, int], spec: dict, options: list,
            request_timeout_s: float, downlink) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """One configuration: a warm-up and ``calls`` keep-alive calls, then ``new_conn_calls`` fresh ones.

    ``quant`` is a quantisation or ``auto``: then, as :class:`paramcast.device.DeviceClient` does,
    each call asks for what :class:`~paramcast.device.downlink.DownlinkPolicy` picks from the
    goodput and first-byte time of this series' own earlier answers (the warm-up's included).
    """
    import httpx

    scheme = "https" if spec.get("tls_ca") else "http"
    url = f"{scheme}://{ping_host}:{spec['port']}/adapt"
    verify = _verify(spec)
    timeout = httpx.Timeout(request_timeout_s)
    auto = spec["quant"] == "auto"
    if auto:
        policy = downlink.DownlinkPolicy(spec["budget_ms"], spec["max_cost_points"], spec["costs"])
        estimator = downlink.LinkEstimator(clock=time.perf_counter)
    chosen: dict[str, int] = {}
    last_decision = None

    def call(c, measure: bool = True) -> float:  # type: ignore[no-untyped-def]
        nonlocal last_decision
        quant = spec["quant"]
        if auto:
            last_decision = policy.choose(estimator.estimate(), sizes)
            quant = last_decision.quant
        t0 = time.perf_counter()
        with c.stream("POST", url, params={"quant": quant}, content=body,
                      headers={"content-type": "application/octet-stream"}) as r:
            t1 = time.perf_counter()
            n = len(r.read())
        t2 = time.perf_counter()
        if r.status_code != 200 or n != sizes[quant]:
            raise RuntimeError(f"adapt call answered {r.status_code} with {n} bytes, expected 200 with {sizes[quant]}")
        if auto:
            estimator.observe(n, (t1 - t0) * 1e3, (t2 - t1) * 1e3, quant)
        if measure:
            chosen[quant] = chosen.get(quant, 0) + 1
        return (t2 - t0) * 1e3

    out: dict[str, object] = {"name": spec["name"]}
    with httpx.Client(timeout=timeout, verify=verify, transport=httpx.HTTPTransport(
            socket_options=options, verify=verify)) as c:
        call(c, measure=False)  # warm-up: handshake, slow start, server code paths
        out["keepalive"] = _summary([call(c) for _ in range(spec["calls"])])
    fresh = []
    for _ in range(spec.get("new_conn_calls", 0)):
        transport = httpx.HTTPTransport(socket_options=options, verify=verify,
                                        limits=httpx.Limits(max_keepalive_connections=0))
        with httpx.Client(timeout=timeout, verify=verify, transport=transport) as c:
            fresh.append(call(c))
    out["new_connection"] = _summary(fresh) if fresh else None
    out["quants"] = chosen
    out["last_decision"] = last_decision.as_dict() if last_decision is not None else None
    return out


def client(ping_host: str, up_bytes: int, sizes: dict[str, int], series: list[dict], pings: int,
           request_timeout_s: float, wait_ready_s: float, congestion_control: str, realtime: bool,
           **_: object) -> None:
    import httpx

    realtime = realtime and _realtime(5)
    downlink = _load("device/downlink.py", "paramcast_link_downlink")
    body = os.urandom(up_bytes)
    out: dict[str, object] = {"realtime": realtime}
    deadline = time.monotonic() + wait_ready_s
    for spec in series:  # the servers may still be starting: retry their health route, bounded
        scheme = "https" if spec.get("tls_ca") else "http"
        while True:
            try:
                httpx.get(f"{scheme}://{ping_host}:{spec['port']}/health", timeout=2.0,
                          verify=_verify(spec)).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    rtts = _ping(ping_host, pings, min(request_timeout_s, 2.0))
    out["ping"] = _summary(rtts) if rtts else None
    options = _tcp_socket_options(congestion_control)  # httpcore adds TCP_NODELAY itself
    out["series"] = [_series(ping_host, body, sizes, spec, options, request_timeout_s, downlink)
                     for spec in series]
    print(json.dumps(out), flush=True)


def main(argv: list[str]) -> None:
    role, args = argv[0], json.loads(argv[1])
    _exit_with_parent(int(args["parent_pid"]), float(args["max_seconds"]))
    {"delay": delay, "serve": serve, "client": client}[role](**args)


if __name__ == "__main__":
    main(sys.argv[1:])
