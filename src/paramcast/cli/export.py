"""``paramcast export``: the device model of a trained checkpoint as ONNX (docs/wire.md §7).

    paramcast train --method cdc-mmpg --preset quick --out runs/train
    paramcast export --checkpoint runs/train/checkpoint.safetensors --preset quick --out runs/export

The encoder is the benchmark's (the same cached one `paramcast train` used for that preset or config);
the checkpoint gives the static head and the method's names. Writes ``device.onnx``,
``static_head.safetensors`` and ``device.json`` (see :mod:`paramcast.device.export`).
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["export"]


def export(
    checkpoint: Path = typer.Option(..., help="a `paramcast train` checkpoint of a generated-head method"),
    out: Path = typer.Option(Path("runs/export"), help="output folder"),
    config: Path = typer.Option(None, help="the benchmarks/videoqa/*.yaml config the checkpoint was trained with"),
    preset: str = typer.Option(None, help="or the EmojiClips preset: tiny | quick | standard"),
    exporter: str = typer.Option("auto", help="auto (dynamo, else TorchScript) | dynamo | torchscript"),
    seed: int = typer.Option(0, help="the seed the checkpoint was trained with (picks the cached encoder)"),
    executorch: bool = typer.Option(None, help="also write device.pte for ExecuTorch (default: where it is installed)"),
) -> None:
    """Export the device model (encoder + static head, generated layer as inputs) to ONNX and ExecuTorch."""
    import dataclasses

    from paramcast import catalog
    from paramcast.bench.config import load_bench_config
    from paramcast.bench.videoqa import VideoQABenchConfig, prepare
    from paramcast.config import from_dict
    from paramcast.device.export import export_onnx, has_executorch

    base = dataclasses.asdict(load_bench_config(config)) if config else {}
    base.update({k: v for k, v in {"preset": preset, "device": "cpu", "seed": seed}.items() if v is not None})
    prep = prepare(from_dict(VideoQABenchConfig, base, str(config or "flags")))
    try:
        method = catalog.from_checkpoint(checkpoint, encoder=prep.encoder, device="cpu")
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if not hasattr(getattr(method, "model", None), "static"):
        raise typer.BadParameter(f"{method.name} has no generated head to export (a generated-head method is needed)")
    clips = prep.dataset.history
    _, frames, size = clips.frames.shape[:3]
    info = export_onnx(prep.encoder.to("cpu").eval(), method, out, num_frames=int(frames), image_size=int(size),
                       question_len=int(clips.question.shape[1]), exporter=exporter,
                       executorch=has_executorch() if executorch is None else executorch)
    typer.echo(f"wrote {out}/device.onnx ({info['onnx_bytes'] / 1e6:.2f} MB, exporter {info['exporter']}), "
               f"{out}/static_head.safetensors, {out}/device.json" + (f", {out}/device.pte" if info["pte"] else ""))
