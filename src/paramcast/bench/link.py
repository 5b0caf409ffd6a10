"""``paramcast bench link``: real adapt calls across an emulated network, next to the ideal time.

The seeds' latency tables compute ``bytes / bandwidth``. This benchmark sends the same payloads
through real TCP, HTTP and kernel queues, across a link built from three network namespaces::

    device ns              net ns (router)                                   cloud ns
    client ──veth──► policy route ─► TUN ─► delay line ─► tbf (up)   ──veth──► server
    client ◄──veth── tbf (down) ◄─ delay line ◄─ TUN ◄─ policy route ◄──veth── server

* delay, jitter, loss: the kernel here has no netem, so a user-space delay line
  (:mod:`paramcast.bench._delayline`) owns a TUN device in the router namespace; policy routing
  hands it every packet the router forwards and it writes each one back ``rtt/2`` later. The TUN
  takes TCP segmentation offload, so the delay line moves whole 64 KB packets, not 1500 B frames.
  Three namespaces rather than two because a packet written into a TUN is routed as if it had
  arrived from outside, and a host drops arriving packets whose source address is its own.
* bandwidth: ``tc tbf`` at the profile's rate (MB = 1024² B) on the router's egress toward each
  endpoint, after the delay line (the order of a fixed delay and a FIFO queue does not change a
  packet's latency); tbf meters link-layer bytes, so framing costs ~4.5 % as on a real link.
* server and client run TCP cubic per socket and, like the delay line, under SCHED_FIFO, so the
  host's BBR and other load on a 2-core machine do not show up as link latency (docs/link.md).

Every call of :func:`run_link` makes its namespaces under fresh random names and removes them,
their interfaces and every process it started when it ends (exception, Ctrl-C, SIGTERM, or the
interpreter exiting). It needs root, ``ip``, ``tc`` and ``/dev/net/tun``; without them it raises
:class:`LinkUnavailable` naming what is missing.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import typer

from paramcast.bench.netsim import MB, PROFILES, Profile, transfer_ms

__all__ = ["EmulatedLink", "LinkUnavailable", "bench_link", "head_payload", "run_link"]

FEATURE_DIM = 192  # uploaded frame feature (All-in-One-Ti hidden size), fp32
HEAD_IN = 96       # generated head: Linear(HEAD_IN, V), fp32 weight and bias
ETH_OVERHEAD = 14  # bytes tbf counts on a veth beyond the IP packet
_ROLES = Path(__file__).with_name("_delayline.py")
_PORT = 8080
_SUBNET_DEV, _SUBNET_CLOUD = "10.231.1", "10.231.2"


class LinkUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no ``ip``/``tc``, no ``/dev/net/tun``)."""


def _missing_requirements() -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces need CAP_NET_ADMIN; run as root)")
    for tool, pkg in (("ip", "iproute2"), ("tc", "iproute2"), ("sysctl", "procps")):
        if shutil.which(tool) is None:
            missing.append(f"the `{tool}` command (apt-get install {pkg})")
    if not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun (the TUN driver the delay line forwards through)")
    return missing


def _sh(*cmd: str, timeout: float = 10.0) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


class EmulatedLink:
    """A device–net–cloud namespace triple with a rate-limited, delayed, lossy path.

    Use as a context manager; :meth:`close` is idempotent and also registered with ``atexit``.
    """

    def __init__(self, rtt_ms: float = 20.0, loss: float = 0.0, jitter_ms: float = 0.0, mtu: int = 1500,
                 burst_ms: float = 0.5, realtime: bool = True, offload: bool | None = None, seed: int = 0,
                 max_seconds: float = 900.0):
        if rtt_ms < 0 or jitter_ms < 0:
            raise ValueError(f"rtt_ms and jitter_ms must be >= 0, got {rtt_ms} and {jitter_ms}")
        if jitter_ms > rtt_ms / 2:
            raise ValueError(f"jitter_ms ({jitter_ms}) must be <= rtt_ms / 2 ({rtt_ms / 2}): a packet cannot leave early")
        if not 0 <= loss < 1:
            raise ValueError(f"loss is a per-packet drop probability in [0, 1), got {loss}")
        if not 576 <= mtu <= 65535:
            raise ValueError(f"mtu must be in [576, 65535], got {mtu}")
        self.rtt_ms, self.loss, self.jitter_ms, self.mtu = rtt_ms, loss, jitter_ms, mtu
        self.burst_ms, self.realtime, self.seed, self.max_seconds = burst_ms, realtime, seed, max_seconds
        # Dropping one offloaded 64 KB packet would drop ~45 segments at once: per-packet when lossy.
        self.offload = loss == 0 if offload is None else offload
        sfx = secrets.token_hex(3)
        self.ns = {role: f"pcl-{sfx}-{role}" for role in ("dev", "net", "cloud")}
        self.dev_if, self.net_dev_if, self.net_cloud_if, self.cloud_if = (f"pcl{sfx}{x}" for x in "dabc")
        self.tun = f"pclt{sfx}"
        # The router's egress toward each endpoint is the bottleneck: downlink toward the device,
        # uplink toward the cloud (after the delay line, so it sees whole offloaded packets).
        self._shaped = (self.net_dev_if, self.net_cloud_if)
        self.server_addr = f"{_SUBNET_CLOUD}.2"
        self._made: list[str] = []
        self._procs: list[subprocess.Popen] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="paramcast-link-")
        self._delay_stats = Path(self._tmp.name) / "delayline.json"
        self._delay_stats_result: dict[str, Any] | None = None
        self._closed = False
        self._old_sigterm: Any = None

    # ------------------------------------------------------------------------------------ set-up
    def __enter__(self) -> EmulatedLink:
        missing = _missing_requirements()
        if missing:
            self._tmp.cleanup()
            raise LinkUnavailable("cannot emulate a network link here; missing: " + "; ".join(missing))
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_exit)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _in(self, role: str, *cmd: str) -> str:
        return _sh("ip", "netns", "exec", self.ns[role], *cmd)

    def _build(self) -> None:
        for name in self.ns.values():
            try:
                _sh("ip", "netns", "add", name)
            except RuntimeError as e:
                raise LinkUnavailable(f"`ip netns add` does not work here: {e}") from None
            self._made.append(name)
            _sh("ip", "-n", name, "link", "set", "lo", "up")
        d, n, c = self.ns["dev"], self.ns["net"], self.ns["cloud"]
        _sh("ip", "link", "add", self.dev_if, "netns", d, "mtu", str(self.mtu), "type", "veth",
            "peer", "name", self.net_dev_if, "netns", n, "mtu", str(self.mtu))
        _sh("ip", "link", "add", self.cloud_if, "netns", c, "mtu", str(self.mtu), "type", "veth",
            "peer", "name", self.net_cloud_if, "netns", n, "mtu", str(self.mtu))
        for ns, dev, addr in ((d, self.dev_if, f"{_SUBNET_DEV}.2"), (n, self.net_dev_if, f"{_SUBNET_DEV}.1"),
                              (n, self.net_cloud_if, f"{_SUBNET_CLOUD}.1"), (c, self.cloud_if, self.server_addr)):
            _sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        _sh("ip", "-n", d, "route", "add", "default", "via", f"{_SUBNET_DEV}.1")
        _sh("ip", "-n", c, "route", "add", "default", "via", f"{_SUBNET_CLOUD}.1")
        # Router: forward, and send everything arriving on either veth through the TUN device;
        # what the delay line writes back arrives on the TUN and takes the main table onwards.
        # rp_filter off: a packet from the device arrives on the TUN, not on the device's veth.
        _sh("ip", "-n", n, "tuntap", "add", "dev", self.tun, "mode", "tun", *(["vnet_hdr"] if self.offload else []))
        _sh("ip", "-n", n, "link", "set", self.tun, "mtu", str(self.mtu), "txqueuelen", "20000", "up")
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                    f"net.ipv4.conf.{self.tun}.rp_filter=0", "net.ipv4.conf.all.send_redirects=0"):
            self._in("net", "sysctl", "-qw", key)
        for pref, dev in ((100, self.net_dev_if), (101, self.net_cloud_if)):
            _sh("ip", "-n", n, "rule", "add", "iif", dev, "lookup", "100", "pref", str(pref))
        _sh("ip", "-n", n, "route", "add", "default", "dev", self.tun, "table", "100")
        self._start_delay_line()

    def _spawn(self, role: str, proc_role: str, args: dict[str, Any]) -> subprocess.Popen:
        args = {"realtime": self.realtime, **args, "parent_pid": os.getpid(), "max_seconds": self.max_seconds}
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[role], sys.executable, str(_ROLES), proc_role,
                              json.dumps(args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        self._procs.append(p)
        return p

    def _start_delay_line(self) -> None:
        p = self._spawn("net", "delay", {
            "tun": self.tun, "one_way_ms": self.rtt_ms / 2, "jitter_ms": self.jitter_ms, "loss": self.loss,
            "seed": self.seed, "stats_path": str(self._delay_stats), "offload": self.offload})
        ready, _, _ = select.select([p.stdout], [], [], 10.0)
        if not ready or p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the delay line did not start: {p.stderr.read() if p.poll() is not None else 'timeout'}")

    def set_rate(self, mb_s: float) -> None:
        """Limit both directions to ``mb_s`` MB/s (MB = 1024² B, counted at the link layer)."""
        rate = mb_s * MB  # bytes/s
        # Bucket: a fraction of a millisecond of traffic (at least a few frames) so tbf neither
        # lets a response's head through at line rate nor stalls on timer wake-ups.
        burst = max(4 * (self.mtu + ETH_OVERHEAD), int(rate * self.burst_ms / 1e3))
        limit = 8 * MB  # queue space for a whole congestion window: tbf must delay, never drop
        for dev in self._shaped:
            _sh("tc", "-n", self.ns["net"], "qdisc", "replace", "dev", dev, "root", "tbf",
                "rate", f"{int(rate * 8)}bit", "burst", str(burst), "limit", str(limit))

    def qdisc_stats(self) -> dict[str, dict[str, int]]:
        out = {}
        for direction, dev in zip(("down", "up"), self._shaped, strict=True):
            q = json.loads(_sh("tc", "-n", self.ns["net"], "-s", "-j", "qdisc", "show", "dev", dev))[0]
            out[direction] = {k: int(q.get(k, 0)) for k in ("bytes", "packets", "drops", "overlimits", "requeues")}
        return out

    def _payload_paths(self, payloads: dict[str, bytes]) -> dict[str, str]:
        paths = {}
        for quant, data in payloads.items():
            path = Path(self._tmp.name) / f"payload-{quant}.bin"
            if not path.exists():
                path.write_bytes(data)
            paths[quant] = str(path)
        return paths

    def tls_files(self) -> tuple[str, str]:
        """A self-signed certificate (EC P-256, SAN = the server's address) and its key, made once."""
        cert, key = Path(self._tmp.name) / "cert.pem", Path(self._tmp.name) / "key.pem"
        if not cert.exists():
            if shutil.which("openssl") is None:
                raise LinkUnavailable("HTTPS needs the `openssl` command (apt-get install openssl)")
            _sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-days", "2", "-subj", "/CN=paramcast-link-bench", "-addext", f"subjectAltName=IP:{self.server_addr}",
                "-keyout", str(key), "-out", str(cert), timeout=30)
        return str(cert), str(key)

    def start_server(self, payloads: dict[str, bytes], up_bytes: int, congestion_control: str = "",
                     port: int = _PORT, tls: bool = False) -> dict[str, Any]:
        """Serve ``payloads`` (quant -> answer bytes) on ``port``; returns what its socket uses.

        ``congestion_control`` is ``paramcast serve --congestion-control``'s (``auto``, ``system``,
        a name; ``''`` = ``system``); ``tls``: HTTPS with :meth:`tls_files`.
        """
        cert, key = self.tls_files() if tls else ("", "")
        p = self._spawn("cloud", "serve", {"host": "0.0.0.0", "port": port, "up_bytes": up_bytes,
                                           "payload_paths": self._payload_paths(payloads),
                                           "congestion_control": congestion_control or "system",
                                           "tls_cert": cert, "tls_key": key})
        ready, _, _ = select.select([p.stdout], [], [], 30.0)
        line = p.stdout.readline().strip() if ready else ""
        if not line:
            raise RuntimeError(f"the link server did not start: {p.stderr.read() if p.poll() is not None else 'timeout'}")
        return json.loads(line)

    def run_client(self, wall_timeout_s: float, **args: Any) -> dict[str, Any]:
        """Run the client role in the device namespace; bounded by ``wall_timeout_s`` of wall time."""
        p = self._spawn("dev", "client", {"ping_host": self.server_addr, **args})
        try:
            stdout, stderr = p.communicate(timeout=wall_timeout_s)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the link client did not finish within {wall_timeout_s:.0f} s") from None
        finally:
            self._stop(p)
        if p.returncode != 0:
            raise RuntimeError(f"the link client failed ({p.returncode}): {stderr.strip()[-2000:]}")
        return json.loads(stdout.strip().splitlines()[-1])

    # ---------------------------------------------------------------------------------- teardown
    def _stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(3)
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
        if p in self._procs:
            self._procs.remove(p)

    def delay_line_stats(self) -> dict[str, Any] | None:
        """Forwarded/dropped packets and how late the delay line wrote them (after :meth:`close`)."""
        return self._delay_stats_result

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for p in list(self._procs):
                self._stop(p)
            try:  # the delay line writes its report when it stops
                self._delay_stats_result = json.loads(self._delay_stats.read_text())
            except (OSError, ValueError):
                self._delay_stats_result = None
            for name in reversed(self._made):
                # Anything still running inside our own namespaces was started by us: end it.
                r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=10)
                for pid in r.stdout.split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
            self._made.clear()
            self._tmp.cleanup()
        finally:
            atexit.unregister(self.close)
            if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, self._old_sigterm)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# ------------------------------------------------------------------------------------- benchmark
def head_payload(head_answers: int, seed: int = 0, quant: str = "fp32") -> tuple[bytes, str]:
    """The downlink bytes of one adaptation: a generated ``Linear(HEAD_IN, head_answers)``, ``quant`` on the wire.

    Encoded by :func:`paramcast.wire.encode` when that module is available, else random bytes of
    the raw fp32 size (fp32 only); the second value says which.
    """
    raw = (HEAD_IN + 1) * head_answers * 4
    try:
        from paramcast import wire
    except ImportError:
        if quant != "fp32":
            raise
        return os.urandom(raw), f"random bytes, (HEAD_IN + 1) * V * 4 = {raw} B (paramcast.wire not available)"
    import torch

    from paramcast.types import HeadParams

    g = torch.Generator().manual_seed(seed)
    head = HeadParams(device_id="link-bench", method="link", task="bench", model_version="0",
                      weight=torch.randn(head_answers, HEAD_IN, generator=g), bias=torch.randn(head_answers, generator=g))
    data = wire.encode(head, quant=quant)
    return data, f"paramcast.wire.encode(HeadParams {head_answers}x{HEAD_IN}, quant={quant}) = {len(data)} B (raw fp32 tensors {raw} B)"


def _client_timeout(ideal_ms: float, calls: int) -> float:
    """Bound on one client run: every call may take 20x its ideal plus start-up, never forever."""
    return 30 + (1 + calls) * max(2.0, 20 * ideal_ms / 1e3)


def run_link(profiles: list[str] | None = None, rtt_ms: float = 20.0, loss: float = 0.0, jitter_ms: float = 0.0,
             calls: int = 20, new_conn_calls: int = 5, head_answers: int = 1500, mtu: int = 1500,
             burst_ms: float = 0.5, congestion_control: str = "cubic", realtime: bool = True,
             seed: int = 0) -> dict[str, Any]:
    """Measure adapt calls (768 B up, one generated head down) over each profile on an emulated link.

    Returns a JSON-able dict: the link settings, ``rows`` (one per profile: bytes, ideal ms,
    keep-alive and new-connection median/p90 and their ratio to the ideal, ping RTT, tbf counters)
    and the delay line's own statistics. Raises :class:`LinkUnavailable` where it cannot run.
    """
    names = list(PROFILES) if profiles is None else list(profiles)
    unknown = [p for p in names if p not in PROFILES]
    if unknown:
        raise ValueError(f"unknown profile(s) {unknown}; choose from {list(PROFILES)}")
    if calls < 1 or new_conn_calls < 0 or head_answers < 1:
        raise ValueError(f"need calls >= 1, new_conn_calls >= 0, head_answers >= 1; got {calls}, {new_conn_calls}, {head_answers}")
    up_bytes = FEATURE_DIM * 4
    payload, payload_kind = head_payload(head_answers, seed)
    rows = []
    with EmulatedLink(rtt_ms=rtt_ms, loss=loss, jitter_ms=jitter_ms, mtu=mtu, burst_ms=burst_ms,
                      realtime=realtime, seed=seed) as link:
        link.start_server({"fp32": payload}, up_bytes, congestion_control)
        series = [{"name": "fp32", "port": _PORT, "quant": "fp32", "calls": calls, "new_conn_calls": new_conn_calls}]
        for i, name in enumerate(names):
            profile: Profile = PROFILES[name]
            link.set_rate(profile.bandwidth_mb_s)
            ideal = transfer_ms(up_bytes, len(payload), profile, rtt_ms=rtt_ms)
            m = link.run_client(wall_timeout_s=_client_timeout(ideal, calls + new_conn_calls), up_bytes=up_bytes,
                                sizes={"fp32": len(payload)}, series=series, pings=10,
                                request_timeout_s=min(30.0, _client_timeout(ideal, calls + new_conn_calls)),
                                wait_ready_s=20.0 if i == 0 else 2.0, congestion_control=congestion_control)
            (s,), ping = m["series"], m["ping"]
            keep, fresh = s["keepalive"], s["new_connection"]
            rows.append({
                "profile": name, "bandwidth_mb_s": profile.bandwidth_mb_s, "up_bytes": up_bytes,
                "down_bytes": len(payload), "ideal_ms": ideal,
                "keepalive_median_ms": keep["median_ms"], "keepalive_p90_ms": keep["p90_ms"],
                "keepalive_ratio": keep["median_ms"] / ideal,
                "new_conn_median_ms": fresh["median_ms"] if fresh else None,
                "new_conn_p90_ms": fresh["p90_ms"] if fresh else None,
                "new_conn_ratio": fresh["median_ms"] / ideal if fresh else None,
                "ping_rtt_median_ms": ping["median_ms"] if ping else None,
                "calls": keep["n"], "new_conn_calls": fresh["n"] if fresh else 0,
                "tbf": link.qdisc_stats(),
            })
    return {
        "benchmark": "link",
        "link": {"rtt_ms": rtt_ms, "loss": loss, "jitter_ms": jitter_ms, "mtu": mtu, "burst_ms": burst_ms,
                 "realtime": realtime, "offload": link.offload,
                 "tcp_congestion_control": congestion_control or
                 Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip(),
                 "topology": "device ns -veth- net ns (TUN delay line, tbf on both egress veths) -veth- cloud ns",
                 "namespaces": list(link.ns.values())},
        "payload": payload_kind, "head_answers": head_answers,
        "ideal": "rtt_ms + (up_bytes + down_bytes) / (bandwidth_mb_s * 1024**2) (bench.netsim.transfer_ms)",
        "rows": rows,
        "delay_line": link.delay_line_stats(),
    }


_COLUMNS = ["profile", "bandwidth_mb_s", "down_bytes", "ideal_ms", "keepalive_median_ms", "keepalive_p90_ms",
            "keepalive_ratio", "new_conn_median_ms", "new_conn_ratio", "ping_rtt_median_ms"]


def _markdown(result: dict[str, Any]) -> str:
    from paramcast.bench.report import markdown_table

    lk = result["link"]
    dl = result.get("delay_line") or {}
    return (
        f"# Adapt latency over an emulated link\n\n"
        f"RTT {lk['rtt_ms']} ms, loss {lk['loss']}, jitter ±{lk['jitter_ms']} ms, MTU {lk['mtu']}, "
        f"TCP {lk['tcp_congestion_control']}; {lk['topology']}.\n\n"
        f"Payload: {result['payload']}; upload {result['rows'][0]['up_bytes']} B. "
        f"Ideal = {result['ideal']}. Ratio = measured median / ideal. "
        f"Keep-alive: one warm HTTP/1.1 connection; new-conn: a fresh TCP connection per call "
        f"(handshake + slow start).\n\n"
        + markdown_table(result["rows"], _COLUMNS)
        + (f"\nDelay line: {dl.get('forwarded')} packets forwarded, {dl.get('dropped')} dropped, "
           f"written late by median {dl.get('late_us_median', float('nan')):.0f} µs, "
           f"p99 {dl.get('late_us_p99', float('nan')):.0f} µs (SCHED_FIFO: {dl.get('realtime')}).\n" if dl else "")
    )


def _plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    x = range(len(rows))
    series = [("ideal", "ideal_ms"), ("keep-alive median", "keepalive_median_ms"),
              ("new connection median", "new_conn_median_ms")]
    series = [s for s in series if all(r[s[1]] is not None for r in rows)]
    w = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for k, (label, key) in enumerate(series):
        ax.bar([i + (k - (len(series) - 1) / 2) * w for i in x], [r[key] for r in rows], w, label=label)
    ax.set_xticks(list(x), [r["profile"] for r in rows])
    ax.set_ylabel("adapt latency (ms)")
    ax.set_title(f"adapt call over an emulated link, RTT {result['link']['rtt_ms']} ms")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def bench_link(
    out: Path = typer.Option(Path("benchmarks/results/link"), "--out",
                             help="Result path without suffix: writes .json, .md (and .png with --plot)."),
    profile: list[str] = typer.Option(None, "--profile", "-p",
                                      help=f"Network profile, repeatable; default all of {list(PROFILES)}."),
    rtt_ms: float = typer.Option(20.0, help="Round-trip time the delay line adds (rtt/2 each way), ms."),
    loss: float = typer.Option(0.0, help="Per-packet drop probability in each direction, in [0, 1)."),
    jitter_ms: float = typer.Option(0.0, help="Uniform ± jitter on each one-way delay, ms (never reorders)."),
    calls: int = typer.Option(20, help="Keep-alive adapt calls per profile, after one warm-up call."),
    new_conn_calls: int = typer.Option(5, help="Calls per profile that each open a new TCP connection (0: skip)."),
    head_answers: int = typer.Option(1500, help="V of the generated Linear(96, V) head sent down, fp32."),
    mtu: int = typer.Option(1500, help="MTU of every link in the emulated path."),
    congestion_control: str = typer.Option(
        "cubic", help="TCP congestion control of client and server sockets ('' = the host's default; "
        "this host defaults to bbr, which paces sub-BDP responses below the link rate)."),
    realtime: bool = typer.Option(True, help="Run delay line, server and client under SCHED_FIFO so other "
                                             "load on the machine does not show up as link latency."),
    plot: bool = typer.Option(True, help="Also write a PNG bar chart, measured vs ideal."),
) -> dict[str, Any]:
    """Measure real adapt latency over an emulated link (network namespaces + tbf + delay line).

    Needs root, iproute2 and /dev/net/tun. Example:
    paramcast bench link --profile 4G-5 --profile 5G-100 --rtt-ms 20 --calls 20
    """
    from paramcast.bench.report import write_result

    result = run_link(profiles=profile or None, rtt_ms=rtt_ms, loss=loss, jitter_ms=jitter_ms, calls=calls,
                      new_conn_calls=new_conn_calls, head_answers=head_answers, mtu=mtu,
                      congestion_control=congestion_control, realtime=realtime)
    paths = write_result(result, out, _markdown(result))
    if plot:
        paths["png"] = _plot(result, out.with_suffix(".png"))
    for kind, p in paths.items():
        print(f"wrote {kind}: {p}")
    return result
