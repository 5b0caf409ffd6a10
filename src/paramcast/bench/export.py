"""``paramcast bench export``: size and CPU latency of the exported ONNX device model vs. PyTorch.

    paramcast bench export --out benchmarks/results/export_standard

The device model of the standard benchmark's shapes (``EncoderConfig`` of
benchmarks/results/videoqa_standard.json: 64 px frames, 16 px patches, C = 192, 2 fusion layers,
1183 words; V = 1000 answers; CDC-MMPG's static head 192 -> 96), with random weights: size and
latency depend on the shapes, not on the values. Two graphs are exported with
:func:`paramcast.device.export.export_onnx`: one frame (``T = 1``, what a device encodes per frame)
and the full clip (``T = 8``). Each is timed in onnxruntime (CPU execution provider) and in PyTorch
eager mode on the same inputs, in the same process, both with the same intra-op thread count
(``--threads``, default 1: a phone core), alternating between the two so drift hits both; the
table gives the ratios. Sizes: the ``.onnx`` file against the PyTorch device model's fp32
parameters as a safetensors file (encoder + static head; the generated layer travels separately and
is an input of both).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["bench_export"]


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _summary(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {"p50_ms": statistics.median(s), "p90_ms": s[int(0.9 * (len(s) - 1))], "mean_ms": statistics.fmean(s)}


def _words(n: int) -> list[str]:
    """``n`` dataset words: the specials, then MiniLM's first whole-word vocabulary entries (one WordPiece
    each; EmojiClips' words average slightly more, so its sliced embedding table is a little larger)."""
    from paramcast.models.pretrained import minilm_tokenizer

    vocab = minilm_tokenizer().vocab
    whole = sorted((i, w) for w, i in vocab.items() if w.isalpha() and w.isascii() and i >= 1996)
    return ["[PAD]", "[CLS]", "[SEP]", "[UNK]", *(w for _, w in whole[: n - 4])]


def bench_export(frames: str = "1,8", repeats: int = 200, warmup: int = 20, threads: int = 1, answers: int = 1000,
                 words: int = 1183, image_size: int = 64, question_len: int = 20, seed: int = 0,
                 out: Path | None = None, quiet: bool = False) -> dict:
    """Run the benchmark (see the module docstring); typer-style parameters, so it doubles as the CLI command."""
    import importlib.metadata

    import onnxruntime as ort
    from safetensors.torch import save

    from paramcast.device.export import DeviceGraph, export_onnx, has_executorch, run_pte
    from paramcast.methods.cdc_mmpg.model import CDCMMPG
    from paramcast.models.encoder import AllInOneEncoder, EncoderConfig

    executorch = has_executorch()
    load_start = os.getloadavg()[0]
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    cfg = EncoderConfig(vocab_size=words, image_size=image_size)
    encoder = AllInOneEncoder(cfg, words=_words(words)).to("cpu").requires_grad_(False).eval()
    method = CDCMMPG(num_answers=answers, feature_dim=cfg.hidden, encoder=encoder, device="cpu", seed=seed)
    graph = DeviceGraph(encoder, method.model.static).eval()
    torch_bytes = len(save({f"encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
                           | {f"static.{k}": v.contiguous() for k, v in method.model.static.state_dict().items()}))
    weight, bias = (t.detach().contiguous() for t in method.static_layer())
    g = torch.Generator().manual_seed(seed)
    rows = []
    for T in (int(t) for t in frames.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            info = export_onnx(encoder, method, tmp, num_frames=T, image_size=image_size, question_len=question_len,
                               executorch=executorch)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            session = ort.InferenceSession(str(Path(tmp) / "device.onnx"), opts, providers=["CPUExecutionProvider"])
            pte = run_pte(Path(tmp) / "device.pte") if executorch else None
        x = torch.randint(0, 256, (1, T, image_size, image_size, 3), dtype=torch.uint8, generator=g)
        q = torch.randint(4, words, (1, question_len), generator=g)
        feeds = {"frames": x.numpy(), "question": q.numpy(), "weight": weight.numpy(), "bias": bias.numpy()}

        def run_torch(x=x, q=q):
            with torch.inference_mode():
                return graph(x, q, weight, bias)

        def run_onnx(feeds=feeds, session=session):
            return session.run(None, feeds)

        def run_et(x=x, q=q, pte=pte):
            return pte(x, q, weight, bias)

        runners = {"torch": run_torch, "onnx": run_onnx} | ({"pte": run_et} if pte else {})
        ref, got = run_torch()[1].numpy(), run_onnx()[1]
        for _ in range(warmup):
            for fn in runners.values():
                fn()
        times = {k: [] for k in runners}
        for _ in range(repeats // 10):  # alternate in chunks: load drift hits all
            for k, fn in runners.items():
                times[k] += _time(fn, 10)
        s = {k: _summary(v) for k, v in times.items()}
        row = {"frames": T, "onnx_bytes": info["onnx_bytes"], "torch_bytes": torch_bytes,
               "size_ratio": info["onnx_bytes"] / torch_bytes, "exporter": info["exporter"],
               "torch_p50_ms": s["torch"]["p50_ms"], "onnx_p50_ms": s["onnx"]["p50_ms"],
               "torch_p90_ms": s["torch"]["p90_ms"], "onnx_p90_ms": s["onnx"]["p90_ms"],
               "speedup_p50": s["torch"]["p50_ms"] / s["onnx"]["p50_ms"],
               "max_abs_logit_diff": float(np.abs(ref - got).max())}
        if pte:
            row |= {"pte_bytes": info["pte_bytes"], "pte_p50_ms": s["pte"]["p50_ms"], "pte_p90_ms": s["pte"]["p90_ms"],
                    "pte_speedup_p50": s["torch"]["p50_ms"] / s["pte"]["p50_ms"],
                    "pte_max_abs_logit_diff": float(np.abs(ref - run_et()[1].numpy()).max())}
        rows.append(row)
    result = {"load_average_1m": {"start": load_start, "end": os.getloadavg()[0]},  # other work on the machine
              "config": {"frames": frames, "repeats": repeats, "warmup": warmup, "threads": threads,
                         "answers": answers, "encoder": cfg.to_dict(), "question_len": question_len, "seed": seed,
                         "onnxruntime": ort.__version__,
                         "executorch": importlib.metadata.version("executorch") if executorch else None},
              "rows": rows}
    if out is not None:
        from paramcast.bench.report import markdown_table, write_result

        cols = ["frames", "onnx_bytes", "torch_bytes", "size_ratio", "torch_p50_ms", "onnx_p50_ms", "speedup_p50",
                "torch_p90_ms", "onnx_p90_ms", "max_abs_logit_diff", "exporter"]
        md = ("Exported device model (ONNX in onnxruntime CPU; ExecuTorch .pte with XNNPACK) vs. the PyTorch "
              f"device model, {threads} thread(s), batch 1, {repeats} timed runs each.\n\n"
              + markdown_table(rows, cols))
        if executorch:
            md += "\n\n" + markdown_table(rows, ["frames", "pte_bytes", "torch_bytes", "torch_p50_ms", "pte_p50_ms",
                                                 "pte_speedup_p50", "pte_p90_ms", "pte_max_abs_logit_diff"])
        if not quiet:
            print(md)
        write_result(result, Path(out), md)
    return result
