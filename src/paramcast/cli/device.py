"""``paramcast device``: one simulated device streaming its samples against a running server.

    paramcast train --method cdc-mmpg --preset quick --out runs/train          # checkpoint + streams
    paramcast serve --checkpoint runs/train/checkpoint.safetensors --token-file tokens.json &
    paramcast device --url http://127.0.0.1:8000 --token "$TOKEN" --device-id dev-3 \\
        --checkpoint runs/train/checkpoint.safetensors --features runs/train/stream-new.safetensors --device-index 3

The stream is a saved feature set (safetensors with ``features`` (N, T, C), ``answer`` (N,),
``device`` (N,); for the MLLM methods, CD-CCA and its baselines, raw ``frames`` (N, H, W, 3) and
``question`` (N, L) instead of features: ``Method.batch_from_tensors`` reads it) cut to one device's
rows, in order, ``--batch-size`` rows per step. The device runs the method's device half
(``Method.device_half(device_id)``). Each step the
device adapts through the cloud (``DeviceClient.adapt``), then predicts; the command prints the
accuracy (plain, and filtered to in-vocabulary answers) and the adaptation latencies.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["device"]


def device(
    url: str = typer.Option("http://127.0.0.1:8000", envvar="PARAMCAST_URL", help="the cloud service"),
    token: str = typer.Option(..., envvar="PARAMCAST_TOKEN", help="this device's bearer token"),
    features: Path = typer.Option(..., help="safetensors feature set: features (N, T, C), answer (N,), device (N,)"),
    device_index: int = typer.Option(0, help="which device's rows of the feature set to stream"),
    device_id: str = typer.Option(None, help="device id the token was issued for (default: dev-<index>)"),
    method: str = typer.Option(None, envvar="PARAMCAST_METHOD", help="registered method (default: the checkpoint's)"),
    checkpoint: Path = typer.Option(None, envvar="PARAMCAST_CHECKPOINT", help="the same checkpoint as the server"),
    method_arg: list[str] = typer.Option([], "--method-arg", help="key=value for the method's constructor"),
    batch_size: int = typer.Option(16, help="samples per adaptation step"),
    steps: int = typer.Option(0, help="stop after this many steps (0 = the whole stream)"),
    quant: str = typer.Option("auto", help="downlink quantisation to ask for: fp32, fp16, int8, nf4, or auto "
                                           "(fit --budget-ms from the link's measured goodput; docs/link.md)"),
    budget_ms: float = typer.Option(150.0, help="with --quant auto: expected network time allowed per adaptation"),
    max_cost_points: float = typer.Option(1.0, help="with --quant auto: largest accuracy cost (points, from the "
                                                    "committed benchmark) a quantisation may have"),
    deadline_s: float = typer.Option(2.0, help="network time allowed per adaptation"),
    out: Path = typer.Option(None, help="write the summary as JSON here"),
) -> None:
    """Stream one device's samples against a server; print accuracy and adaptation latencies."""
    import torch
    from safetensors.torch import load_file

    from paramcast.cli.serve import _method_kwargs
    from paramcast.cloud import load_method
    from paramcast.device import DeviceClient

    data = load_file(str(features))
    missing = {"answer", "device"} - set(data)
    if missing:
        raise typer.BadParameter(f"{features} lacks tensors {sorted(missing)}")
    rows = (data["device"] == device_index).nonzero().flatten()
    if len(rows) == 0:
        raise typer.BadParameter(f"{features} has no rows of device {device_index}")
    device_id = device_id or f"dev-{device_index}"

    try:
        m = load_method(method or (None if checkpoint else "cdc-mmpg"), checkpoint, **_method_kwargs(method_arg))
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from None
    try:  # the method reads its own stream format (frame features, or raw frames for the MLLM methods)
        stream = m.batch_from_tensors({k: v[rows] for k, v in data.items()}, device_id)
    except KeyError as exc:
        raise typer.BadParameter(f"{features} lacks tensor {exc} that {m.name} streams") from None
    half = m.device_half(device_id)  # what runs on this device
    correct = counted = in_vocab = correct_in_vocab = 0
    try:
        client = DeviceClient(half, url, token, quant=quant, deadline_s=deadline_s, budget_ms=budget_ms,
                              max_cost_points=max_cost_points)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with client:
        for step, start in enumerate(range(0, len(stream), batch_size)):
            if steps and step >= steps:
                break
            batch = stream.subset(torch.arange(start, min(start + batch_size, len(stream))))
            result = client.adapt(batch)
            pred = half.predict(batch).argmax(-1).cpu()
            answer = batch.answer.cpu()
            hit = pred == answer
            known = answer >= 0
            correct += int(hit.sum())
            counted += len(batch)
            correct_in_vocab += int((hit & known).sum())
            in_vocab += int(known.sum())
            typer.echo(f"step {step:4d}  {result.source:9s} {result.latency_ms:8.1f} ms  {result.quant or '-':4s}  "
                       f"up {result.bytes_up:6d} B  down {result.bytes_down:8d} B  acc {correct / counted:.3f}"
                       + (f"  ({result.error})" if result.error else ""))
        summary = {"device_id": device_id, "samples": counted, "accuracy": correct / max(counted, 1),
                   "accuracy_filtered": correct_in_vocab / max(in_vocab, 1), **client.latency_summary()}
    typer.echo(json.dumps(summary, indent=1))
    if out is not None:
        out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    typer.run(device)
