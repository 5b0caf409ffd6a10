"""The device model as an ONNX graph a phone runtime can run (docs/wire.md §7).

    paramcast export --checkpoint runs/train/checkpoint.safetensors --preset quick --out runs/export

:func:`export_onnx` writes, into one folder:

* ``device.onnx`` — frozen encoder + static head + the generated layer, with the layer's parameters as
  **inputs**: ``frames (B, T, S, S, 3) uint8``, ``question (B, L) int64``, ``weight (V, H) float32``,
  ``bias (V,) float32`` -> ``features (B, T, C)``, ``logits (B, V)``. Installing an update is passing
  other ``weight``/``bias`` tensors; no graph is rebuilt. ``B`` is dynamic; ``T``, ``S`` and ``L`` are
  the example's (a shorter question is padded with 0, which the encoder masks).
* ``static_head.safetensors`` — ``weight``/``bias``: the cloud's static layer ``W_0, b_0`` the device runs
  before its first update (``method.static_layer()``).
* ``device.json`` — shapes, names, the anchor frame a device uploads (``features[0, anchor]`` as the
  ``(1, C)`` upload), method, task, model version, which exporter produced the graph.

The graph is traced through the encoder's public ``forward(frames, question) -> (B, T, C)`` and the
method's ``model.static`` module, nothing else, so another encoder with the same contract exports the
same way. Exporter: ``torch.onnx.export(dynamo=True)`` first; if ``torch.export`` cannot capture the
encoder, the TorchScript tracer (``dynamo=False``). The current ``AllInOneEncoder`` needs the
fallback: it drops all-pad question columns with ``int(last)`` on a tensor (data-dependent, refused by
``torch.export``); the tracer records that slice at the example's length, so the example question has
no pad column and the slice is a no-op in the graph (pads stay and are masked: same features within
float rounding, checked by tests/device/test_export.py). ``device.json`` says which exporter ran.

ExecuTorch (``.pte``) is not exported: it lowers only a ``torch.export`` program, and ``torch.export``
refuses the current encoder (the data-dependent slice above), so there is nothing to lower; the
``executorch`` 1.5.1 wheel would also bring coremltools 9.0, torchao 0.18 and pandas into the venv.
With an encoder that ``torch.export`` captures (``device.json`` then says ``"exporter": "dynamo"``)
``executorch.exir.to_edge(torch.export.export(DeviceGraph(...), args)).to_executorch()`` is the path.
The CD-CCA student is not exported (its delta-updatable parameters would become inputs the same way).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paramcast.models.heads import pool_frames

__all__ = ["INPUTS", "OUTPUTS", "DeviceGraph", "export_onnx"]

INPUTS = ("frames", "question", "weight", "bias")
OUTPUTS = ("features", "logits")
OPSET = 18


class DeviceGraph(nn.Module):
    """``(frames, question, weight, bias) -> (features, logits)``: what ``device.onnx`` computes."""

    def __init__(self, encoder: nn.Module, static: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.static = static

    def forward(self, frames: torch.Tensor, question: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(frames, question)                                  # (B, T, C)
        logits = nn.functional.linear(self.static(pool_frames(features)), weight, bias)  # (B, V)
        return features, logits


def _summary(exc: Exception) -> str:
    """The one line of a torch.export failure that says why (its report's "Exception summary")."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    after = lines[lines.index("## Exception summary") + 1:] if "## Exception summary" in lines else []
    return next((line for line in after if line), lines[0] if lines else type(exc).__name__)[:400]


def _single_file(path: Path) -> None:
    """Fold external weight data (the dynamo exporter writes ``device.onnx.data``) into the one file
    a device runtime loads; onnxruntime-web cannot mount a second file."""
    data = path.with_name(path.name + ".data")
    if data.exists():
        import onnx

        onnx.save_model(onnx.load(str(path)), str(path), save_as_external_data=False)
        data.unlink()


def _export(graph: DeviceGraph, args: tuple, path: Path, exporter: str) -> tuple[str, str | None]:
    """Write ``path`` with ``exporter`` (``auto``: dynamo, else TorchScript); return (used, why fallback)."""
    dynamic = {"frames": {0: "batch"}, "question": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}}
    why = None
    if exporter in ("auto", "dynamo"):
        try:
            batch = torch.export.Dim("batch", min=1, max=1024)
            with contextlib.redirect_stdout(io.StringIO()):  # a failed capture prints the whole FX graph
                torch.onnx.export(graph, args, str(path), dynamo=True, input_names=list(INPUTS),
                                  output_names=list(OUTPUTS), opset_version=OPSET, verbose=False,
                                  dynamic_shapes={"frames": {0: batch}, "question": {0: batch}, "weight": None,
                                                  "bias": None})
            _single_file(path)
            return "dynamo", None
        except Exception as exc:  # torch.export's errors have no common base class
            if exporter == "dynamo":
                raise
            why = _summary(exc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer warns about every Python-side shape check
        torch.onnx.export(graph, args, str(path), dynamo=False, input_names=list(INPUTS),
                          output_names=list(OUTPUTS), opset_version=OPSET, dynamic_axes=dynamic)
    return "torchscript", why


@torch.no_grad()
def export_onnx(encoder: nn.Module, method: Any, out: str | Path, *, num_frames: int, image_size: int,
                question_len: int, exporter: str = "auto") -> dict[str, Any]:
    """Export ``encoder`` + ``method.model.static`` to ``out/device.onnx`` (+ static head, device.json).

    ``method`` is a generated-head method (CDC-MMPG, F-hyper, StableSynthNet, DUET): it has
    ``model.static``, ``static_layer()``, ``config.anchor_frame``, ``name``, ``task``, ``model_version``.
    Returns what ``device.json`` holds.
    """
    from safetensors.torch import save_file

    if exporter not in ("auto", "dynamo", "torchscript"):
        raise ValueError(f"exporter must be auto, dynamo or torchscript, got {exporter!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    graph = DeviceGraph(encoder, method.model.static).to("cpu").eval()
    weight, bias = (t.detach().float().cpu().contiguous() for t in method.static_layer())
    frames = torch.zeros(1, num_frames, image_size, image_size, 3, dtype=torch.uint8)
    question = torch.ones(1, question_len, dtype=torch.int64)  # no pad column: see the module docstring
    used, why = _export(graph, (frames, question, weight, bias), out / "device.onnx", exporter)
    save_file({"weight": weight, "bias": bias}, str(out / "static_head.safetensors"))
    hidden = int(graph(frames, question, weight, bias)[0].shape[-1])
    info = {
        "format": "paramcast.device-onnx/1", "onnx": "device.onnx", "static_head": "static_head.safetensors",
        "inputs": {"frames": ["B", num_frames, image_size, image_size, 3], "question": ["B", question_len],
                   "weight": list(weight.shape), "bias": list(bias.shape)},
        "input_dtypes": {"frames": "uint8", "question": "int64", "weight": "float32", "bias": "float32"},
        "outputs": {"features": ["B", num_frames, hidden], "logits": ["B", int(weight.shape[0])]},
        "anchor_frame": int(min(method.config.anchor_frame, num_frames - 1)), "upload_shape": [1, hidden],
        "method": method.name, "task": method.task, "model_version": method.model_version,
        "exporter": used, "dynamo_failure": why, "opset": OPSET,
        "onnx_bytes": (out / "device.onnx").stat().st_size,
    }
    (out / "device.json").write_text(json.dumps(info, indent=1) + "\n")
    return info
