"""``paramcast bench ...``: every benchmark writes JSON + Markdown (and a PNG where a plot helps)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from paramcast.cli._lazy import lazy_group

# commands whose flags live with their benchmark, imported when they run (``paramcast bench --help`` stays light)
COMMANDS = {
    "serve": ("paramcast.bench.serve:bench_serve",
              "Load test: N concurrent devices against a real server, batched vs naive generation."),
    "export": ("paramcast.bench.export:bench_export",
               "Exported device model (ONNX, ExecuTorch) vs PyTorch: file size and single-frame CPU latency."),
    "link": ("paramcast.bench.link:bench_link",
             "Real emulated link (network namespaces, tbf, delay line): adapt latency vs ideal."),
    "link-grid": ("paramcast.bench.link_grid:bench_link_grid",
                  "Link grid: loss x RTT x congestion control x downlink quant, HTTP and HTTPS."),
    "stablesynthnet-ablation": ("paramcast.bench.stablesynthnet_ablation:bench_ablation",
                                "StableSynthNet with DCT / ODS / TDE switched off, 3 seeds."),
}
app = typer.Typer(no_args_is_help=True, cls=lazy_group(COMMANDS))
console = Console()


@app.command()
def videoqa(
    preset: str = typer.Option(None, help="EmojiClips preset: tiny | quick | standard (default quick)."),
    source: str = typer.Option(None, help="Sprite source: emoji | shapes (default: the preset's)."),
    seed: int = typer.Option(None, help="Seed of data, encoder and methods (default 0)."),
    methods: str = typer.Option(None, help="Comma-separated registered methods (default: all of the benchmark)."),
    dataset: str = typer.Option(None, help="Real dataset instead of EmojiClips: msrvtt-qa | msvd-qa | tgif-frameqa "
                                           "(a device is one video; see docs/datasets.md)."),
    data_root: Path = typer.Option(None, "--data-root", help="With --dataset: the dataset's directory "
                                                             "(layout in docs/datasets.md)."),
    limit: int = typer.Option(None, help="With --dataset: first rows of each split only (0 = all), for quick trials."),
    k: int = typer.Option(None, help="Adaptation shots per device (default 16; with --dataset a device is a video, "
                                     "its first min(k, n-1) questions)."),
    config: Path = typer.Option(None, help="A benchmarks/videoqa/*.yaml config; flags given explicitly override it."),
    device: str = typer.Option(None, help="torch device, e.g. cpu or cuda (default: cuda if available)."),
    out: Path = typer.Option(None, help="Result path stem (default runs/videoqa/<preset or dataset>); "
                                        ".json/.md/.png are written."),
) -> None:
    """Open-ended video QA: pretrain the encoder (cached), train every method, adapt each device, compare.

    On EmojiClips (default) or a real dataset on disk: --dataset msrvtt-qa --data-root /data/msrvtt.
    """
    import dataclasses

    from paramcast.bench.config import load_bench_config
    from paramcast.bench.report import write_result
    from paramcast.bench.videoqa import VideoQABenchConfig, run_videoqa
    from paramcast.bench.videoqa_report import markdown, plot
    from paramcast.config import from_dict

    base = dataclasses.asdict(load_bench_config(config)) if config else {}
    given = {"preset": preset, "source": source, "seed": seed, "device": device, "dataset": dataset,
             "data_root": str(data_root) if data_root else None, "limit": limit, "k": k,
             "methods": [m.strip() for m in methods.split(",")] if methods else None}
    base.update({key: v for key, v in given.items() if v is not None})
    cfg = from_dict(VideoQABenchConfig, base, str(config or "flags"))
    result = run_videoqa(cfg)
    out = out or Path("runs/videoqa") / (cfg.dataset or cfg.preset)
    md = markdown(result)
    console.print(md)
    paths = write_result(result, out, md)
    png = plot(result, out.with_suffix(".png"))
    console.print(f"wrote {paths['json']}, {paths['markdown']}, {png}")


@app.command("data-scale")
def data_scale(
    scale: list[float] = typer.Option([0.1], help="Fractions of MSRVTT-QA (1.0 = 10,000 videos, 243,680 questions); "
                                                  "repeat for several, e.g. --scale 0.1 --scale 1."),
    root: Path = typer.Option(Path("runs/data-scale"), help="Where the generated datasets and caches go."),
    workers: int = typer.Option(0, help="Decoding processes (0 = one per core, at most 8)."),
    fuse_rows: int = typer.Option(2048, help="Rows per split fused in the fuse stage."),
    device: str = typer.Option(None, help="torch device, e.g. cpu or cuda (default: cuda if available)."),
    out: Path = typer.Option(Path("runs/data-scale/data_scale"), help="Result path stem (.json/.md)."),
) -> None:
    """Generate MSRVTT-QA-shaped data (mp4 + JSON) and time the data pipeline; peak RSS and disk per scale."""
    from paramcast.bench.data_scale import DataScaleConfig, markdown, run_data_scale
    from paramcast.bench.report import write_result

    cfg = DataScaleConfig(root=str(root), workers=workers, fuse_rows=fuse_rows, device=device)
    result = run_data_scale(cfg, list(scale), partial=lambda r: write_result(r, out, markdown(r)))
    console.print(markdown(result))
    console.print(f"wrote {out.with_suffix('.json')}")


@app.command()
def netsim(
    paper: bool = typer.Option(False, "--paper", help="Reproduce CDC-MMPG's Table 6 (seed shapes, no RTT)."),
    answers: int = typer.Option(1500, help="Answer vocabulary V of the generated 96→V head (without --paper)."),
    rtt_ms: float = typer.Option(0.0, help="Round-trip time added once per adaptation."),
    out: Path = typer.Option(Path("runs/netsim"), help="Result path stem (.json/.md are written)."),
) -> None:
    """Payload sizes (from tensor shapes) and ideal transfer times per network profile (MB = 1024² B)."""
    from paramcast.bench.netsim import PAPER_PROFILES, PROFILES, paper_table, transfer_ms
    from paramcast.bench.report import markdown_table, write_result

    if paper:
        rows = paper_table()
        profiles = PAPER_PROFILES
    else:
        profiles = PROFILES
        rows = []
        for row in paper_table(heads={f"V={answers}": answers}):
            nbytes = row["size_kb"] * 1024
            rows.append({**{k: row[k] for k in ("dataset", "direction", "size_kb")},
                         **{f"{p.name}_ms": transfer_ms(int(nbytes), 0, p, rtt_ms) for p in profiles.values()}})
    cols = ["dataset", "direction", "size_kb", *(f"{p}_ms" for p in profiles)]
    md = markdown_table(rows, cols)
    console.print(md)
    paths = write_result({"paper": paper, "rtt_ms": rtt_ms, "rows": rows}, out, md)
    console.print(f"wrote {paths['json']}")


@app.command()
def cdcca(
    preset: str = typer.Option("quick", help="EmojiClips preset: tiny | quick | standard (standard ≈ 10 min on 2 cores)."),
    source: str = typer.Option(None, help="Sprite source: emoji | shapes (default: the preset's)."),
    rounds: int = typer.Option(3, help="Continual rounds; round r adapts to unseen device r (cycled)."),
    round_rows: int = typer.Option(0, help="Rows per round, half streamed unlabelled, half evaluated "
                                           "(0 = every row of the round's device)."),
    seed: int = typer.Option(0, help="Seed of the domain split, pretraining, UTS and AKD (the dataset stays seed 0)."),
    seeds: int = typer.Option(1, help="Run seeds seed .. seed+seeds-1 and report mean ± std and paired gains."),
    epochs: int = typer.Option(12, help="Source pretraining epochs of teacher (joint with the encoder) and student."),
    ablations: bool = typer.Option(True, help="Table 3 (PL / AKD / UTS-1) and the fp16 delta / fp16 token references."),
    token_study: bool = typer.Option(True, help="Table 4: random vs UTS token sampling at 25 / 50 / 75 %."),
    teacher_devices: int = typer.Option(0, help="Study: the teacher (and shared encoder) also pretrain on training "
                                                "devices up to this index (0 = the 4 source devices, the protocol)."),
    teacher_all_categories: bool = typer.Option(False, help="Study: those other devices' rows include the held-out "
                                                            "categories (a cloud that knows what the device never saw; "
                                                            "needs --teacher-devices > 4)."),
    device: str = typer.Option(None, help="torch device, e.g. cpu or cuda (default: cuda if available)."),
    out: Path = typer.Option(Path("runs/cdcca/cdcca"), help="Result path stem; .json/.md/.png are written."),
    pair: str = typer.Option("scratch", help="Teacher / student pair: scratch (shared from-scratch ViT) or pretrained "
                                             "(Lite0 tokens, 6-layer MiniLM teacher; docs/cd_cca.md)."),
    from_json: list[Path] = typer.Option(None, "--from-json", help="Re-render a committed result (its JSON) with the "
                                                                   "current report, e.g. the claims table, at --out; "
                                                                   "no training. Given several times, merge their "
                                                                   "seeds into one result (same protocol)."),
) -> None:
    """CD-CCA continual rounds vs TENT / CoTTA / PKD / CWD, ablations, token sampling, transmission (Tables 1-5).

    Pretrains a shared encoder, a teacher and a student on the source domain, then streams one unseen device per round; collaborative methods go through the real wire (bytes counted from messages). docs/cd_cca.md explains the protocol and the results.
    """
    from paramcast.bench.cdcca import bench_cdcca, rerender

    if from_json:
        paths = rerender(from_json, out)
        console.print(Path(paths["markdown"]).read_text())
        console.print(f"wrote {paths['json']}, {paths['markdown']}")
        return
    paths = bench_cdcca(preset=preset, source=source, rounds=rounds, round_rows=round_rows, seed=seed, seeds=seeds,
                        epochs=epochs, ablations=ablations, token_study=token_study,
                        teacher_devices=teacher_devices, device=device, out=out, pair=pair,
                        teacher_all_categories=teacher_all_categories)
    console.print(Path(paths["markdown"]).read_text())
    console.print(f"wrote {paths['json']}, {paths['markdown']}, {Path(out).with_suffix('.png')}")


def _task_command(task: str, preset: str, source: str | None, seed: int, methods: str | None, k: int,
                  device: str | None, out: Path | None, threads: int) -> None:
    """Shared body of ``bench mcqa | retrieval | frames``: run, print the Markdown, write JSON/MD/PNG."""
    import importlib

    from paramcast.bench.report import write_result
    from paramcast.bench.videoqa import VideoQABenchConfig

    mod = importlib.import_module(f"paramcast.bench.{task}")
    default = {"mcqa": "MC_METHODS", "retrieval": "RETRIEVAL_METHODS", "frames": "FRAMES_METHODS"}[task]
    names = [m.strip() for m in methods.split(",")] if methods else list(getattr(mod, default))
    cfg = VideoQABenchConfig(preset=preset, source=source, seed=seed, methods=names, k=k, device=device,
                             threads=threads)
    result = getattr(mod, f"run_{task}")(cfg)
    out = out or Path("runs") / task / preset
    md = mod.markdown(result)
    console.print(md)
    paths = write_result(result, out, md)
    png = mod.plot(result, out.with_suffix(".png"))
    console.print(f"wrote {paths['json']}, {paths['markdown']}, {png}")


_PRESET = typer.Option("quick", help="EmojiClips preset: tiny | quick | standard.")
_SOURCE = typer.Option(None, help="Sprite source: emoji | shapes (default: the preset's).")
_SEED = typer.Option(0, help="Seed of data, encoder and methods.")
_K = typer.Option(16, help="Adaptation samples per device (questions for mcqa, clips for retrieval).")
_DEVICE = typer.Option(None, help="torch device, e.g. cpu or cuda (default: cuda if available).")
_THREADS = typer.Option(0, help="torch CPU threads (0 = leave as is).")


def _task(task: str, default_methods: str, doc: str):
    """One ``bench <task>`` command (same flags for mcqa, retrieval and frames)."""
    def command(preset: str = _PRESET, source: str = _SOURCE, seed: int = _SEED, k: int = _K,
                device: str = _DEVICE, threads: int = _THREADS,
                methods: str = typer.Option(None, help=f"Comma-separated methods (default: {default_methods})."),
                out: Path = typer.Option(None, help=f"Result path stem (default runs/{task}/<preset>).")) -> None:
        _task_command(task, preset, source, seed, methods, k, device, out, threads)

    command.__doc__ = doc
    return command


for _name, _methods, _doc in (
    ("mcqa", "all seven",
     "Multiple-choice video QA: candidate [SEP] question, 5 candidates, highest score wins (docs/tasks.md)."),
    ("retrieval", "all seven",
     "Video-text retrieval on EmojiClips captions: VR@1/5/10 (video->text), TR@1/5/10 (text->video)."),
    ("frames", "cdc-mmpg,fine-tuning",
     "Sampled-frames ablation: D = 2, 3, 4, 5, open-ended accuracy and training time (seed Table 4)."),
):
    app.command(_name)(_task(_name, _methods, _doc))
