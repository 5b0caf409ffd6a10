"""How far does longer encoder pretraining go? A method-independent learning curve.

    python benchmarks/diagnostics/pretrain_curve.py --epochs 6 --max-rows 0 \
        --out benchmarks/results/pretrain_curve_standard

Pretrains the encoder's trained part (projection + fusion + text projection; the Lite0 stem frozen and
cached, as in ``paramcast bench videoqa``) with the pretraining QA head on the standard preset's
history, and after every epoch evaluates that head on the ``new`` split: overall filtered accuracy and,
per question type, the gain over that type's text prior (the history's majority answer). The head
is a source-only classifier, so this measures the encoder, not any method. The learning-rate schedule
(warm-up + cosine) spans all ``--epochs``: an intermediate epoch is a lower bound for a shorter run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from paramcast.bench.config import load_bench_config
from paramcast.bench.report import markdown_table, write_result
from paramcast.bench.videoqa import _load_data
from paramcast.data.emojiclips._scenes import QTYPES
from paramcast.models.encoder import AllInOneEncoder, EncoderConfig
from paramcast.models.features import stem_tokens
from paramcast.models.heads import QAHead
from paramcast.models.training import classification_step, warmup_cosine


def curve(config: str, epochs: int, lr: float, batch_size: int, max_rows: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    ds, key = _load_data(load_bench_config(config))
    h, new = ds.history, ds.split("new")
    enc = AllInOneEncoder(EncoderConfig(vocab_size=len(ds.vocab.words), image_size=int(h.frames.shape[2]),
                                        max_frames=16, max_question_len=64), words=ds.vocab.words)
    sh, sn = stem_tokens(enc, h, key=f"{key}-history"), stem_tokens(enc, new, key=f"{key}-new")
    head = QAHead(enc.hidden, len(ds.vocab.answers))
    params = [p for p in enc.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    rows = torch.nonzero(h.answer >= 0).flatten()
    if max_rows and len(rows) > max_rows:
        rows = rows[torch.randperm(len(rows), generator=g)[:max_rows]].sort().values
    sched = warmup_cosine(opt, epochs * -(-len(rows) // batch_size))
    prior = {q: torch.mode(h.answer[(h.qtype == q) & (h.answer >= 0)]).values for q in range(len(QTYPES))}
    out, t0 = [], time.perf_counter()
    for ep in range(epochs):
        enc.train(), head.train()
        order, correct, n = rows[torch.randperm(len(rows), generator=g)], 0, 0
        for s in range(0, len(order), batch_size):
            idx = order[s: s + batch_size]
            _, right = classification_step(opt, sched, params, head(enc.fuse(sh[idx], h.question[idx])), h.answer[idx])
            correct, n = correct + right, n + len(idx)
        enc.eval(), head.eval()
        with torch.no_grad():
            p = torch.cat([head(enc.fuse(sn[s: s + 256], new.question[s: s + 256])).argmax(-1)
                           for s in range(0, len(new), 256)])
        m, ok = new.answer >= 0, p == new.answer
        gain = {QTYPES[q]: round(100 * (ok[m & (new.qtype == q)].float().mean().item()
                                        - (new.answer == prior[q])[m & (new.qtype == q)].float().mean().item()), 1)
                for q in range(len(QTYPES))}
        out.append({"epoch": ep + 1, "train": round(correct / n, 3), "new": round(ok[m].float().mean().item(), 3),
                    "gain_over_prior": gain, "s": round(time.perf_counter() - t0)})
        print(out[-1], flush=True)
    return {"config": config, "epochs": epochs, "lr": lr, "batch_size": batch_size, "rows": int(len(rows)),
            "threads": torch.get_num_threads(), "curve": out}


def markdown(result: dict) -> str:
    table = [{"epoch": r["epoch"], "train acc": r["train"], "new acc": r["new"],
              **{f"{k} gain": v for k, v in r["gain_over_prior"].items()}} for r in result["curve"]]
    return (f"## Encoder pretraining curve — {result['rows']} history rows, batch {result['batch_size']}, lr {result['lr']}, "
            f"cosine over {result['epochs']} epochs\n\nAccuracy of the pretraining head on `new` (filtered); "
            "gains in points over each question type's text prior.\n\n" + markdown_table(table))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="benchmarks/videoqa/standard.yaml")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-rows", type=int, default=0, help="history rows used (0 = all)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    ap.add_argument("--out", type=Path, default=Path("runs/pretrain_curve"))
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    result = curve(a.config, a.epochs, a.lr, a.batch_size, a.max_rows)
    print(write_result(result, a.out, markdown(result)))


if __name__ == "__main__":
    main()
