"""``paramcast bench serve``: throughput and latency of the real service under N concurrent devices.

Runs the service as a real process (``python -m paramcast.cli.serve``, uvicorn on a free loopback
port) twice — with dynamic batching and with naive per-request generation (``--max-batch 1``) — and
drives each with N simulated devices (asyncio + one ``httpx.AsyncClient``, one keep-alive connection
per device) for T seconds. Reports throughput, p50/p99 latency, errors and bytes for both, side by
side, as a JSON-able dict and a Markdown table.

The served method defaults to ``bench-hyper`` (registered here): a hypernetwork of the shape docs/design.md
measures serving with, 192 -> 256 -> 97 * V (V = 1500: 37 M parameters, ~150 MB of fp32 weights
read once per generator call). It is untrained — serving speed depends on shapes, not on weights.
``--method`` serves any registered method instead (it must accept ``num_answers``).

    python -m paramcast.bench.serve --devices 32 --seconds 10 --num-answers 1500
"""

from __future__ import annotations

import asyncio
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
from collections.abc import Sequence
from pathlib import Path

import httpx
import torch
from torch import nn

from paramcast import wire
from paramcast.methods.base import Method
from paramcast.registry import _REGISTRY, register
from paramcast.types import HeadParams, Update, Upload

__all__ = ["BenchHyper", "bench_serve", "to_markdown"]


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


if "bench-hyper" not in _REGISTRY:
    register("bench-hyper")(BenchHyper)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _engine_args(engine: str, run_dir: Path) -> list[str]:
    """``paramcast serve`` flags for an engine name: ``uvicorn``, or ``ray`` with optional ``-r<replicas>``
    and ``-mo<max ongoing requests per replica>`` (default 512; Ray Serve's own default is 5)."""
    name, *opts = engine.split("-")
    if name == "uvicorn" and not opts:
        return []
    if name != "ray":
        raise ValueError(f"engine {engine!r} is not uvicorn or ray[-r<N>][-mo<N>]")
    replicas, max_ongoing = 1, 512
    for opt in opts:
        if opt.startswith("mo") and opt[2:].isdigit():
            max_ongoing = int(opt[2:])
        elif opt.startswith("r") and opt[1:].isdigit():
            replicas = int(opt[1:])
        else:
            raise ValueError(f"engine {engine!r}: unknown option {opt!r} (r<replicas>, mo<max ongoing>)")
    return ["--engine", "ray", "--replicas", str(replicas), "--limit-concurrency", str(max_ongoing),
            "--run-dir", str(run_dir)]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class _Server:
    """The service in its own process on a free loopback port."""

    def __init__(self, *, method: str, num_answers: int, token_file: Path, max_batch: int, max_wait_ms: float,
                 threads: int, log: Path, engine: str = "uvicorn"):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "paramcast.cli.serve", "--method", method, "--plugin", "paramcast.bench.serve",
               "--method-arg", f"num_answers={num_answers}", "--token-file", str(token_file),
               "--port", str(self.port), "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms),
               "--upload-shape", "1,192", "--threads", str(threads), "--log-level", "warning"]
        # Ray's run directory: short, under /tmp (its unix socket paths must fit 107 bytes)
        self._run_dir = tempfile.mkdtemp(prefix="pc-ray-", dir="/tmp")
        cmd += _engine_args(engine, Path(self._run_dir))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMCAST_")}
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
                 quant: str, verify_every: int) -> dict:
    n = len(uploads)
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
                        assert update.device_id == f"bench-{i:03d}"
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
            "verified_answers": stats["verified"]}


def _mean_batch(metrics_text: str) -> float:
    s = re.search(r"^paramcast_batch_size_sum (\S+)$", metrics_text, re.M)
    c = re.search(r"^paramcast_batch_size_count (\S+)$", metrics_text, re.M)
    return round(float(s.group(1)) / max(float(c.group(1)), 1), 2) if s and c else float("nan")


def bench_serve(devices: int = 32, seconds: float = 10.0, num_answers: int = 1500, method: str = "bench-hyper",
                quant: str = "fp32", max_batch: int = 32, max_wait_ms: float = 2.0, warmup_s: float = 2.0,
                threads: int = 0, verify_every: int = 16, modes: str = "batched,naive", engines: str = "uvicorn",
                out: Path | None = None, quiet: bool = False) -> dict:
    """Run the serving benchmark; return the result dict, print its Markdown table (unless ``quiet``),
    and write ``serve.json`` + ``serve.md`` to ``out``. ``modes``: comma-separated, batched and/or naive.
    ``engines``: comma-separated, ``uvicorn`` and/or ``ray[-r<replicas>][-mo<max ongoing>]`` (Ray Serve);
    rows of engines other than uvicorn are named ``<engine>/<mode>``, and each engine's batched
    throughput is divided by uvicorn's (``engine_ratio``) when both ran.
    Parameters are typer-style (plain defaults), so the function doubles as a CLI command."""
    from paramcast.cloud.auth import issue_token  # the bench plays both sides: it mints the tokens

    modes = [m.strip() for m in modes.split(",") if m.strip()]
    bad = set(modes) - {"batched", "naive"}
    if bad or not modes:
        raise ValueError(f"modes must be a subset of ['batched', 'naive'], got {list(modes)}")
    result: dict = {"config": {"devices": devices, "seconds": seconds, "num_answers": num_answers, "method": method,
                               "quant": quant, "max_batch": max_batch, "max_wait_ms": max_wait_ms,
                               "warmup_s": warmup_s, "threads": threads or torch.get_num_threads(),
                               "cpus": os.cpu_count(), "engines": engines},
                    "modes": {}}
    with tempfile.TemporaryDirectory(prefix="paramcast-bench-serve-") as tmp:
        token_file = Path(tmp) / "tokens.json"
        tokens = [issue_token(token_file, f"bench-{i:03d}") for i in range(devices)]
        g = torch.Generator().manual_seed(0)
        runs = [(e.strip(), m) for e in engines.split(",") if e.strip() for m in modes]
        for engine, _ in runs:
            _engine_args(engine, Path(tmp))  # a bad engine name fails before any server starts
        for engine, mode in runs:
            name = mode if engine == "uvicorn" else f"{engine}/{mode}"
            server = _Server(method=method, num_answers=num_answers, token_file=token_file,
                             max_batch=max_batch if mode == "batched" else 1, max_wait_ms=max_wait_ms,
                             threads=threads, log=Path(tmp) / f"server-{name.replace('/', '-')}.log", engine=engine)
            try:
                info = server.info
                uploads = [wire.encode(Upload(device_id=f"bench-{i:03d}", method=info["method"],
                                              task=info["task"] or "", model_version=info["model_version"] or "",
                                              features=torch.randn(1, 192, generator=g)))
                           for i in range(devices)]
                row = asyncio.run(_drive(server.url, uploads, tokens, seconds, warmup_s, quant, verify_every))
                row["mean_batch"] = _mean_batch(server.metrics())
                row["update"] = info["update"]
            finally:
                server.stop()
            result["modes"][name] = row
    rows = result["modes"]
    if {"batched", "naive"} <= set(rows):
        naive = rows["naive"]["req_per_s"]
        result["speedup"] = round(rows["batched"]["req_per_s"] / naive, 2) if naive else None
    if "batched" in rows and rows["batched"]["req_per_s"]:
        ratios = {name.split("/")[0]: round(r["req_per_s"] / rows["batched"]["req_per_s"], 3)
                  for name, r in rows.items() if name.endswith("/batched")}
        if ratios:
            result["engine_ratio"] = ratios  # batched req/s of the engine / of uvicorn (1 = no overhead)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "serve.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / "serve.md").write_text(to_markdown(result))
    if not quiet:
        print(to_markdown(result))
    return result


def to_markdown(result: dict) -> str:
    c = result["config"]
    lines = [f"Serving benchmark: {c['devices']} concurrent devices, {c['seconds']} s per mode, method "
             f"`{c['method']}` (V = {c['num_answers']}), downlink {c['quant']}, {c['cpus']} CPUs.", "",
             "| mode | req/s | p50 ms | p99 ms | mean batch | errors | bytes up | bytes down |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, r in result["modes"].items():
        lines.append(f"| {mode} | {r['req_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['mean_batch']} | "
                     f"{r['errors']} | {r['bytes_up']} | {r['bytes_down']} |")
    if result.get("speedup"):
        lines += ["", f"Batched / naive throughput: **{result['speedup']}x**."]
    for engine, ratio in result.get("engine_ratio", {}).items():
        lines += ["", f"{engine} / uvicorn batched throughput: **{ratio}x** (overhead {1 / ratio:.2f}x)."
                  if ratio else f"{engine}: no request answered."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import typer

    typer.run(bench_serve)
