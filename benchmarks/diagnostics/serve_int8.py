"""serve_dtype=int8 vs bf16 vs fp32 for CDC-MMPG's generator at V = 1500, and the answer encoder.

    python benchmarks/diagnostics/serve_int8.py --out benchmarks/results/serve_int8
    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \
        python benchmarks/diagnostics/serve_int8.py --out benchmarks/results/serve_int8_malloc

One process, one torch thread (it runs where it is started; here pinned to one core). Every variant
of a batch size is timed in the same interleaved rounds, so ratios within a row compare like with
like on a busy machine; absolute milliseconds do not transfer to ``paramcast bench serve`` (2 threads).

* ``method_<dtype>`` — ``cloud_step_batch`` of the untrained CDC-MMPG (V = 1500, f_h's output layer
  96 -> 145,500) with ``serve_dtype`` fp32 / bf16 / int8: generation plus splitting into heads;
* ``bare_fp32`` / ``bare_bf16`` (+ its cast to fp32, as served) / ``bare_int8`` — that layer alone:
  ``nn.functional.linear`` and the quantized engine's own ``linear_dynamic`` (per-tensor activations,
  bias fused, the engine serving uses at that batch size: the int8 ceiling, which serving does not
  use as is because its answers would depend on the batch);
* ``int8_<engine>`` — :func:`paramcast.methods.cdc_mmpg.serving.int8_linear` (per-row activations,
  the served form) with the weights prepacked by the ``x86`` (fbgemm) or ``onednn`` engine only (the
  method picks one by batch size, ``serving.INT8_ENGINES``);
* ``fp32_out`` — ``addmm`` into a preallocated output (the ``out=`` question);
* the heads' error against fp32 at batch 64 (``bench.serve._head_error``: max abs error of W, b, of
  logits on N(0, 1) hidden vectors, top-answer change rate) for bf16 and int8;
* minor page faults per call: glibc's default thresholds return freed outputs of a few MB to the
  system, so a later call touches fresh pages (~2 µs each); the ``_malloc`` run fixes the mmap
  threshold at its 32 MB ceiling and keeps freed memory (``MALLOC_*`` are read at process start);
* the encoder: ``wire.encode`` of one fp32 answer with ``_container.write`` (one copy) vs the same
  with ``safetensors.torch.save`` (before), vs its floor, SHA-256 over its bytes once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import struct
import time
import warnings
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import save as st_save
from torch import nn

from paramcast import catalog, wire
from paramcast.bench.report import markdown_table, write_result
from paramcast.bench.serve import _head_error
from paramcast.methods.cdc_mmpg.serving import INT8_ENGINES, by_batch, int8_linear, pack_int8, prepack_int8
from paramcast.types import Upload

V, BATCHES, DTYPES = 1500, (1, 8, 32, 64), ("fp32", "bf16", "int8")


def interleaved(fns: dict, rounds: int = 7, reps: int = 3) -> dict[str, float]:
    """Median ms per call of each function, timed in ``rounds`` interleaved rounds of ``reps`` calls,
    and (``<name>_faults``) the minor page faults per call: fresh pages of a large output."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    faults = dict.fromkeys(fns, 0)
    for fn in fns.values():
        fn()
        fn()
    for _ in range(rounds):
        for k, fn in fns.items():
            for _ in range(reps):
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
                faults[k] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    out = {k: round(statistics.median(v) * 1e3, 3) for k, v in times.items()}
    return out | {f"{k}_faults": faults[k] // (rounds * reps) for k in fns}


def _sha256(data) -> bytes:
    return hashlib.sha256(data).digest()


def _encode_with_safetensors_save(head) -> bytes:
    """``wire.encode`` as it was before ``_container.write``: the file made by ``safetensors.torch.save``."""
    real = wire.message.write
    wire.message.write = lambda tensors, metadata: st_save(tensors, metadata=dict(metadata))
    try:
        return wire.encode(head, quant="fp32")
    finally:
        wire.message.write = real


def _parsed(data: bytes) -> tuple:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _to_fp32(fn, *args) -> torch.Tensor:
    return fn(*args).float()


def engine_packs(layer: nn.Linear) -> dict[str, object]:
    """The served int8 weights prepacked by one quantized engine each (fbgemm ``x86``, ``onednn``)."""
    return {e: pack_int8(layer.weight.detach(), layer.bias.detach(), engines=((1, e),)) for e in ("x86", "onednn")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*deprecated")
    torch.manual_seed(0)
    methods = {d: catalog.create("cdc-mmpg", num_answers=V, serve_dtype=d) for d in DTYPES}
    ref = methods["fp32"]
    for m in methods.values():  # the same weights (creation is seeded; made certain here)
        m.adaptor.load_state_dict(ref.adaptor.state_dict())
        if m.generator is not None:
            m.generator.load_state_dict(ref.generator.state_dict())
    layer = ref.adaptor.hyper.out
    w32, b32 = layer.weight.detach(), layer.bias.detach()
    w16, b16 = w32.bfloat16(), b32.bfloat16()
    scale8 = (w32.abs().amax(1) / 127).clamp_min(1e-30)
    bare8 = tuple((n, prepack_int8(w32, scale8, b32, engine=e)) for n, e in INT8_ENGINES)
    packs = engine_packs(layer)
    g = torch.Generator().manual_seed(0)
    rows, heads = [], {}
    with torch.inference_mode():
        for n in BATCHES:
            ups = [Upload(device_id=f"d{i}", method=ref.name, task=ref.task, model_version=ref.model_version,
                          features=torch.randn(1, 192, generator=g)) for i in range(n)]
            x = ref.adaptor.hyper.body(ref.adaptor.projector(ref.generator(torch.stack([u.features[0] for u in ups]),
                                                                            sample=False)["generated"]))
            xb, out = x.bfloat16(), torch.empty(n, layer.out_features)
            fns = {f"method_{d}": partial(m.cloud_step_batch, ups) for d, m in methods.items()}
            fns |= {"bare_fp32": partial(nn.functional.linear, x, w32, b32),
                    "bare_bf16": partial(nn.functional.linear, xb, w16, b16),
                    "bare_bf16_to_fp32": partial(_to_fp32, nn.functional.linear, xb, w16, b16),
                    "bare_int8": partial(torch.ops.quantized.linear_dynamic, x, by_batch(bare8, n), False),
                    "fp32_out": partial(torch.addmm, b32, x, w32.T, out=out)}
            fns |= {f"int8_{e}": partial(int8_linear, x, p) for e, p in packs.items()}
            row = {"batch": n, **interleaved(fns, rounds=args.rounds)}
            row["int8_vs_bf16"] = round(row["method_bf16"] / row["method_int8"], 2)
            row["int8_fraction_of_bare_int8"] = round(row["bare_int8"] / row["method_int8"], 3)
            row["int8_fraction_of_bare_bf16"] = round(row["bare_bf16"] / row["method_int8"], 3)
            rows.append(row)
            heads = {d: m.cloud_step_batch(ups) for d, m in methods.items()}
        fp32_b1 = rows[0]["method_fp32"]
        for r in rows:
            for d in DTYPES:
                r[f"per_head_speedup_{d}"] = round(fp32_b1 / (r[f"method_{d}"] / r["batch"]), 1)
        errors = {d: _head_error(heads[d], heads["fp32"], torch.Generator().manual_seed(1)) for d in ("bf16", "int8")}
        one = heads["fp32"][0]
        data = torch.cat([one.weight.reshape(-1), one.bias]).numpy()
        enc = interleaved({"encode": partial(wire.encode, one, quant="fp32"),
                           "encode_safetensors_save": partial(_encode_with_safetensors_save, one),
                           "sha256": partial(_sha256, data)}, rounds=args.rounds, reps=20)
        enc["bytes"] = len(wire.encode(one, quant="fp32"))
        enc["same_message"] = _parsed(wire.encode(one, quant="fp32")) == _parsed(_encode_with_safetensors_save(one))
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}  # glibc tunables of this run
    result = {"V": V, "malloc_env": malloc, "layer": [layer.in_features, layer.out_features], "threads": torch.get_num_threads(),
              "engine_default": torch.backends.quantized.engine, "rows": rows, "head_error": errors, "encode": enc}
    cols = ["batch", "method_fp32", "method_bf16", "method_int8", "bare_fp32", "bare_bf16", "bare_bf16_to_fp32",
            "bare_int8", *[f"int8_{e}" for e in packs], "fp32_out", "int8_vs_bf16", "int8_fraction_of_bare_int8",
            "int8_fraction_of_bare_bf16", "per_head_speedup_bf16", "per_head_speedup_int8"]
    fault_cols = ["batch", *[f"{k}_faults" for k in cols[1:cols.index("fp32_out") + 1]]]
    md = [f"CDC-MMPG generator at V = {V} (f_h's output {layer.in_features} -> {layer.out_features}), "
          f"{result['threads']} torch thread, median ms per call, interleaved rounds; glibc malloc environment: "
          f"{' '.join(f'{k}={v}' for k, v in malloc.items()) or 'none (defaults)'}.", "", markdown_table(rows, cols),
          "Minor page faults per call (4 KiB pages first touched: outputs glibc returned to the system):", "",
          markdown_table(rows, fault_cols),
          "Heads vs fp32 (batch 64): " + "; ".join(
              f"{d}: W max abs {e['weight_max_abs']:.3g} (max |W| {e['weight_max_abs_ref']:.3g}), b {e['bias_max_abs']:.3g}, "
              f"logits {e['logit_max_abs']:.3g} (max {e['logit_max_abs_ref']:.3g}), top answer changed "
              f"{e['top1_changed']:.3%}" for d, e in errors.items()) + ".", "",
          f"Encoding one fp32 answer ({enc['bytes']} B): {enc['encode']} ms with `_container.write`, "
          f"{enc['encode_safetensors_save']} ms with `safetensors.torch.save` (same message: {enc['same_message']}); "
          f"SHA-256 over its bytes once: {enc['sha256']} ms.", ""]
    write_result(result, args.out, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
