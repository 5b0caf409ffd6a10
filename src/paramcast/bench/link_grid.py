"""``paramcast bench link-grid``: adapt latency over the links phones see, per server configuration.

One :class:`~paramcast.bench.link.EmulatedLink` per (RTT, loss, jitter) cell; in it three servers
(the service's socket code, ``paramcast/cloud/tcp.py``): cubic on :8080, the service default
(``auto``: bbr where the kernel has it) on :8081, the default over HTTPS (a self-signed EC
certificate the benchmark makes; TLS 1.3) on :8443. Per profile one client runs every
configuration ("series") in turn, each with a warm-up call, ``calls`` keep-alive calls and
``new_conn_calls`` calls on fresh connections:

* ``cubic fp32``, ``default fp32``, ``https fp32``: the fp32 head (582 KB for V = 1500);
* ``default fp16 / int8 / nf4``: a fixed downlink quantisation;
* ``auto 150 ms``, ``auto 75 ms`` (default server), ``cubic auto 150 ms``: the device's adaptive
  downlink (:mod:`paramcast.device.downlink`, the same file) with that budget and the committed
  accuracy costs of cdc-mmpg (1-point ceiling).

Every latency is compared with the ideal *fp32* time ``RTT + (768 B + fp32 bytes) / bandwidth``
(``ratio``), the issue's yardstick; ``ideal_sent_ms`` is the ideal for the bytes a series really
received. The client's own sockets use cubic (a phone's Linux default); the server sends ~all bytes.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import typer

from paramcast.bench.link import _PORT, FEATURE_DIM, EmulatedLink, _client_timeout, head_payload
from paramcast.bench.netsim import MB, PROFILES, transfer_ms

__all__ = ["bench_link_grid", "run_grid"]

QUANTS = ("fp32", "fp16", "int8", "nf4")
_PORTS = {"cubic": _PORT, "default": _PORT + 1, "https": 8443}
LOSSES, RTTS, JITTER_MS = (0.0, 0.005, 0.01, 0.02), (20.0, 40.0, 80.0), 5.0
GRID_PROFILES, TARGET_PROFILES, TARGET_RTT = ("4G-15", "5G-100"), tuple(PROFILES), 40.0


def _series(level: str, calls: int, new_conn: int, costs: dict[str, float]) -> list[dict[str, Any]]:
    """The configurations one client runs at a cell.

    ``level``: ``full`` (grid profiles at the target RTT: every configuration), ``grid`` (grid
    profiles elsewhere: no fp16/int8, no 75 ms budget, no cubic auto) or ``target`` (the other
    profiles: the service default's rows only). Cubic's lossy calls take seconds each, so cubic
    fp32 runs ``calls // 2 + 1`` keep-alive and ``min(new_conn, 2)`` fresh calls; the adaptive
    series run ``calls + 4`` so that most of their calls come after the window (8 answers) has
    forgotten the warm-up's.
    """
    out = []
    if level != "target":
        out.append({"name": "cubic fp32", "server": "cubic", "quant": "fp32", "calls": calls // 2 + 1,
                    "new_conn_calls": min(new_conn, 2)})
    out += [{"name": "default fp32", "server": "default", "quant": "fp32", "new_conn_calls": new_conn},
            {"name": "https fp32", "server": "https", "quant": "fp32", "new_conn_calls": new_conn}]
    if level != "target":
        out += [{"name": f"default {q}", "server": "default", "quant": q}
                for q in (QUANTS[1:] if level == "full" else ("nf4",))]
    out.append({"name": "auto 150 ms", "server": "default", "quant": "auto", "budget_ms": 150.0, "calls": calls + 4})
    if level != "grid":
        out.append({"name": "auto 75 ms", "server": "default", "quant": "auto", "budget_ms": 75.0, "calls": calls + 4})
    if level == "full":
        out.append({"name": "cubic auto 150 ms", "server": "cubic", "quant": "auto", "budget_ms": 150.0,
                    "calls": calls + 4})
    for s in out:
        s.update(port=_PORTS[s["server"]], max_cost_points=1.0, costs=costs)
        s.setdefault("calls", calls)
        s.setdefault("new_conn_calls", 0)
    return out


def _cells(losses, rtts, jitter_ms) -> list[tuple[float, float, float]]:
    """(RTT, loss, jitter) links: the grid at ±jitter, plus loss-free jitter-free references."""
    cells = [(r, p, jitter_ms) for r in rtts for p in losses]
    return cells + [(r, 0.0, 0.0) for r in rtts] if jitter_ms else cells


def run_grid(losses=LOSSES, rtts=RTTS, jitter_ms: float = JITTER_MS, profiles=GRID_PROFILES,
             target_profiles=TARGET_PROFILES, target_rtt: float = TARGET_RTT, calls: int = 8,
             new_conn_calls: int = 3, head_answers: int = 1500, realtime: bool = True, seed: int = 0,
             log=print) -> dict[str, Any]:
    """Run the grid (module doc); a JSON-able dict with one row per (cell, profile, series)."""
    from paramcast.device.downlink import accuracy_costs

    unknown = [p for p in (*profiles, *target_profiles) if p not in PROFILES]
    if unknown:
        raise ValueError(f"unknown profile(s) {unknown}; choose from {list(PROFILES)}")
    if calls < 1 or new_conn_calls < 0:
        raise ValueError(f"need calls >= 1 and new_conn_calls >= 0, got {calls} and {new_conn_calls}")
    up_bytes = FEATURE_DIM * 4
    payloads = {q: head_payload(head_answers, seed, quant=q)[0] for q in QUANTS}
    encode_ms = _encode_ms(head_answers, seed)
    sizes = {q: len(b) for q, b in payloads.items()}
    costs = accuracy_costs("cdc-mmpg")
    rows, links, t_start = [], [], time.monotonic()
    for rtt, loss, jitter in _cells(losses, rtts, jitter_ms):
        t_cell = time.monotonic()
        names = [(p, "full" if rtt == target_rtt else "grid") for p in profiles]
        if (rtt == target_rtt and loss in (0.0, 0.01)) or (loss == 0 and jitter == 0 and rtt <= target_rtt):
            names += [(p, "target") for p in target_profiles if p not in profiles]
        with EmulatedLink(rtt_ms=rtt, loss=loss, jitter_ms=jitter, realtime=realtime, seed=seed) as link:
            servers = {name: link.start_server(payloads, up_bytes, cc, port=_PORTS[name], tls=name == "https")
                       for name, cc in (("cubic", "cubic"), ("default", "auto"), ("https", "auto"))}
            cert = link.tls_files()[0]
            for i, (name, level) in enumerate(names):
                profile = PROFILES[name]
                link.set_rate(profile.bandwidth_mb_s)
                ideal = transfer_ms(up_bytes, sizes["fp32"], profile, rtt_ms=rtt)
                series = _series(level, calls, new_conn_calls, costs)
                for s in series:
                    s["tls_ca"] = cert if s["server"] == "https" else ""
                n_calls = sum(1 + s["calls"] + s["new_conn_calls"] for s in series)
                m = link.run_client(wall_timeout_s=_client_timeout(ideal, n_calls), up_bytes=up_bytes, sizes=sizes,
                                    series=series, pings=5, request_timeout_s=30.0,
                                    wait_ready_s=30.0 if i == 0 else 5.0, congestion_control="cubic")
                for spec, got in zip(series, m["series"], strict=True):
                    rows.append(_row(rtt, loss, jitter, profile, spec, got, servers[spec["server"]], ideal, sizes,
                                     up_bytes, m["ping"]))
        links.append({"rtt_ms": rtt, "loss": loss, "jitter_ms": jitter, "offload": link.offload,
                      "seconds": time.monotonic() - t_cell, "delay_line": link.delay_line_stats()})
        log(f"rtt {rtt:g} ms, loss {loss:g}, jitter {jitter:g} ms: {time.monotonic() - t_cell:.0f} s "
            f"(total {time.monotonic() - t_start:.0f} s)")
    return {
        "benchmark": "link-grid", "head_answers": head_answers, "sizes": sizes, "up_bytes": up_bytes,
        "servers": {n: {"port": _PORTS[n], "congestion_control_requested": cc, "tls": n == "https"}
                    for n, cc in (("cubic", "cubic"), ("default", "auto"), ("https", "auto"))},
        "client_congestion_control": "cubic", "calls": calls, "new_conn_calls": new_conn_calls,
        "accuracy_costs": costs, "encode_ms": encode_ms,
        "ideal": "ratio = median / (rtt_ms + (up_bytes + fp32 bytes) / (bandwidth_mb_s * 1024**2))",
        "links": links, "rows": rows, "seconds": time.monotonic() - t_start,
    }


def _encode_ms(head_answers: int, seed: int, repeats: int = 5) -> dict[str, float]:
    """The service's ``wire.encode`` time per quantisation for this head (median of ``repeats``,
    one thread): the benchmark's servers answer pre-encoded bytes, so this is not in its latencies."""
    import torch

    from paramcast import wire
    from paramcast.types import HeadParams

    g = torch.Generator().manual_seed(seed)
    head = HeadParams(device_id="link-bench", method="link", task="bench", model_version="0",
                      weight=torch.randn(head_answers, 96, generator=g), bias=torch.randn(head_answers, generator=g))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for q in QUANTS:
            wire.encode(head, quant=q)  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                wire.encode(head, quant=q)
                times.append((time.perf_counter() - t0) * 1e3)
            out[q] = statistics.median(times)
    finally:
        torch.set_num_threads(threads)
    return out


def _row(rtt, loss, jitter, profile, spec, got, server, ideal, sizes, up_bytes, ping) -> dict[str, Any]:
    keep, fresh = got["keepalive"], got["new_connection"]
    quants = got["quants"]
    mean_bytes = sum(sizes[q] * n for q, n in quants.items()) / max(1, sum(quants.values()))
    return {
        "rtt_ms": rtt, "loss": loss, "jitter_ms": jitter, "profile": profile.name,
        "bandwidth_mb_s": profile.bandwidth_mb_s, "series": spec["name"], "server_cc": server["algorithm"],
        "https": spec["server"] == "https", "quant": spec["quant"], "budget_ms": spec.get("budget_ms"),
        "quants_used": quants, "ideal_ms": ideal,
        "ideal_sent_ms": rtt + (up_bytes + mean_bytes) / (profile.bandwidth_mb_s * MB) * 1e3,
        "keepalive_median_ms": keep["median_ms"], "keepalive_p90_ms": keep["p90_ms"],
        "keepalive_ratio": keep["median_ms"] / ideal, "keepalive_p90_ratio": keep["p90_ms"] / ideal,
        "new_conn_median_ms": fresh["median_ms"] if fresh else None,
        "new_conn_p90_ms": fresh["p90_ms"] if fresh else None,
        "new_conn_ratio": fresh["median_ms"] / ideal if fresh else None,
        "calls": keep["n"], "new_conn_calls": fresh["n"] if fresh else 0,
        "ping_rtt_median_ms": ping["median_ms"] if ping else None,
        "last_decision": got["last_decision"],
    }


# ---------------------------------------------------------------------------------------- report
def _find(rows, **kw) -> dict | None:
    hits = [r for r in rows if all(r[k] == v for k, v in kw.items())]
    return hits[0] if hits else None


def _fmt_ms(r: dict | None, key: str = "keepalive") -> str:
    if r is None or r[f"{key}_median_ms"] is None:
        return "–"
    return f"{r[f'{key}_median_ms']:.0f} ({r[f'{key}_median_ms'] / r['ideal_ms']:.2f}×)"


def _used(r: dict | None) -> str:
    if r is None:
        return "–"
    q = r["quants_used"]
    return " ".join(f"{k}:{v}" for k, v in sorted(q.items(), key=lambda kv: QUANTS.index(kv[0])))


def _markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    j = max(r["jitter_ms"] for r in rows)
    lines = [
        "# Adapt latency over lossy, jittery links: congestion control, downlink quantisation, HTTPS\n",
        f"Emulated link (`paramcast.bench.link.EmulatedLink`: namespaces, delay line, tbf); head 96 → "
        f"{result['head_answers']} (bytes per quant: " + ", ".join(f"{q} {n}" for q, n in result["sizes"].items())
        + f"), {result['up_bytes']} B up. Per configuration a warm-up, then {result['calls']} keep-alive calls "
        f"(cubic fp32: {result['calls'] // 2 + 1}; adaptive: {result['calls'] + 4}) and {result['new_conn_calls']} "
        f"new-connection calls where shown (cubic: {min(2, result['new_conn_calls'])}); p90 of so few calls is "
        f"close to their maximum. Cells: `median ms (median / ideal fp32)`; "
        f"{result['ideal']}. `default` = the service's `--congestion-control auto` "
        f"(here: {_find(rows, series='default fp32')['server_cc']}); the client's sockets use cubic. "
        f"Grid run took {result['seconds']:.0f} s.\n",
    ]
    if result.get("encode_ms"):
        lines.append("Not in these latencies: the servers answer pre-encoded bytes, while the service encodes each "
                     "answer (`wire.encode`, one thread, this machine: " + ", ".join(
                         f"{q} {ms:.1f} ms" for q, ms in result["encode_ms"].items()) + "). The adaptive device "
                     "sees that cost in its per-quantisation first-byte times.\n")
    lines.append(f"## Targets (RTT {TARGET_RTT:g} ms, ±{j:g} ms jitter)\n")
    lines.append("| profile | ideal fp32 ms | loss | cubic fp32 (before) | default fp32 (≤ 3× at 1 %) | auto 150 ms | "
                 "quants | auto 75 ms | quants | default nf4 |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for loss in (0.01, 0.0):
        for p in PROFILES:
            kw = {"rtt_ms": TARGET_RTT, "loss": loss, "jitter_ms": j, "profile": p}
            d = _find(rows, series="default fp32", **kw)
            if d is None:
                continue
            a, b = _find(rows, series="auto 150 ms", **kw), _find(rows, series="auto 75 ms", **kw)
            lines.append(f"| {p} | {d['ideal_ms']:.1f} | {loss:.1%} | {_fmt_ms(_find(rows, series='cubic fp32', **kw))} "
                         f"| {_fmt_ms(d)} | {_fmt_ms(a)} | {_used(a)} | {_fmt_ms(b)} | {_used(b)} "
                         f"| {_fmt_ms(_find(rows, series='default nf4', **kw))} |")
    lines.append("\nNo loss, no jitter (the conditions of the earlier 1.05–1.07× result):\n")
    lines.append("| profile | RTT ms | ideal fp32 ms | cubic fp32 | default fp32 | auto 150 ms | quants |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in sorted({r["rtt_ms"] for r in rows}):
        for p in PROFILES:
            kw = {"rtt_ms": r, "loss": 0.0, "jitter_ms": 0.0, "profile": p}
            d = _find(rows, series="default fp32", **kw)
            if d is not None:
                a = _find(rows, series="auto 150 ms", **kw)
                lines.append(f"| {p} | {r:g} | {d['ideal_ms']:.1f} | {_fmt_ms(_find(rows, series='cubic fp32', **kw))} | "
                             f"{_fmt_ms(d)} | {_fmt_ms(a)} | {_used(a)} |")
    lines.append(f"\n## HTTPS vs HTTP, new connection per call (service default, ±{j:g} ms jitter)\n")
    lines.append("| profile | RTT ms | loss | HTTP new-conn | HTTPS new-conn | HTTPS − HTTP ms | HTTP keep-alive | HTTPS keep-alive |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["series"] != "default fp32" or r["jitter_ms"] != j:
            continue
        h = _find(rows, series="https fp32", rtt_ms=r["rtt_ms"], loss=r["loss"], jitter_ms=j, profile=r["profile"])
        diff = (h["new_conn_median_ms"] - r["new_conn_median_ms"]) if h and h["new_conn_median_ms"] and \
            r["new_conn_median_ms"] else None
        lines.append(f"| {r['profile']} | {r['rtt_ms']:g} | {r['loss']:.1%} | {_fmt_ms(r, 'new_conn')} | "
                     f"{_fmt_ms(h, 'new_conn')} | {'–' if diff is None else f'{diff:+.0f}'} | {_fmt_ms(r)} | {_fmt_ms(h)} |")
    series = list(dict.fromkeys(r["series"] for r in rows))
    lines.append("\n## Whole grid, keep-alive: median ms (ratio to ideal fp32) / p90 ratio\n")
    lines.append("| RTT | jitter | loss | profile | " + " | ".join(series) + " |")
    lines.append("|---|---|---|---|" + "---|" * len(series))
    keys = list(dict.fromkeys((r["rtt_ms"], r["jitter_ms"], r["loss"], r["profile"]) for r in rows))
    for rtt, jit, loss, p in keys:
        cells = []
        for s in series:
            r = _find(rows, series=s, rtt_ms=rtt, jitter_ms=jit, loss=loss, profile=p)
            cells.append("–" if r is None else f"{_fmt_ms(r)} / {r['keepalive_p90_ratio']:.2f}×")
        lines.append(f"| {rtt:g} | ±{jit:g} | {loss:.1%} | {p} | " + " | ".join(cells) + " |")
    lines.append("\n## Whole grid, new connection per call: median ms (ratio) / p90 ms\n")
    nc = [s for s in series if any(r["series"] == s and r["new_conn_calls"] for r in rows)]
    lines.append("| RTT | jitter | loss | profile | " + " | ".join(nc) + " |")
    lines.append("|---|---|---|---|" + "---|" * len(nc))
    for rtt, jit, loss, p in keys:
        cells = []
        for s in nc:
            r = _find(rows, series=s, rtt_ms=rtt, jitter_ms=jit, loss=loss, profile=p)
            cells.append("–" if r is None or not r["new_conn_calls"] else f"{_fmt_ms(r, 'new_conn')} / {r['new_conn_p90_ms']:.0f}")
        lines.append(f"| {rtt:g} | ±{jit:g} | {loss:.1%} | {p} | " + " | ".join(cells) + " |")
    drops = [lk["delay_line"] for lk in result["links"] if lk.get("delay_line")]
    if drops:
        lines.append(f"\nDelay line over all cells: {sum(d['forwarded'] for d in drops)} packets forwarded, "
                     f"{sum(d['dropped'] for d in drops)} dropped; written late by a median of "
                     f"{statistics.median(d.get('late_us_median', 0) for d in drops):.0f} µs (median over cells), "
                     f"worst cell p99 {max(d.get('late_us_p99', 0) for d in drops):.0f} µs.")
    return "\n".join(lines) + "\n"


_STYLE = {"cubic fp32": ("tab:red", "-"), "default fp32": ("tab:blue", "-"), "https fp32": ("tab:blue", ":"),
          "default fp16": ("tab:cyan", "--"), "default int8": ("tab:olive", "--"), "default nf4": ("tab:green", "--"),
          "auto 150 ms": ("tab:purple", "-"), "auto 75 ms": ("tab:pink", "-"), "cubic auto 150 ms": ("tab:orange", "-")}


def _plot(result: dict[str, Any], path: Path, key: str = "keepalive") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paramcast.bench.report import save_figure

    rows = [r for r in result["rows"] if r["jitter_ms"] > 0 and r[f"{key}_median_ms"] is not None]
    profiles = list(dict.fromkeys(r["profile"] for r in rows if r["series"] == "cubic fp32"))
    rtts = sorted({r["rtt_ms"] for r in rows})
    fig, axes = plt.subplots(len(profiles), len(rtts), figsize=(4.2 * len(rtts), 3.4 * len(profiles)),
                             squeeze=False, sharey=True)
    for i, p in enumerate(profiles):
        for k, rtt in enumerate(rtts):
            ax = axes[i][k]
            cell = [r for r in rows if r["profile"] == p and r["rtt_ms"] == rtt]
            for s in dict.fromkeys(r["series"] for r in cell):
                pts = sorted((r["loss"] * 100, r[f"{key}_median_ms"]) for r in cell if r["series"] == s)
                color, style = _STYLE.get(s, ("gray", "-"))
                ax.plot(*zip(*pts, strict=True), style, marker="o", ms=3, color=color, label=s)
            ideal = cell[0]["ideal_ms"]
            ax.axhline(ideal, color="black", lw=0.8, ls="--", label="ideal fp32")
            ax.set_yscale("log")
            ax.set_title(f"{p}, RTT {rtt:g} ms, ±{cell[0]['jitter_ms']:g} ms", fontsize=9)
            ax.set_xlabel("loss each way (%)")
            if k == 0:
                ax.set_ylabel(f"{'keep-alive' if key == 'keepalive' else 'new-connection'} median (ms)")
            ax.grid(True, which="both", alpha=0.3)
    handles = {}
    for ax in axes.flat:  # every series once (the target RTT's cells have more than the others)
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    axes[0][-1].legend(handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"adapt call latency vs loss ({'keep-alive' if key == 'keepalive' else 'new connection per call'})")
    return save_figure(fig, path)


def bench_link_grid(
    out: Path = typer.Option(Path("benchmarks/results/link_grid"), "--out",
                             help="Result path without suffix: writes .json, .md and two .png plots."),
    profile: list[str] = typer.Option(None, "--profile", "-p", help=f"Grid profiles (default {list(GRID_PROFILES)})."),
    rtt_ms: list[float] = typer.Option(None, "--rtt-ms", help=f"RTTs (default {list(RTTS)})."),
    loss: list[float] = typer.Option(None, "--loss", help=f"Losses (default {list(LOSSES)})."),
    jitter_ms: float = typer.Option(JITTER_MS, help="± jitter of the grid (plus jitter-free loss-free references)."),
    target_profile: list[str] = typer.Option(None, "--target-profile", help="Profiles also run (service default "
                                             f"only) at RTT {TARGET_RTT:g}, loss 0 and 1 % (default: all)."),
    calls: int = typer.Option(8, help="Keep-alive calls per configuration, after one warm-up."),
    new_conn_calls: int = typer.Option(3, help="New-connection calls for the fp32 configurations."),
    report: Path = typer.Option(None, "--report", help="Measure nothing: rewrite the .md and plots from this "
                                                        "result JSON (e.g. after changing the report)."),
) -> dict[str, Any]:
    """The link grid (loss × RTT × congestion control × downlink quantisation, HTTP and HTTPS).

    Needs root, iproute2, /dev/net/tun and openssl. Example (the committed run):
    paramcast bench link-grid --out benchmarks/results/link_grid
    """
    import json

    from paramcast.bench.report import write_result

    if report is not None:
        result = json.loads(report.read_text())
        out = report.with_suffix("")
        out.with_suffix(".md").write_text(f"<!-- produced by: {result['command']} -->\n\n{_markdown(result)}")
        for p in (_plot(result, out.with_suffix(".png")), _plot(result, out.parent / f"{out.name}_new_conn.png", "new_conn")):
            print(f"wrote {p}")
        return result
    result = run_grid(losses=tuple(loss or LOSSES), rtts=tuple(rtt_ms or RTTS), jitter_ms=jitter_ms,
                      profiles=tuple(profile or GRID_PROFILES), target_profiles=tuple(target_profile or TARGET_PROFILES),
                      calls=calls, new_conn_calls=new_conn_calls)
    paths = write_result(result, out, "(report pending: `paramcast bench link-grid --report OUT.json`)\n")
    paths["markdown"].write_text(paths["markdown"].read_text().split("\n\n")[0] + "\n\n" + _markdown(result))
    paths["png"] = _plot(result, out.with_suffix(".png"))
    paths["png_new_conn"] = _plot(result, out.parent / f"{out.name}_new_conn.png", key="new_conn")
    for kind, p in paths.items():
        print(f"wrote {kind}: {p}")
    return result
