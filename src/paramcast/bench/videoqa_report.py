"""Markdown table and PNG plot for :func:`paramcast.bench.videoqa.run_videoqa` results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paramcast.bench.report import markdown_table

__all__ = ["markdown", "plot"]

_COLS = ["method", "new", "unseen", "worst_device", "new_unfiltered", "unseen_unfiltered", "d_params",
         "c_params", "cloud_flops", "bytes_up", "bytes_down", "delay_ms_5G-100", "adapt_ms"]


def markdown(result: dict[str, Any]) -> str:
    ds = result["dataset"]
    rows = [{"method": name, **row} for name, row in result["summary"].items() if not name.startswith("_")]
    where = (f"`{ds['name']}` ({ds.get('root', '')}), one device per video" if ds.get("name")
             else f"EmojiClips `{ds['preset']}` ({ds['source']})")
    head = (f"## Open-ended video QA — {where}, "
            f"{ds['train_devices']} training + {ds['unseen_devices']} unseen devices, V = {ds['num_answers']}\n\n"
            "Accuracy (filtered: answers outside the vocabulary dropped; `_unfiltered`: counted wrong). "
            "`delay_ms_5G-100`: measured cloud compute + apply + ideal transfer at 100 MB/s; "
            "`adapt_ms`: on-device adaptation time of device-side baselines.\n\n")
    text = head + markdown_table(rows, _COLS)
    extra = {k: v for k, v in result["summary"].items() if k.startswith("_")}
    for key, value in extra.items():
        text += f"\n{key.strip('_').replace('_', ' ')}: {value:.0f}×\n"
    delays = [{"method": m, **{p: r["delay_ms"].get(p) for p in result["profiles"]}}
              for m, r in result["methods"].items() if r.get("delay_ms")]
    if delays:
        text += "\n### Adaptation delay per network profile (ms)\n\n" + markdown_table(delays)
    quant = [{"method": m, "downlink": q, "bytes": row["tensor_bytes"], "smaller_than_fp32": row["smaller_than_fp32"],
              **{f"{s}": row["accuracy"][s] for s in row["accuracy"]},
              **{f"{s}_drop_points": row["drop_points"][s] for s in row["drop_points"]}}
             for m, r in result["methods"].items() for q, row in r.get("downlink", {}).items()]
    if quant:
        text += ("\n### Downlink quantisation (generated heads; accuracy filtered, drop vs fp32 in points)\n\n"
                 + markdown_table(quant))
    return text


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paramcast.bench.report import save_figure

    rows = {k: v for k, v in result["summary"].items() if not k.startswith("_")}
    names = list(rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    x = range(len(names))
    w = 0.27
    for i, (key, label) in enumerate((("new", "new samples"), ("unseen", "unseen devices"),
                                      ("worst_device", "worst device"))):
        ax1.bar([j + (i - 1) * w for j in x], [100 * rows[n][key] for n in names], w, label=label)
    ax1.set_xticks(list(x), names, rotation=20)
    ax1.set_ylabel("accuracy (%)")
    ax1.set_title("Open-ended video QA (filtered accuracy)")
    ax1.legend(fontsize=8)
    times = [(n, rows[n]["delay_ms_5G-100"] if rows[n].get("adapt_ms") is None else rows[n]["adapt_ms"])
             for n in names]
    times = [(n, t) for n, t in times if t is not None and t == t and t > 0]
    if times:
        ax2.barh([n for n, _ in times], [t for _, t in times], color="tab:gray")
        ax2.set_xscale("log")
        ax2.set_xlabel("ms (log): cloud adaptation at 5G-100 vs on-device training")
        ax2.set_title("Adaptation time")
    return save_figure(fig, path)
