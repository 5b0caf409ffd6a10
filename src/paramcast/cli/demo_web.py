"""``paramcast demo-web``: the browser demo (see :mod:`paramcast.demo_web`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

__all__ = ["demo_web"]


def demo_web(
    checkpoint: Path = typer.Option(..., help="a `paramcast train` checkpoint of a generated-head method"),
    config: Path = typer.Option(None, help="the benchmarks/videoqa/*.yaml config the checkpoint was trained with"),
    preset: str = typer.Option(None, help="or the EmojiClips preset: tiny | quick | standard"),
    clips: int = typer.Option(8, help="clips of one device shown on the page"),
    device_index: int = typer.Option(None, help="which device of the `new` split (default: the first)"),
    seed: int = typer.Option(0, help="the seed the checkpoint was trained with (picks the cached encoder)"),
    port: int = typer.Option(8000, help="loopback port"),
) -> None:
    """Serve the cloud API and a page running the device model in the browser (needs `make node-client`)."""
    import dataclasses

    import uvicorn

    from paramcast import catalog
    from paramcast.bench.config import load_bench_config
    from paramcast.bench.videoqa import VideoQABenchConfig, prepare
    from paramcast.config import from_dict
    from paramcast.demo_web import create_demo_app
    from paramcast.device.export import export_onnx

    base = dataclasses.asdict(load_bench_config(config)) if config else {}
    base.update({k: v for k, v in {"preset": preset, "device": "cpu", "seed": seed}.items() if v is not None})
    prep = prepare(from_dict(VideoQABenchConfig, base, str(config or "flags")))
    method = catalog.from_checkpoint(checkpoint, encoder=prep.encoder, device="cpu")
    ds = prep.dataset
    split = ds.new
    dev = int(split.device[0]) if device_index is None else device_index
    rows = (split.device == dev).nonzero().flatten()[:clips]
    if len(rows) == 0:
        raise typer.BadParameter(f"device {dev} has no clips in the new split")
    sub = split.subset(rows)
    out = Path(tempfile.mkdtemp(prefix="paramcast-demo-"))
    _, T, S = sub.frames.shape[:3]
    export_onnx(prep.encoder.to("cpu").eval(), method, out, num_frames=int(T), image_size=int(S),
                question_len=int(sub.question.shape[1]))
    words = lambda q: " ".join(ds.vocab.words[int(w)] for w in q if int(w) > 3)  # noqa: E731
    try:
        app = create_demo_app(method, out, sub.frames, sub.question, [words(q) for q in sub.question],
                              [ds.vocab.answers[int(a)] if a >= 0 else "(other)" for a in sub.answer],
                              ds.vocab.answers, f"dev-{dev}")
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"open http://127.0.0.1:{port}/")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
