"""``paramcast bench serve``: throughput and latency of the real service under N concurrent devices,
against its two ceilings measured in the same run.

Runs the service as a real process (``python -m paramcast.cli.serve``, uvicorn on a free loopback
port) once per mode and drives it with N devices for T seconds after a warm-up:

* modes: ``batched`` (dynamic batching, ``--max-batch``), ``naive`` (``--max-batch 1``: one generator
  call per request) and ``static`` — the HTTP ceiling: the same server and route stack (auth, body
  read, ``wire.decode``, checks) answering a precomputed answer of the same size
  (``paramcast serve --static-answer``) instead of generating and encoding one; and ``static-busy``,
  the same ceiling while a pure-Python spin pinned to CPU 1 keeps the second CPU as busy as generation
  and encoding keep it under batched load (the ceiling an adapted request can reach where the two
  CPUs share a physical core's time; Linux with CPUs 0 and 1 only);
* load (``--load``): ``wrk`` — a compiled load generator (Debian's ``wrk``, one thread, one keep-alive
  connection per device, a Lua script posting each device's wire-encoded upload with its own token),
  so that the load costs the server little CPU; and/or ``python`` — N asyncio devices on one
  ``httpx.AsyncClient`` (the end-to-end figure of a Python client). The CPU seconds of the server and
  of the load process over the measured interval are recorded (as cores busy);
* the compute ceiling (``--compute``): the served method's ``cloud_step_batch`` alone in a tight
  loop at batch 1, 8, 32, 64, as GFLOP/s of its largest layer, against a bare ``nn.functional.linear``
  of that layer's shape (fp32, bf16 and the engine's dynamic int8), plus the served heads' max abs error against fp32,
  and the run's CPU interference (:func:`cpu_interference`: how much slower Python runs on one CPU while
  the other works, which the static ceiling never pays and an adapted request does).

After each wrk run one answer per device is fetched and decoded (checksum, shapes, device id).
The served method defaults to ``bench-hyper`` (registered by the server's plugin
:mod:`paramcast.bench.serve_plugin`; importing this module registers nothing): a hypernetwork of the shape docs/design.md
measures serving with, 192 -> 256 -> 97 * V (V = 1500: 37 M parameters, ~150 MB of fp32 weights
read once per generator call). It is untrained — serving speed depends on shapes, not on weights.
``--method`` serves any registered method instead (it must accept ``num_answers``), e.g.
``--method cdc-mmpg --method-arg serve_dtype=bf16``.

    python -m paramcast.bench.serve --devices 32 --seconds 10 --num-answers 1500
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import torch
from torch import nn

from paramcast import catalog, wire
from paramcast.cloud.metrics import ADAPT_STAGES
from paramcast.methods.base import Method
from paramcast.methods.cdc_mmpg.serving import INT8_ENGINES, by_batch, prepack_int8
from paramcast.types import HeadParams, Update, Upload

__all__ = ["BenchHyper", "bench_serve", "compute_ceiling", "to_markdown", "update_docs"]


def _create(name: str, **kwargs) -> Method:
    """The served method, built in this process too (``bench-hyper`` without registering it here)."""
    return BenchHyper(**kwargs) if name == "bench-hyper" else catalog.create(name, **kwargs)


class BenchHyper(Method):
    """Serving-benchmark hypernetwork: feature (1, C) -> weight (V, H), bias (V,) of a device head.

    ``nn.Sequential(Linear(C, hidden), GELU, Linear(hidden, V * (H + 1)))``; ``cloud_step_batch``
    answers N uploads with one forward pass, (N, C) -> (N, V, H + 1).
    """

    collaborative = True
    task = "bench"
    model_version = "bench-hyper-1"

    def __init__(self, num_answers: int = 1500, feature_dim: int = 192, hidden: int = 256, head_in: int = 96,
                 seed: int = 0):
        torch.manual_seed(seed)
        self.v, self.h = num_answers, head_in
        self.upload_shape = (1, feature_dim)
        self.generator = nn.Sequential(nn.Linear(feature_dim, hidden), nn.GELU(),
                                       nn.Linear(hidden, num_answers * (head_in + 1))).eval()
        self.reset()

    def fit(self, history) -> None:
        raise NotImplementedError("bench-hyper measures serving speed; it is never trained")

    def device_step(self, batch: dict) -> Upload:
        return Upload(device_id=batch["device_id"], method=self.name, task=self.task,
                      model_version=self.model_version, features=batch["features"][:1].float())

    def cloud_step(self, upload: Upload) -> HeadParams:
        return self.cloud_step_batch([upload])[0]

    def cloud_step_batch(self, uploads: Sequence[Upload]) -> list[Update | None]:
        x = torch.cat([u.features for u in uploads])                   # (N, C)
        out = self.generator(x).view(len(uploads), self.v, self.h + 1)  # (N, V, H + 1)
        return [HeadParams(device_id=u.device_id, method=self.name, task=self.task, model_version=self.model_version,
                           weight=o[:, : self.h].contiguous(), bias=o[:, self.h].contiguous())
                for u, o in zip(uploads, out, strict=True)]

    def apply(self, update: Update) -> None:
        self.weight, self.bias = update.weight, update.bias

    def predict(self, batch: dict) -> torch.Tensor:
        return batch["hidden"] @ self.weight.T + self.bias  # (B, H) -> (B, V)

    def reset(self) -> None:
        self.weight, self.bias = torch.zeros(self.v, self.h), torch.zeros(self.v)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _engine_args(engine: str, run_dir: Path) -> list[str]:
    """``paramcast serve`` flags for an engine name: ``uvicorn``, or ``ray`` with optional ``-r<replicas>``,
    ``-mo<max ongoing requests per replica>`` (default 512; Ray Serve's own default is 5) and ``-sb``
    (Ray Serve's ``@serve.batch`` instead of paramcast's batcher in each replica: ``--ray-batching serve``)."""
    name, *opts = engine.split("-")
    if name == "uvicorn" and not opts:
        return []
    if name != "ray":
        raise ValueError(f"engine {engine!r} is not uvicorn or ray[-r<N>][-mo<N>][-sb]")
    replicas, max_ongoing, batching = 1, 512, "replica"
    for opt in opts:
        if opt.startswith("mo") and opt[2:].isdigit():
            max_ongoing = int(opt[2:])
        elif opt.startswith("r") and opt[1:].isdigit():
            replicas = int(opt[1:])
        elif opt == "sb":
            batching = "serve"
        else:
            raise ValueError(f"engine {engine!r}: unknown option {opt!r} (r<replicas>, mo<max ongoing>, sb)")
    return ["--engine", "ray", "--replicas", str(replicas), "--limit-concurrency", str(max_ongoing),
            "--ray-batching", batching, "--run-dir", str(run_dir)]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _server_env() -> tuple[dict[str, str], list[str]]:
    """The environment of a server under test, and the ``PARAMCAST_*`` names left out of it: every server option
    comes from the bench's own flags, so a variable the user set for ``paramcast serve`` cannot change one arm."""
    ignored = sorted(k for k in os.environ if k.startswith("PARAMCAST_"))
    return {k: v for k, v in os.environ.items() if k not in ignored}, ignored


class _Server:
    """The service in its own process on a free loopback port."""

    def __init__(self, *, method: str, num_answers: int, token_file: Path, max_batch: int, max_wait_ms: float,
                 threads: int, log: Path, engine: str = "uvicorn", method_args: Sequence[str] = (),
                 static_answer: Path | None = None, encode_threads: int = 1):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "paramcast.cli.serve", "--method", method, "--plugin", "paramcast.bench.serve_plugin",
               "--method-arg", f"num_answers={num_answers}", "--token-file", str(token_file),
               "--port", str(self.port), "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms),
               "--upload-shape", "1,192", "--threads", str(threads), "--log-level", "warning",
               "--encode-threads", str(encode_threads)]
        for arg in method_args:
            cmd += ["--method-arg", arg]
        if static_answer is not None:
            cmd += ["--static-answer", str(static_answer)]
        # Ray's run directory: short, under /tmp (its unix socket paths must fit 107 bytes)
        self._run_dir = tempfile.mkdtemp(prefix="pc-ray-", dir="/tmp")
        cmd += _engine_args(engine, Path(self._run_dir))
        env, _ = _server_env()
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {log}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start in 120 s; see {log}")
            time.sleep(0.2)
        self.info = httpx.get(self.url + "/v1/info", timeout=5).json()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        return _cpu_seconds(self.proc.pid)

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=5).text

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)  # Ray Serve shuts its replicas, proxy and local Ray down first
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        shutil.rmtree(self._run_dir, ignore_errors=True)


async def _drive(url: str, uploads: list[bytes], tokens: list[str], seconds: float, warmup_s: float,
                 quant: str, verify_every: int, check_device: bool = True) -> dict:
    n = len(uploads)
    cpu0, wall0 = time.process_time(), time.perf_counter()  # the client's own CPU (warm-up included)
    lat: list[float] = []
    errors: dict[str, int] = {}
    stats = {"ok": 0, "bytes_up": 0, "bytes_down": 0, "verified": 0}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        measure_from, stop_at = start + warmup_s, start + warmup_s + seconds

        async def device(i: int) -> None:
            headers = {"Authorization": f"Bearer {tokens[i]}", "Content-Type": "application/octet-stream"}
            k = 0
            while (t0 := time.perf_counter()) < stop_at:
                try:
                    r = await client.post("/v1/adapt", content=uploads[i], headers=headers, params={"quant": quant})
                    status, body = r.status_code, r.content
                except httpx.HTTPError as exc:
                    status, body = type(exc).__name__, b""
                t1 = time.perf_counter()
                if t0 < measure_from:
                    continue
                k += 1
                if status == 200 and k % verify_every == 1 % verify_every:
                    try:
                        update = wire.decode(body)
                        assert not check_device or update.device_id == f"bench-{i:03d}"
                        stats["verified"] += 1
                    except (ValueError, AssertionError):
                        status = "bad_answer"
                if status == 200:
                    stats["ok"] += 1
                    lat.append((t1 - t0) * 1e3)
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1
                stats["bytes_up"] += len(uploads[i])
                stats["bytes_down"] += len(body)

        await asyncio.gather(*[device(i) for i in range(n)])
        elapsed = time.perf_counter() - measure_from
    return {"requests_ok": stats["ok"], "errors": sum(errors.values()), "error_kinds": errors,
            "seconds": round(elapsed, 3), "req_per_s": round(stats["ok"] / elapsed, 1),
            "p50_ms": round(_pct(lat, 0.5), 1), "p99_ms": round(_pct(lat, 0.99), 1),
            "mean_ms": round(statistics.fmean(lat), 1) if lat else float("nan"),
            "bytes_up": stats["bytes_up"], "bytes_down": stats["bytes_down"],
            "down_bytes_per_answer": round(stats["bytes_down"] / max(stats["ok"], 1)),
            "verified_answers": stats["verified"],
            "client_cpu_cores": round((time.process_time() - cpu0) / (time.perf_counter() - wall0), 2)}


_CLK_TCK = os.sysconf("SC_CLK_TCK")

# wrk's Lua side: each device's upload and token from files, round robin over one request per device;
# done() prints one JSON line (latencies in microseconds). Answers are not handed to Lua (that would cost
# the load generator a copy of every 582 KB answer); the bench decodes one per device afterwards.
WRK_SCRIPT = r"""
local reqs, i = {}, 0
function init(args)
  local dir, n, quant = args[1], tonumber(args[2]), args[3]
  for k = 0, n - 1 do
    local f = assert(io.open(string.format("%s/upload-%03d.bin", dir, k), "rb"))
    local body = f:read("*a"); f:close()
    local t = assert(io.open(string.format("%s/token-%03d.txt", dir, k), "rb"))
    local token = t:read("*a"); t:close()
    reqs[k + 1] = wrk.format("POST", "/v1/adapt?quant=" .. quant,
      {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/octet-stream"}, body)
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (stat fields 14, 15)


def wrk_version() -> str:
    """``wrk -v``'s first line; a clear error when wrk is not installed."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (it is --load wrk's compiled load generator): run `make services` "
                           "as root or `apt-get install wrk`, or pass --load python to use the Python client")
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10)
    return (out.stdout + out.stderr).strip().splitlines()[0]


def _run_wrk(url: str, data_dir: Path, devices: int, seconds: float, quant: str) -> tuple[dict, float]:
    """One wrk run (1 thread, one connection per device); its JSON summary and the CPU seconds it used."""
    cmd = ["wrk", "-t", "1", "-c", str(devices), "-d", f"{max(1, round(seconds))}s", "--timeout", "60s",
           "-s", str(data_dir / "adapt.lua"), url, "--", str(data_dir), str(devices), quant]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {out[-2000:]}")
    return json.loads(line.removeprefix("WRK_JSON ")), usage.ru_utime + usage.ru_stime


def _drive_wrk(server: _Server, data_dir: Path, uploads: list[bytes], tokens: list[str], seconds: float,
               warmup_s: float, quant: str, check_device: bool) -> dict:
    n = len(uploads)
    if warmup_s > 0:
        _run_wrk(server.url, data_dir, n, warmup_s, quant)
    cpu0 = server.cpu_seconds()
    w, load_cpu = _run_wrk(server.url, data_dir, n, seconds, quant)
    server_cpu = server.cpu_seconds() - cpu0
    elapsed = w["duration_us"] / 1e6
    kinds = {k: w[k] for k in ("connect", "read", "write", "status", "timeout") if w[k]}
    ok = w["requests"] - w["status"] - w["timeout"] - w["read"] - w["write"]
    verified = 0
    with httpx.Client(base_url=server.url, timeout=60) as client:  # after the run: one decoded answer per device
        for i in range(n):
            r = client.post("/v1/adapt", content=uploads[i], params={"quant": quant},
                            headers={"Authorization": f"Bearer {tokens[i]}", "Content-Type": "application/octet-stream"})
            try:
                update = wire.decode(r.content)
                assert r.status_code == 200 and (not check_device or update.device_id == f"bench-{i:03d}")
                verified += 1
            except (ValueError, AssertionError):
                kinds["bad_answer"] = kinds.get("bad_answer", 0) + 1
    return {"requests_ok": ok, "errors": sum(kinds.values()), "error_kinds": kinds, "seconds": round(elapsed, 3),
            "req_per_s": round(ok / elapsed, 1), "p50_ms": round(w["p50_us"] / 1e3, 1),
            "p99_ms": round(w["p99_us"] / 1e3, 1), "mean_ms": round(w["mean_us"] / 1e3, 1),
            "bytes_up": sum(len(u) for u in uploads) * w["requests"] // n, "bytes_down": w["bytes"],
            "down_bytes_per_answer": round(w["bytes"] / max(w["requests"], 1)), "verified_answers": verified,
            "cpu_cores": {"server": round(server_cpu / elapsed, 2), "load": round(load_cpu / elapsed, 2)}}


def _median_ms(fn, min_s: float = 0.4, min_reps: int = 5, max_reps: int = 200) -> float:
    fn()
    fn()  # warm-up: first calls allocate (and make the low-precision weight copy)
    times, t_end = [], time.perf_counter() + min_s
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1e3, 3)


def python_probe(reps: int = 3) -> float:
    """Best time (s) over ``reps`` of a fixed pure-Python loop: the kind of work an event loop does."""
    best = float("inf")
    for _ in range(reps):
        t0, s = time.perf_counter(), 0
        for i in range(2_000_000):
            s += i * i % 7
        best = min(best, time.perf_counter() - t0)
    return best


MODES = ("batched", "naive", "static", "static-busy")
_SPIN = "import os\nos.sched_setaffinity(0, {1})\nwhile True:\n    pass\n"


@contextmanager
def beside(neighbour: Sequence[str] | None, settle_s: float = 0.5) -> Iterator[None]:
    """Run the command ``neighbour`` (it pins itself; ``None``: nothing) from ``settle_s`` before the
    block until after it, then kill it."""
    if neighbour is None:
        yield
        return
    proc = subprocess.Popen(list(neighbour))
    try:
        time.sleep(settle_s)
        yield
    finally:
        proc.kill()
        proc.wait()


def probe_beside(neighbour: Sequence[str] | None, reps: int = 3, settle_s: float = 0.5) -> float:
    """:func:`python_probe` while the command ``neighbour`` runs (see :func:`beside`)."""
    with beside(neighbour, settle_s):
        return python_probe(reps)


def _spin_cmd() -> list[str]:
    return [sys.executable, "-c", _SPIN]


def _two_cpus() -> bool:
    return sys.platform == "linux" and {0, 1} <= os.sched_getaffinity(0)


def cpu_interference(trials: int = 3, reps: int = 3) -> dict | None:
    """How much slower :func:`python_probe` runs pinned to CPU 0 while a process pinned to CPU 1 spins
    (median over ``trials`` alternating rounds). The static-body ceiling runs the event loop with the
    other CPU idle, an adapted request with it busy: where the two CPUs share a physical core's time on
    the host, that costs the event loop this factor (``benchmarks/diagnostics/core_interference.py``
    tries other neighbours). It varies with the host's load, so every run records its own. ``None``
    off Linux (``sched_setaffinity``) or where CPUs 0 and 1 are not both available."""
    if not _two_cpus():
        return None
    saved = os.sched_getaffinity(0)
    alone, busy = [], []
    try:
        os.sched_setaffinity(0, {0})
        for _ in range(trials):
            alone.append(probe_beside(None, reps))
            busy.append(probe_beside(_spin_cmd(), reps))
    finally:
        os.sched_setaffinity(0, saved)
    a, b = statistics.median(alone), statistics.median(busy)
    return {"trials": trials, "alone_s": round(a, 4), "neighbour_busy_s": round(b, 4), "slowdown": round(b / a, 3)}


def compute_ceiling(method: str = "bench-hyper", num_answers: int = 1500, method_args: Sequence[str] = (),
                    batches: Sequence[int] = (1, 8, 32, 64), threads: int = 0) -> dict:
    """``cloud_step_batch`` alone at each batch size vs a bare ``linear`` of the method's largest layer.

    GFLOP/s count that layer's 2·N·K·O multiply-adds only (the rest of the generator is < 3 % of them
    for the shapes served here), so ``fraction_of_bare`` is the bare layer's time over the method's.
    The method runs as configured (``method_args``, e.g. ``serve_dtype=bf16``) and, when that is not
    fp32, also with ``serve_dtype=fp32`` (the baseline); its heads at the largest batch are compared
    with the fp32 ones (max abs error of weight / bias, of logits on N(0, 1) hidden vectors, and how
    often the top answer changes)."""
    from paramcast.cli.serve import _method_kwargs

    if threads > 0:
        torch.set_num_threads(threads)
    kwargs = _method_kwargs(list(method_args))
    served = _create(method, num_answers=num_answers, **kwargs)
    dtype = kwargs.get("serve_dtype", "fp32")
    base = served if dtype == "fp32" else _create(method, num_answers=num_answers,
                                                  **{**kwargs, "serve_dtype": "fp32"})
    layer = max((m for mod in served.modules().values() for m in mod.modules() if isinstance(m, nn.Linear)),
                key=lambda m: m.weight.numel())
    k, o = layer.in_features, layer.out_features
    w32, b32 = layer.weight.detach(), layer.bias.detach()
    w16, b16 = w32.bfloat16(), b32.bfloat16()
    scale8 = (w32.abs().amax(1) / 127).clamp_min(torch.finfo(torch.float32).tiny)
    # the engines' own dynamic int8 linear (per-tensor activations, bias fused), each where serving uses it
    w8 = tuple((n, prepack_int8(w32, scale8, b32, engine=e)) for n, e in INT8_ENGINES)
    w8 = tuple((n, p) for n, p in w8 if p is not None)
    shape = tuple(getattr(served, "upload_shape", (1, 192)))
    g = torch.Generator().manual_seed(0)
    rows, heads = [], {}
    with torch.inference_mode():
        for n in batches:
            uploads = [Upload(device_id=f"bench-{i:03d}", method=served.name, task=served.task or "",
                              model_version=served.model_version or "", features=torch.randn(*shape, generator=g))
                       for i in range(n)]
            x = torch.randn(n, k, generator=g)
            xb = x.bfloat16()
            flop = 2 * n * k * o
            row = {"batch": n, "method_ms": _median_ms(partial(served.cloud_step_batch, uploads)),
                   "bare_fp32_ms": _median_ms(partial(nn.functional.linear, x, w32, b32)),
                   "bare_bf16_ms": _median_ms(partial(nn.functional.linear, xb, w16, b16)),
                   "bare_int8_ms": _median_ms(partial(torch.ops.quantized.linear_dynamic, x, by_batch(w8, n), False))
                   if w8 else None}
            row["method_fp32_ms"] = row["method_ms"] if base is served else \
                _median_ms(partial(base.cloud_step_batch, uploads))
            bare = row.get(f"bare_{dtype}_ms") or row["bare_fp32_ms"]
            row.update({"method_gflops": round(flop / row["method_ms"] / 1e6, 1),
                        "bare_gflops": round(flop / bare / 1e6, 1), "fraction_of_bare": round(bare / row["method_ms"], 3),
                        "method_ms_per_head": round(row["method_ms"] / n, 4)})
            rows.append(row)
            heads = {"served": served.cloud_step_batch(uploads), "fp32": base.cloud_step_batch(uploads)}
        result = {"method": method, "serve_dtype": dtype, "layer": [k, o], "threads": torch.get_num_threads(),
                  "rows": rows}
        first, last = rows[0], rows[-1]
        result["fp32_batch1_ms"] = first["method_fp32_ms"] if first["batch"] == 1 else None
        if result["fp32_batch1_ms"]:
            result["per_head_speedup"] = {r["batch"]: round(result["fp32_batch1_ms"] / r["method_ms_per_head"], 1)
                                          for r in rows}
        if dtype != "fp32" and isinstance(heads["served"][0], HeadParams):
            result["head_error"] = _head_error(heads["served"], heads["fp32"], g)
        result["largest_batch"] = last["batch"]
        one = heads["served"][0]
        if isinstance(one, HeadParams):  # encoding one answer vs its floor: hashing its bytes once (the checksum)
            data = torch.cat([one.weight.reshape(-1), one.bias]).numpy()
            result["encode"] = {"quant": "fp32", "bytes": len(wire.encode(one, quant="fp32")),
                                "encode_ms": _median_ms(partial(wire.encode, one, quant="fp32")),
                                "sha256_ms": _median_ms(lambda: hashlib.sha256(data).digest())}
    return result


def _head_error(served: list, ref: list, g: torch.Generator) -> dict:
    err_w = max(float((a.weight - b.weight).abs().max()) for a, b in zip(served, ref, strict=True))
    err_b = max(float((a.bias - b.bias).abs().max()) for a, b in zip(served, ref, strict=True))
    h = torch.randn(256, ref[0].weight.shape[1], generator=g)
    logits = [(h @ a.weight.T + a.bias, h @ b.weight.T + b.bias) for a, b in zip(served, ref, strict=True)]
    return {"weight_max_abs": err_w, "bias_max_abs": err_b,
            "weight_max_abs_ref": max(float(b.weight.abs().max()) for b in ref),
            "logit_max_abs": max(float((la - lb).abs().max()) for la, lb in logits),
            "logit_max_abs_ref": max(float(lb.abs().max()) for _, lb in logits),
            "top1_changed": round(sum(float((la.argmax(1) != lb.argmax(1)).float().mean()) for la, lb in logits)
                                  / len(logits), 5)}


_SERIES = {"batch_size": ("paramcast_batch_size", ""), "generate": ("paramcast_generate_seconds", ""),
           "request": ("paramcast_request_seconds", '{route="/v1/adapt"}'),
           **{st: ("paramcast_adapt_stage_seconds", f'{{stage="{st}"}}') for st in ADAPT_STAGES}}


def _sums(metrics_text: str) -> dict[str, tuple[float, float]]:
    """``(sum, count)`` of each histogram of :data:`_SERIES` in the server's ``/metrics`` text (0, 0 if absent)."""
    out = {}
    for key, (name, labels) in _SERIES.items():
        pair = [re.search(rf"^{name}_{part}{re.escape(labels)} (\S+)$", metrics_text, re.M) for part in ("sum", "count")]
        out[key] = (float(pair[0].group(1)), float(pair[1].group(1))) if all(pair) else (0.0, 0.0)
    return out


def _means(metrics_text: str, before: dict[str, tuple[float, float]]) -> dict[str, float | None]:
    """Per series, the mean of what was observed since ``before`` (an earlier :func:`_sums`): the batch size,
    and milliseconds for the generator call, the whole adapt request and each handler stage."""
    now, out = _sums(metrics_text), {}
    for key, (total, count) in now.items():
        total, count = total - before[key][0], count - before[key][1]
        out[key] = None if count <= 0 else round(total / count * (1 if key == "batch_size" else 1e3), 3)
    return out


def bench_serve(devices: int = 32, seconds: float = 10.0, num_answers: int = 1500, method: str = "bench-hyper",
                quant: str = "fp32", max_batch: int = 32, max_wait_ms: float = 2.0, warmup_s: float = 2.0,
                threads: int = 0, encode_threads: int = 1, verify_every: int = 16, modes: str = "batched,naive,static", engines: str = "uvicorn",
                load: str = "wrk", compute: bool = True, method_arg: list[str] | None = None,
                out: Path | None = None, docs: Path | None = None, quiet: bool = False) -> dict:
    """Run the serving benchmark; return the result dict, print its Markdown table (unless ``quiet``),
    and write ``serve.json`` + ``serve.md`` to ``out`` (and the table into ``docs`` between the
    ``<!-- bench-serve:begin -->`` / ``end`` markers). ``modes``: comma-separated, batched, naive and/or
    static (the HTTP ceiling). ``load``: comma-separated, wrk and/or python; rows of a load other than
    the first are named ``<mode>@<load>``. ``engines``: comma-separated, ``uvicorn`` and/or
    ``ray[-r<replicas>][-mo<max ongoing>][-sb]`` (Ray Serve; ``-sb``: Ray's ``@serve.batch`` instead of
    paramcast's batcher in each replica); rows of engines other than uvicorn are named ``<engine>/<mode>``, and each engine's batched throughput is divided by uvicorn's (``engine_ratio``)
    when both ran. ``compute``: also measure :func:`compute_ceiling` (in this process, before any server).
    ``method_arg``: ``key=value`` constructor arguments of the served method (repeatable).
    Parameters are typer-style (plain defaults), so the function doubles as a CLI command."""
    from paramcast.cli.serve import _method_kwargs
    from paramcast.cloud.auth import issue_token  # the bench plays both sides: it mints the tokens

    method_args = list(method_arg or [])
    modes = [m.strip() for m in modes.split(",") if m.strip()]
    bad = set(modes) - set(MODES)
    if bad or not modes:
        raise ValueError(f"modes must be a subset of {list(MODES)}, got {list(modes)}")
    if "static-busy" in modes and not _two_cpus():
        raise ValueError("mode static-busy pins a spin to CPU 1 next to the server: it needs Linux with CPUs 0 and 1")
    loads = [x.strip() for x in load.split(",") if x.strip()]
    if set(loads) - {"wrk", "python"} or not loads:
        raise ValueError(f"load must be a subset of ['wrk', 'python'], got {loads}")
    tools = {"python": f"httpx {httpx.__version__} (asyncio, {sys.implementation.name} {sys.version.split()[0]})"}
    if "wrk" in loads:
        tools["wrk"] = wrk_version()  # fails here, clearly, when wrk is missing
    result: dict = {"config": {"devices": devices, "seconds": seconds, "num_answers": num_answers, "method": method,
                               "method_args": method_args, "quant": quant, "max_batch": max_batch,
                               "max_wait_ms": max_wait_ms, "warmup_s": warmup_s,
                               "threads": threads or torch.get_num_threads(), "encode_threads": encode_threads,
                               "cpus": os.cpu_count(),
                               "engines": engines, "load": loads,
                               "env": {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")
                                       if k in os.environ}, "load_tools": {x: tools[x] for x in loads},
                               "command": "paramcast bench serve " + " ".join(sys.argv[3:] if sys.argv[1:3] == ["bench", "serve"]
                                                                              else sys.argv[1:])},
                    "modes": {}}
    ignored = _server_env()[1]
    if ignored:
        result["config"]["ignored_env"] = ignored
        print(f"warning: the servers under test do not inherit {', '.join(ignored)}: bench serve sets every server "
              "option with its own flags (--threads, --encode-threads, --max-wait-ms, --method-arg, ...)", file=sys.stderr)
    if compute:
        result["compute"] = compute_ceiling(method, num_answers, method_args, threads=threads)
        result["cpu_interference"] = cpu_interference()
    with tempfile.TemporaryDirectory(prefix="paramcast-bench-serve-") as tmp:
        tmp = Path(tmp)
        token_file = tmp / "tokens.json"
        tokens = [issue_token(token_file, f"bench-{i:03d}") for i in range(devices)]
        g = torch.Generator().manual_seed(0)
        runs = [(e.strip(), m) for e in engines.split(",") if e.strip() for m in modes]
        for engine, _ in runs:
            _engine_args(engine, tmp)  # a bad engine name fails before any server starts
        static_answer = None
        if {"static", "static-busy"} & set(modes):  # the answer of the same size, made by the same method in this process
            served = _create(method, num_answers=num_answers, **_method_kwargs(method_args))
            shape = tuple(getattr(served, "upload_shape", (1, 192)))
            with torch.inference_mode():
                update = served.cloud_step(Upload(device_id="bench-000", method=served.name, task=served.task or "",
                                                  model_version=served.model_version or "",
                                                  features=torch.randn(*shape, generator=g)))
            static_answer = tmp / "static-answer.bin"
            static_answer.write_bytes(wire.encode(update, quant=quant))
            del served, update
        (tmp / "adapt.lua").write_text(WRK_SCRIPT)
        for i, t in enumerate(tokens):
            (tmp / f"token-{i:03d}.txt").write_text(t)
        for engine, mode in runs:
            name = mode if engine == "uvicorn" else f"{engine}/{mode}"
            static = mode.startswith("static")  # static, static-busy: the precomputed answer
            server = _Server(method=method, num_answers=num_answers, token_file=token_file,
                             max_batch=1 if mode == "naive" else max_batch, max_wait_ms=max_wait_ms,
                             threads=threads, log=tmp / f"server-{name.replace('/', '-')}.log", engine=engine,
                             method_args=method_args, static_answer=static_answer if static else None,
                             encode_threads=encode_threads)
            try:
                info = server.info
                uploads = [wire.encode(Upload(device_id=f"bench-{i:03d}", method=info["method"],
                                              task=info["task"] or "", model_version=info["model_version"] or "",
                                              features=torch.randn(1, 192, generator=g)))
                           for i in range(devices)]
                for i, body in enumerate(uploads):
                    (tmp / f"upload-{i:03d}.bin").write_bytes(body)
                for j, tool in enumerate(loads):
                    before = _sums(server.metrics())
                    with beside(_spin_cmd() if mode == "static-busy" else None):
                        if tool == "wrk":
                            row = _drive_wrk(server, tmp, uploads, tokens, seconds, warmup_s, quant,
                                             check_device=not static)
                        else:
                            cpu0 = server.cpu_seconds()
                            row = asyncio.run(_drive(server.url, uploads, tokens, seconds, warmup_s, quant,
                                                     verify_every, check_device=not static))
                            row["cpu_cores"] = {"server": round((server.cpu_seconds() - cpu0) / row["seconds"], 2),
                                                "load": row.pop("client_cpu_cores")}
                    means = _means(server.metrics(), before)
                    row["mean_batch"] = means.pop("batch_size")
                    row["server_ms"] = means  # mean ms: a generator call, an adapt request, its handler's stages
                    row["update"] = info["update"]
                    row["batcher"] = info["batching"].get("batcher")  # what grouped the uploads (DynamicBatcher | ServeBatcher)
                    row["load"] = tool
                    result["modes"][name if j == 0 else f"{name}@{tool}"] = row
            finally:
                server.stop()
    rows = result["modes"]
    if {"batched", "naive"} <= set(rows):
        naive = rows["naive"]["req_per_s"]
        result["speedup"] = round(rows["batched"]["req_per_s"] / naive, 2) if naive else None
    for ceiling in ("static", "static-busy"):  # fraction_of_static, fraction_of_static_busy
        if {"batched", ceiling} <= set(rows) and rows[ceiling]["req_per_s"]:
            result[f"fraction_of_{ceiling.replace('-', '_')}"] = round(rows["batched"]["req_per_s"] / rows[ceiling]["req_per_s"], 3)
    bounds = _bounds(result)
    if bounds:
        result["bounds"] = bounds
    if "batched" in rows and rows["batched"]["req_per_s"]:
        ratios = {name.split("/")[0]: round(r["req_per_s"] / rows["batched"]["req_per_s"], 3)
                  for name, r in rows.items() if name.endswith("/batched")}
        if ratios:
            result["engine_ratio"] = ratios  # batched req/s of the engine / of uvicorn (1 = no overhead)
    if out is not None:
        from paramcast.bench.report import write_result

        write_result(result, Path(out) / "serve", to_markdown(result))
    if docs is not None:
        update_docs(result, Path(docs))
    if not quiet:
        print(to_markdown(result))
    return result


def _bounds(result: dict) -> dict | None:
    """What this run's own measurements allow an adapted request, before any server design (issue 18).

    An adapted request costs at least the static ceiling's whole request (``1 / static req/s``: the event
    loop saturated on HTTP, auth, reading, decoding and checking the upload) plus its share of the
    generator at its cheapest measured batch (``compute``'s ms per head, batch <= max batch) plus encoding
    one answer (``compute.encode``). ``serial`` adds them up: one CPU does all three (as ``--encode-threads 0``'s
    server does, every step on its event loop). ``all_cpus`` uses every CPU perfectly, the GIL ignored: the least of
    the HTTP side at the ``static-busy`` ceiling (``static`` where not measured) with generation and encoding on
    another CPU, generation and encoding alone, and the CPU budget — all CPUs' time over the CPU time a request
    needs: the static request's server CPU, generation and encoding, and the load generator's CPU per static
    request (where the static row records its CPU).
    ``naive_serial`` is the same sum at batch 1: batching shrinks only the generator's share, so
    ``batched_over_naive`` is the most it divides a request's work by (measured naive throughput can fall
    further below its sum than batched does, so the measured ratio may exceed it). None without a ``static``
    row and a compute block whose encode time is at the run's downlink quant (the block encodes fp32 only)."""
    rows, comp = result["modes"], result.get("compute") or {}
    static = rows.get("static", {}).get("req_per_s")
    encode = comp.get("encode") or {}
    enc = encode.get("encode_ms") if encode.get("quant") == result["config"].get("quant", "fp32") else None
    heads = [r for r in comp.get("rows", []) if r["batch"] <= result["config"]["max_batch"]]
    if not static or enc is None or not heads:
        return None
    http_ms = 1e3 / static
    best = min(heads, key=lambda r: r["method_ms_per_head"])
    compute_ms = best["method_ms_per_head"] + enc
    one = next((r["method_ms"] for r in heads if r["batch"] == 1), None)
    all_cpus = [(rows.get("static-busy") or {}).get("req_per_s") or static, 1e3 / compute_ms]
    out = {"http_ms": round(http_ms, 3), "head_ms": best["method_ms_per_head"], "head_batch": best["batch"],
           "encode_ms": enc, "serial_req_per_s": round(1e3 / (http_ms + compute_ms), 1)}
    cpu = rows["static"].get("cpu_cores") or {}
    if {"server", "load"} <= set(cpu) and result["config"].get("cpus"):
        need_ms = (cpu["server"] + cpu["load"]) * 1e3 / static + compute_ms  # CPU ms per adapted request, all processes
        out["cpu_budget_req_per_s"] = round(result["config"]["cpus"] * 1e3 / need_ms, 1)
        all_cpus.append(out["cpu_budget_req_per_s"])
    out["all_cpus_req_per_s"] = round(min(all_cpus), 1)
    out["serial_fraction_of_static"] = round(out["serial_req_per_s"] / static, 3)
    out["all_cpus_fraction_of_static"] = round(out["all_cpus_req_per_s"] / static, 3)
    if one is not None:
        out["naive_serial_req_per_s"] = round(1e3 / (http_ms + one + enc), 1)
        out["batched_over_naive"] = round(out["serial_req_per_s"] / out["naive_serial_req_per_s"], 2)
    batched = rows.get("batched", {}).get("req_per_s")
    if batched:
        out["batched_fraction_of_serial"] = round(batched / out["serial_req_per_s"], 3)
    return out


def to_markdown(result: dict) -> str:
    c = result["config"]
    args = f", {', '.join(c['method_args'])}" if c.get("method_args") else ""
    tools = "; ".join(f"{k}: {v}" for k, v in c.get("load_tools", {}).items())
    enc = {0: ", batching, generation and encoding on the event loop (--encode-threads 0)", 1: ""}.get(
        c.get("encode_threads", 1), f", {c.get('encode_threads')} encoding threads")
    lines = [f"Serving benchmark: {c['devices']} concurrent devices, {c['seconds']} s per mode, method "
             f"`{c['method']}` (V = {c['num_answers']}{args}), downlink {c['quant']}, max batch {c['max_batch']}, "
             f"max wait {c['max_wait_ms']} ms, {c['threads']} torch threads{enc}, {c['cpus']} CPUs.",
             *([f"Load: {tools}. Command: `{c['command']}`."] if tools else []), "",
             "| mode | load | req/s | p50 ms | p99 ms | mean batch | errors | MB down | server cores | load cores |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, r in result["modes"].items():
        cpu = r.get("cpu_cores", {})
        mb = r["mean_batch"] if r.get("mean_batch") is not None else "–"
        lines.append(f"| {mode} | {r.get('load', 'python')} | {r['req_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {mb} | "
                     f"{r['errors']} | {r['bytes_down'] / 1e6:.0f} | {cpu.get('server', '–')} | {cpu.get('load', '–')} |")
    timed = {m: r["server_ms"] for m, r in result["modes"].items() if r.get("server_ms", {}).get("request")}
    if timed:
        lines += ["", "Where a request's time goes, server side (mean ms; the stages are the adapt handler's: read_check = "
                      "body read, decode and checks; batch = queued, generated and handed back; encode = queued on the "
                      "encoder, encoded and handed back; request = the whole HTTP request; generate = one generator call):",
                  "", "| mode | request | read_check | batch | encode | generate |", "|---|---:|---:|---:|---:|---:|"]
        for m, t in timed.items():
            lines.append(f"| {m} | " + " | ".join("–" if t.get(k) is None else f"{t[k]:.2f}"
                                                   for k in ("request", *ADAPT_STAGES, "generate")) + " |")
    if result.get("fraction_of_static"):
        lines += ["", f"Batched / static-body ceiling (same server, same route stack, answer precomputed): "
                      f"**{result['fraction_of_static']:.0%}**."]
    if result.get("fraction_of_static_busy"):
        lines += ["", "Batched / the same ceiling beside a Python spin on CPU 1 (`static-busy`: the second CPU as "
                      f"busy as generation keeps it): **{result['fraction_of_static_busy']:.0%}**."]
    if result.get("speedup"):
        lines += ["", f"Batched / naive throughput: **{result['speedup']}x**."]
    b = result.get("bounds")
    if b:
        lines += ["", f"Bounds from this run's own parts (an adapted request = the static request, {b['http_ms']} ms, + "
                      f"its share of the generator at batch {b['head_batch']}, {b['head_ms']} ms, + encoding its answer, "
                      f"{b['encode_ms']} ms): all on one CPU **{b['serial_req_per_s']} req/s = "
                      f"{b['serial_fraction_of_static']:.0%} of static**; every CPU used perfectly (HTTP beside "
                      f"generation and encoding, the load generator's CPU counted, no GIL) **{b['all_cpus_req_per_s']} "
                      f"req/s = {b['all_cpus_fraction_of_static']:.0%}**."
                  + (f" The same sum at batch 1 gives {b['naive_serial_req_per_s']} req/s: batching divides a request's "
                     f"work by at most **{b['batched_over_naive']}x**." if "batched_over_naive" in b else "")
                  + (f" Batched reached {b['batched_fraction_of_serial']:.0%} of the serial bound."
                     if "batched_fraction_of_serial" in b else "")]
    for engine, ratio in result.get("engine_ratio", {}).items():
        lines += ["", f"{engine} / uvicorn batched throughput: **{ratio}x** (overhead {1 / ratio:.2f}x)."
                  if ratio else f"{engine}: no request answered."]
    inter = result.get("cpu_interference")
    if inter:
        lines += ["", f"CPU interference in this run: a pure-Python probe pinned to CPU 0 is **{inter['slowdown']}x** "
                      "slower while a process pinned to CPU 1 spins (median of "
                      f"{inter['trials']}); the static ceiling runs its event loop with CPU 1 idle, an adapted request "
                      "with it busy."]
    comp = result.get("compute")
    if comp:
        k, o = comp["layer"]
        lines += ["", f"Compute ceiling: `cloud_step_batch` alone (serve_dtype {comp['serve_dtype']}) vs a bare "
                      f"`linear` of its largest layer ({k} -> {o}), {comp['threads']} threads, median ms; GFLOP/s of "
                      "that layer.", "",
                  "| batch | method ms | method fp32 ms | bare fp32 ms | bare bf16 ms | bare int8 ms | ms / head | "
                  "method GFLOP/s | bare GFLOP/s | fraction of bare |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in comp["rows"]:
            lines.append(f"| {r['batch']} | {r['method_ms']} | {r['method_fp32_ms']} | {r['bare_fp32_ms']} | "
                         f"{r['bare_bf16_ms']} | {r.get('bare_int8_ms') or '–'} | {r['method_ms_per_head']} | "
                         f"{r['method_gflops']} | {r['bare_gflops']} | {r['fraction_of_bare']:.0%} |")
        if comp.get("per_head_speedup"):
            lines += ["", "Per-head generator time vs the fp32 method at batch 1 "
                          f"({comp['fp32_batch1_ms']} ms): "
                          + ", ".join(f"batch {b}: **{v}x** less" for b, v in comp["per_head_speedup"].items()) + "."]
        enc = comp.get("encode")
        if enc:
            lines += ["", f"Encoding one {enc['quant']} answer ({enc['bytes']} B): {enc['encode_ms']} ms; its floor, "
                          f"SHA-256 over the same bytes once: {enc['sha256_ms']} ms."]
        err = comp.get("head_error")
        if err:
            lines += ["", f"Heads served in {comp['serve_dtype']} vs fp32 (batch {comp['largest_batch']}): weight max abs "
                          f"error {err['weight_max_abs']:.3g} (max |W| {err['weight_max_abs_ref']:.3g}), bias "
                          f"{err['bias_max_abs']:.3g}; logits on N(0, 1) hidden vectors {err['logit_max_abs']:.3g} "
                          f"(max |logit| {err['logit_max_abs_ref']:.3g}); top answer changed for "
                          f"{err['top1_changed']:.3%} of them."]
    return "\n".join(lines) + "\n"


DOCS_BEGIN, DOCS_END = "<!-- bench-serve:begin -->", "<!-- bench-serve:end -->"


def update_docs(result: dict, path: Path) -> None:
    """Replace what lies between the bench-serve markers in ``path`` with :func:`to_markdown`'s table."""
    text = path.read_text()
    if DOCS_BEGIN not in text or DOCS_END not in text:
        raise ValueError(f"{path} has no {DOCS_BEGIN} ... {DOCS_END} section to regenerate")
    head, rest = text.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    path.write_text(f"{head}{DOCS_BEGIN}\n<!-- generated by `paramcast bench serve --docs`; do not edit -->\n"
                    f"{to_markdown(result)}{DOCS_END}{tail}")


if __name__ == "__main__":
    import typer

    typer.run(bench_serve)
