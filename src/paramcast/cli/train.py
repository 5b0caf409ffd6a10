"""``paramcast train``: train one method on the cloud's history and write a checkpoint to serve.

    # on EmojiClips (the benchmark's data, encoder and features, all cached):
    paramcast train --method cdc-mmpg --preset quick --out runs/train/cdc-mmpg
    # on a real open-ended video-QA dataset on disk (one device per video, see docs/datasets.md):
    paramcast train --method cdc-mmpg --dataset msrvtt-qa --data-root /data/msrvtt --out runs/train/msrvtt
    # CD-CCA and the baselines of its tables (MLLMs on raw frames; bench cdcca's source domain):
    paramcast train --method cd-cca --preset tiny --out runs/train/cd-cca
    # on what devices uploaded to a running service (its history store, SQLite or PostgreSQL):
    paramcast train --method cdc-mmpg --from-store runs/history.sqlite --answers 1000 --out runs/train/store

It writes ``<out>/checkpoint.safetensors`` (``paramcast serve --checkpoint``) and, for EmojiClips or a
real dataset, ``<out>/stream-new.safetensors`` / ``stream-unseen.safetensors``: the encoded evaluation
splits that ``paramcast device --features`` streams. It prints the commands that serve and query the result.

Store rows carry one anchor-frame feature each (``features (N, C)``), so store training sees them as
one-frame clips ``(N, 1, C)``: every frame-sampling step then picks that frame. Rows that cannot be
trained on (corrupt, non-finite, label outside ``[-1, --answers)``, another feature width) are
skipped and reported on stderr, one line per reason; only a store with no usable row is refused.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["identity", "train"]


def _from_store(path: str, method: str, answers: int | None, task: str | None, device: str | None, seed: int,
                overrides: dict):
    from paramcast import catalog
    from paramcast.cloud.store import StoreUnavailable, load_history
    from paramcast.models.features import FeatureSet

    if answers is None:
        raise typer.BadParameter("--answers (the answer vocabulary size V) is required with --from-store")
    try:
        rows = load_history(path, task=task, num_labels=answers)
    except (ValueError, StoreUnavailable) as exc:
        raise typer.BadParameter(str(exc)) from None
    for reason, ids in rows["skipped"].items():  # bad rows are reported and left out, not fatal
        typer.echo(f"skipped {len(ids)} store rows ({reason}): ids {ids[:10]}{' ...' if len(ids) > 10 else ''}",
                   err=True)
    labels = rows["labels"]
    history = FeatureSet(rows["features"][:, None, :], labels, rows["device_index"],
                         meta={"device_names": rows["device_names"]})
    m = catalog.create(method, num_answers=answers, feature_dim=int(rows["features"].shape[1]), device=device,
                        seed=seed, progress=True, **overrides)
    typer.echo(f"training {method} on {len(history)} stored samples of {len(rows['device_names'])} devices")
    m.fit(history)
    return m, {}


def _mllm(method: str, preset: str | None, device: str | None, seed: int, overrides: dict):
    """An MLLM method (CD-CCA and the baselines of its tables) on EmojiClips, with ``bench cdcca``'s
    domains: pretrained on the source rows; each round's unseen device is a stream (raw middle frames)."""
    import dataclasses

    import torch

    from paramcast import catalog
    from paramcast.bench.cdcca import CDCCABenchConfig, domains
    from paramcast.methods.cd_cca import mllm_shapes

    cfg = CDCCABenchConfig(preset=preset or "quick", seed=seed, device=device)
    teacher_source, source, rounds, ds = domains(cfg)
    pretrain = dataclasses.replace(cfg.pretrain, seed=seed)
    pretrain_args = dataclasses.asdict(pretrain) | overrides.pop("pretrain", {})
    m = catalog.create(method, **mllm_shapes(source, ds.vocab, pretrain, teacher_source), pretrain=pretrain_args,
                        device=device, seed=seed, progress=True, **overrides)
    typer.echo(f"pretraining {method} on {len(source)} source rows (teacher: {len(teacher_source)})")
    m.fit(source, teacher_source)
    rows = [r for r in rounds if len(r)]
    stream = {"frames": torch.cat([r.frames[:, r.frames.shape[1] // 2] for r in rows]).contiguous(),
              **{k: torch.cat([getattr(r, k) for r in rows]).contiguous()
                 for k in ("question", "caption", "answer", "candidates", "mc_label", "category", "device")}}
    return m, {"unseen": stream}


def identity(method, checkpoint: Path) -> str:
    """What names the trained model in ``train``'s message: its model version (what uploads must name),
    or, for a method without one (the MLLM family: its devices count the updates they install from v0,
    this checkpoint), the checkpoint's SHA-256 and why there is no version."""
    version = getattr(method, "model_version", None)
    if version:
        return f"model version {version}"
    import hashlib

    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:12]
    return f"sha256 {digest}; no model version: {method.name}'s devices version their updates from v0 = this checkpoint"


def train(
    method: str = typer.Option("cdc-mmpg", help="registered method to train"),
    out: Path = typer.Option(Path("runs/train"), help="output folder (checkpoint + device streams)"),
    config: Path = typer.Option(None, help="a benchmarks/videoqa/*.yaml config (data, encoder, training budget)"),
    preset: str = typer.Option(None, help="EmojiClips preset when no --config: tiny | quick | standard"),
    dataset: str = typer.Option(None, help="real dataset instead of EmojiClips: msrvtt-qa | msvd-qa | tgif-frameqa"),
    data_root: Path = typer.Option(None, "--data-root", help="with --dataset: the dataset's directory"),
    limit: int = typer.Option(None, help="with --dataset: first rows of each split only (0 = all)"),
    from_store: str = typer.Option(None, "--from-store",
                                   help="train on a service's history store instead (SQLite file or postgresql:// URL)"),
    answers: int = typer.Option(None, help="answer vocabulary size V (with --from-store)"),
    task: str = typer.Option(None, help="only the store rows of this task (with --from-store)"),
    method_arg: list[str] = typer.Option([], "--method-arg", help="key=value for the method's config (repeatable)"),
    seed: int = typer.Option(0, help="training seed"),
    device: str = typer.Option(None, help="torch device (default: cuda if available)"),
) -> None:
    """Train one method on the cloud history (EmojiClips, a real dataset, or a service's history store); save a
    checkpoint."""
    import dataclasses

    from safetensors.torch import save_file

    from paramcast.cli.serve import _method_kwargs

    overrides = _method_kwargs(method_arg)
    out.mkdir(parents=True, exist_ok=True)
    from paramcast import catalog
    from paramcast.methods.cd_cca import MLLMSourceOnly

    try:
        cls = catalog.get(method)
    except KeyError as exc:
        raise typer.BadParameter(str(exc)) from None
    if from_store is not None:
        m, streams = _from_store(from_store, method, answers, task, device, seed, overrides)
    elif issubclass(cls, MLLMSourceOnly):
        m, streams = _mllm(method, preset, device, seed, overrides)
    else:
        from paramcast.bench.config import load_bench_config
        from paramcast.bench.videoqa import SPLITS, VideoQABenchConfig, create_method, prepare
        from paramcast.config import from_dict

        base = dataclasses.asdict(load_bench_config(config)) if config else {}
        given = {"preset": preset, "device": device, "dataset": dataset,
                 "data_root": str(data_root) if data_root else None, "limit": limit}
        base.update({k: v for k, v in given.items() if v is not None})
        base.update(seed=seed, methods=[method])
        base["method_overrides"] = {method: base.get("method_overrides", {}).get(method, {}) | overrides}
        cfg = from_dict(VideoQABenchConfig, base, str(config or "flags"))
        prep = prepare(cfg)
        m = create_method(cfg, method, prep)
        m.fit(prep.features["history"])
        streams = {s: prep.features[s] for s in SPLITS}
    ckpt = m.save_checkpoint(out / "checkpoint.safetensors")
    typer.echo(f"wrote {ckpt} ({ckpt.stat().st_size / 1e6:.1f} MB, {identity(m, ckpt)})")
    for split, fs in streams.items():
        path = out / f"stream-{split}.safetensors"
        tensors = fs if isinstance(fs, dict) else {"features": fs.features.contiguous(), "answer": fs.answer,
                                                   "device": fs.device}
        save_file(tensors, str(path))
        typer.echo(f"wrote {path} ({len(tensors['answer'])} rows of {int(tensors['device'].unique().numel())} devices)")
    typer.echo("\nserve it:\n"
               f"  paramcast serve --checkpoint {ckpt} --issue-token dev-0 --token-file {out}/tokens.json\n"
               f"  paramcast serve --checkpoint {ckpt} --token-file {out}/tokens.json --store {out}/history.sqlite")
    if streams:
        split = next(iter(streams))
        devices = streams[split]["device"] if isinstance(streams[split], dict) else streams[split].device
        first = int(devices.min())      # a real dataset's videos are numbered after the training ones
        typer.echo(f"  paramcast device --checkpoint {ckpt} --token $TOKEN --device-id dev-0 "
                   f"--features {out}/stream-{split}.safetensors --device-index {first}")
