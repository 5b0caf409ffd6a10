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

* ``device.pte`` (with ``executorch=True``, where the ``executorch`` package is installed: the
  ``[export]`` extra) — the same graph, same inputs and outputs, for the ExecuTorch runtime:
  ``torch.export`` at batch 1 (a phone encodes one clip at a time), lowered with the XNNPACK
  partitioner (``to_edge_transform_and_lower``) so convolutions and matmuls run in XNNPACK kernels.
  XNNPACK wants contiguous (NCHW) weights, so the encoder is exported from a copy converted from the
  channels-last layout it runs in eagerly.

The graph is traced through the encoder's public ``forward(frames, question) -> (B, T, C)`` and the
method's ``model.static`` module, nothing else, so another encoder with the same contract exports the
same way. Exporter: ``torch.onnx.export(dynamo=True)`` first; if ``torch.export`` cannot capture the
encoder, the TorchScript tracer (``dynamo=False``); ``device.json`` says which ran. The pretrained
encoder captures: under export (``models.encoder._exporting``) its text path keeps pads in place
(masked) instead of dropping all-pad columns, a data-dependent shape ``torch.export`` refuses.

:func:`export_student` does the same for CD-CCA's device student (``student.onnx``): ``frames (1, S, S, 3)
uint8`` (the clip's middle frame), ``question (1, L) int64`` and ``adapters (P,) float32`` -> ``answers
(1, A)`` logits. ``adapters`` is every tensor a DWC delta may touch (``adapter_parameters``: LoRA, norms,
biases, query tokens) flattened into one vector, at the offsets ``student.json`` lists (``layout``:
name, offset, shape, sorted by name). The device keeps that vector (initially
``student_adapters.safetensors``) and installs a delta by adding each delta tensor, flattened, at its
name's offset, as ``DynamicWeightCompression.apply`` adds it in Python; the graph is never rebuilt.
One flat input rather than one input per tensor: a device runtime rewrites one buffer, and
``torch.export`` needs a fixed signature. Batch 1 (a phone answers one question at a time): the
LLaMA attention-mask code of ``transformers`` specialises the batch dimension under ``torch.export``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paramcast.models.heads import pool_frames

__all__ = ["INPUTS", "OUTPUTS", "DeviceGraph", "StudentGraph", "export_onnx", "export_pte", "export_student", "has_executorch",
           "run_pte"]

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


class _Answers(nn.Module):
    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, image: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        from paramcast.models.mllm_tasks import answer_logits

        return answer_logits(self.student, image, None, question)[0]


class StudentGraph(nn.Module):
    """``(frames, question, adapters) -> answers``: CD-CCA's device student with its delta-updatable
    tensors as one flat input vector, laid out as ``layout`` says (name, offset, shape)."""

    def __init__(self, encoder: nn.Module, student: nn.Module, layout: list[tuple[str, int, list[int]]]):
        super().__init__()
        self.encoder, self.answers, self.layout = encoder, _Answers(student), layout

    def forward(self, frames: torch.Tensor, question: torch.Tensor, adapters: torch.Tensor) -> torch.Tensor:
        params = {f"student.{n}": adapters[o:o + math.prod(shape)].view(shape) for n, o, shape in self.layout}
        return torch.func.functional_call(self.answers, params, (self.encoder(frames), question))


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


def _export(graph: nn.Module, args: tuple, path: Path, exporter: str, inputs: tuple[str, ...] = INPUTS,
            outputs: tuple[str, ...] = OUTPUTS, dynamic_batch: bool = True) -> tuple[str, str | None]:
    """Write ``path`` with ``exporter`` (``auto``: dynamo, else TorchScript); return (used, why fallback).
    With ``dynamic_batch`` the first two inputs (frames, question) and every output have a dynamic
    batch dimension 0; without, every shape is the example's."""
    inputs, outputs, why = list(inputs), list(outputs), None
    if exporter in ("auto", "dynamo"):
        try:
            batch = torch.export.Dim("batch", min=1, max=1024)
            with contextlib.redirect_stdout(io.StringIO()):  # a failed capture prints the whole FX graph
                torch.onnx.export(graph, args, str(path), dynamo=True, input_names=inputs, output_names=outputs,
                                  opset_version=OPSET, verbose=False,
                                  dynamic_shapes=({0: batch}, {0: batch}, *[None] * (len(args) - 2))
                                  if dynamic_batch else None)
            _single_file(path)
            return "dynamo", None
        except Exception as exc:  # torch.export's errors have no common base class
            if exporter == "dynamo":
                raise
            why = _summary(exc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer warns about every Python-side shape check
        torch.onnx.export(graph, args, str(path), dynamo=False, input_names=inputs, output_names=outputs,
                          opset_version=OPSET,
                          dynamic_axes={n: {0: "batch"} for n in [*inputs[:2], *outputs]} if dynamic_batch else None)
    return "torchscript", why


def has_executorch() -> bool:
    """Whether the ``executorch`` package (the ``[export]`` extra) is installed: ``device.pte`` can be written."""
    import importlib.util

    return importlib.util.find_spec("executorch") is not None


def export_pte(graph: DeviceGraph, args: tuple, path: Path) -> int:
    """Write ``graph`` (batch 1) as an ExecuTorch program lowered to XNNPACK; return its size in bytes."""
    import copy

    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise RuntimeError(f"ExecuTorch export needs the executorch package ({exc}): "
                           "pip install 'paramcast[export]'") from None
    graph = copy.deepcopy(graph).to(memory_format=torch.contiguous_format)  # XNNPACK: NCHW weights
    program = torch.export.export(graph, tuple(a[:1] if i < 2 else a for i, a in enumerate(args)))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        buffer = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    path.write_bytes(buffer)
    return len(buffer)


def run_pte(path: str | Path):
    """Load ``device.pte`` in the ExecuTorch runtime: a callable ``(frames, question, weight, bias) ->
    (features, logits)`` on torch tensors, batch 1."""
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(path)).load_method("forward")
    return lambda *inputs: tuple(method.execute(list(inputs)))


@torch.no_grad()
def export_onnx(encoder: nn.Module, method: Any, out: str | Path, *, num_frames: int, image_size: int,
                question_len: int, exporter: str = "auto", executorch: bool = False) -> dict[str, Any]:
    """Export ``encoder`` + ``method.model.static`` to ``out/device.onnx`` (+ static head, device.json,
    and ``device.pte`` with ``executorch``).

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
    pte_bytes = export_pte(graph, (frames, question, weight, bias), out / "device.pte") if executorch else None
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
        "pte": "device.pte" if executorch else None, "pte_bytes": pte_bytes,
    }
    (out / "device.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


@torch.no_grad()
def export_student(encoder: nn.Module, student: nn.Module, out: str | Path, *, image_size: int, question_len: int,
                   exporter: str = "auto") -> dict[str, Any]:
    """Export CD-CCA's device model (shared frozen ``encoder`` + ``student``) to ``out/student.onnx``
    with the adapter tensors as inputs, ``student_adapters.safetensors`` (their current values) and
    ``student.json`` (input order, shapes). Returns what ``student.json`` holds."""
    from safetensors.torch import save_file

    from paramcast.methods.cd_cca.akd import adapter_parameters

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    adapters = {n: p.detach().float().cpu() for n, p in adapter_parameters(student).items()}
    layout, offset = [], 0
    for n in sorted(adapters):
        layout.append((n, offset, list(adapters[n].shape)))
        offset += adapters[n].numel()
    flat = torch.cat([adapters[n].flatten() for n, _, _ in layout])
    graph = StudentGraph(encoder, student, layout).to("cpu").eval()
    frames = torch.zeros(1, image_size, image_size, 3, dtype=torch.uint8)
    question = torch.ones(1, question_len, dtype=torch.int64)
    used, why = _export(graph, (frames, question, flat), out / "student.onnx", exporter,
                        inputs=("frames", "question", "adapters"), outputs=("answers",), dynamic_batch=False)
    save_file({"adapters": flat}, str(out / "student_adapters.safetensors"))
    info = {"format": "paramcast.student-onnx/1", "onnx": "student.onnx", "adapters": "student_adapters.safetensors",
            "inputs": {"frames": [1, image_size, image_size, 3], "question": [1, question_len],
                       "adapters": [int(flat.numel())]},
            "layout": [{"name": n, "offset": o, "shape": shape} for n, o, shape in layout],
            "answers": [1, int(student.layout.n_answers)], "exporter": used, "dynamo_failure": why, "opset": OPSET,
            "onnx_bytes": (out / "student.onnx").stat().st_size}
    (out / "student.json").write_text(json.dumps(info, indent=1) + "\n")
    return info
