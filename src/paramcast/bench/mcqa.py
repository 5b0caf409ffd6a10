"""Multiple-choice video QA on EmojiClips: every method scores the 5 candidates of a question.

All-in-One's recipe (seed cdc-mmpg §4.4.1): the question and a candidate are joined with [SEP],
``(video, question [SEP] candidate)`` goes through the encoder, a head gives one logit per
candidate, the prediction is the candidate with the highest logit.

How the methods are trained for it (one path for all of them, no per-method code): every
``(row, candidate)`` pair is one row of a :class:`~paramcast.models.features.FeatureSet` whose
features are the encoder's per-frame output for ``(video, question [SEP] candidate)`` and whose
label is 1 for the right candidate, 0 otherwise. Each registered method is created with
``num_answers=2`` and trained by its **own** ``fit`` on those pairs (CDC-MMPG's ADR + per-device
groups, StableSynthNet's contrastive terms, DUET's generator, ...); a candidate's score is the
pair head's ``logit[1] - logit[0]`` (:func:`paramcast.bench.metrics.mc_scores`), which is one
``Linear(H, 1)`` logit ``(W_1 - W_0) h + (b_1 - b_0)``. Deviation from All-in-One, the same for
every method: training is pointwise (cross-entropy per pair, 1 right : 4 wrong) rather than a
softmax over the 5 scores of a question; the generated layer is ``Linear(96, 2)`` (776 B down)
rather than ``Linear(96, 1)`` (388 B).

Order: the frozen encoder was pretrained on questions alone and reads the start of the text: with
``question [SEP] candidate`` the 5 candidates' features of one row differ by an rms of 0.02 against 13
between rows (quick preset, 200 history rows) — every head is then at chance (measured: 18.9 / 18.3 %
for source-only). ``candidate_first=True`` (default) joins them as ``[CLS] candidate [SEP] question``
(rms 4.5 within a row against 7.6 between rows); ``candidate_first=False`` is All-in-One's order.

Frames: each pair is encoded on ``MC_FRAMES = 3`` evenly spaced frames of the clip (0, T/2, T - 1;
All-in-One's D = 3 sampled frames): five candidates on all T = 8 frames would cost 5 × the whole
open-ended encoding. Fine-tuning re-encodes the same 3 frames. The frames (and the frozen backbone's
output) stay the split's per-clip :class:`~paramcast.data.store.ClipView`: the 3 frames are picked
per batch, and a pair set's raw inputs are a view over the distinct clips of its rows (each read
once), so memory does not grow with the questions per clip or the 5 candidates per question.

The encoder is fine-tuned for the task first (``mc_epochs``, default 2; 0 = the open-ended
QA-pretrained encoder as it is): the seeds fine-tune All-in-One on each task's training split before
anything else, and an encoder pretrained on open-ended answers alone was never asked to compare a
candidate with the video (every method sat at chance on it). :func:`mc_finetune` trains the same
parts the cloud pretraining trained (projection, fusion, text projection; the backbone and MiniLM's
embeddings stay frozen) on the *history*'s questions, listwise: a throw-away ``Linear(C, 1)`` scores
each of the 5 ``(video, candidate [SEP] question)`` pairs from the mean of its frame features and a
softmax over the 5 is trained against the right one. The result is cached and then frozen and
shared by every method, as the QA-pretrained encoder is for open-ended QA.

Adaptation, as in :mod:`paramcast.bench.videoqa`, per device: its first ``k`` *questions* (5·k
pairs) are the adaptation samples of every method and are not evaluated; collaborative methods
upload frame 0 of the first pair (video + question [SEP] its first candidate), F-linear /
Fine-tuning train on the labelled 5·k pairs (their ``k`` field is set to 5·k). Candidate strings are
tokenised with the dataset's word vocabulary; the candidate features are cached like
``feature_set``'s (``runs/cache/features/``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from paramcast import catalog, wire
from paramcast.baselines.duet import frame_index
from paramcast.bench.adapt import adapt, count
from paramcast.bench.metrics import accuracy_report, mc_scores
from paramcast.bench.videoqa import SPLITS, Prepared, VideoQABenchConfig, _method_kwargs, prepare
from paramcast.data.store import ClipView
from paramcast.models.encoder import AllInOneEncoder
from paramcast.models.features import FeatureSet, _progress, cache_key, cache_root, encoder_digest
from paramcast.models.training import classification_step, warmup_cosine

__all__ = ["MC_METHODS", "candidate_words", "encode_cached", "markdown", "mc_finetune", "mc_tokens", "pair_set", "pair_view", "plot",
           "run_mcqa"]

MC_FRAMES = 3
MC_METHODS = ("source-only", "f-linear", "fine-tuning", "f-hyper", "cdc-mmpg", "duet", "stablesynthnet")
SEP, CLS, UNK = 2, 1, 3


def candidate_words(vocab: Any) -> list[str]:
    """Words of the candidate strings that the dataset's word list lacks (EmojiClips: "yes", "no",
    "maybe", "always", "never", "zero" ... "four" — no question or caption uses them), sorted."""
    from paramcast.data.emojiclips.dataset import tokenize

    known = set(vocab.words)
    return sorted({w for text in vocab.mc_answers for w in tokenize(text)} - known)


def mc_tokens(question: torch.Tensor, candidates: torch.Tensor, vocab: Any, max_len: int = 64,
              candidate_first: bool = False, words: list[str] | None = None) -> torch.Tensor:
    """``[CLS] question [SEP] candidate`` word ids for every row and candidate: (N, Lq), (N, K) -> (N, K, L)
    (``candidate_first``: ``[CLS] candidate [SEP] question``).

    ``question`` starts with [CLS] and is 0-padded; candidate ``c`` is the string
    ``vocab.mc_answers[c]`` tokenised with ``words`` (default ``vocab.words``; unknown words ->
    [UNK]). Pass ``[*vocab.words, *candidate_words(vocab)]`` with an encoder from
    :meth:`~paramcast.models.encoder.AllInOneEncoder.with_words`: with the dataset's words alone the
    5 candidates of a yes/no or count question are all [UNK] and cannot be told apart.
    """
    from paramcast.data.emojiclips.dataset import tokenize

    wid = {w: i for i, w in enumerate(words if words is not None else vocab.words)}
    cand_ids = [[wid.get(w, UNK) for w in tokenize(text)] for text in vocab.mc_answers]
    q_rows = [[int(t) for t in row if t != 0] for row in question.tolist()]
    join = (lambda q, c: [CLS] + c + [SEP] + q[1:]) if candidate_first else (lambda q, c: q + [SEP] + c)
    seqs = [[join(q, cand_ids[c]) for c in row] for q, row in zip(q_rows, candidates.tolist(), strict=True)]
    L = min(max_len, max((len(s) for row in seqs for s in row), default=1))
    out = torch.zeros(len(seqs), candidates.shape[1], L, dtype=torch.int64)
    for i, row in enumerate(seqs):
        for c, s in enumerate(row):
            s = s[:L]
            out[i, c, : len(s)] = torch.tensor(s)
    return out


@torch.no_grad()
def encode_cached(encoder: Any, frames: torch.Tensor | ClipView, tokens: torch.Tensor, key: str | None,
                  root: str | Path | None = None, batch_size: int = 128, progress: bool = False,
                  label: str = "encode", stem: torch.Tensor | ClipView | None = None,
                  frame_index: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame features of ``(frames[i], tokens[i, c])`` for every row i and text c: (N, K, T, C).

    frames (N, T, H, W, 3) uint8, tokens (N, K, L); ``stem``: the frames' frozen backbone output
    (``FeatureSet.tokens``), computed once instead of once per text; ``frame_index``: encode only
    these frames of each clip (T = its length), picked per batch of rows. Cached on disk under
    ``key`` + the encoder's weights (like :func:`paramcast.models.features.feature_set`).
    """
    from safetensors.torch import load_file, save_file

    path = None
    if key is not None:
        path = cache_root(root) / "features" / f"{cache_key(key, encoder_digest(encoder), tuple(tokens.shape))}.safetensors"
        if path.exists():
            return load_file(str(path))["features"]
    encoder.eval()
    N, K = tokens.shape[:2]
    pick = (lambda x: x) if frame_index is None else (lambda x: x[:, frame_index])
    out = torch.zeros(N, K, frames.shape[1] if frame_index is None else len(frame_index), encoder.hidden)
    with _progress(progress) as bar:
        task = bar.add_task(label, total=-(-N // batch_size) * K, info="")
        for s in range(0, N, batch_size):
            x = pick((stem if stem is not None else frames)[s: s + batch_size])   # this batch's rows only
            for c in range(K):
                q = tokens[s: s + batch_size, c]
                f = encoder.fuse(x, q) if stem is not None else encoder(x, q)
                out[s: s + batch_size, c] = f.float().cpu()
                bar.update(task, advance=1)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": out.contiguous()}, str(path))
    return out


def mc_finetune(encoder: AllInOneEncoder, stem: torch.Tensor | ClipView, tokens: torch.Tensor, label: torch.Tensor,
                frame_index: torch.Tensor, epochs: int = 2, batch_size: int = 16, lr: float = 3e-4, seed: int = 0,
                key: str | None = None, root: str | Path | None = None, progress: bool = False) -> tuple[AllInOneEncoder, dict]:
    """A copy of ``encoder`` fine-tuned listwise on multiple-choice rows (see the module docstring).

    stem (N, T, ...) the rows' frozen backbone output (a per-clip view), tokens (N, K, L) the rows'
    K joined texts, label (N,) the right candidate, frame_index the frames each pair sees. Cached
    under ``key`` + the base encoder's weights; returns (encoder, log) with the encoder frozen.
    """
    from torch import nn

    directory = None
    if key is not None:
        directory = cache_root(root) / "encoders" / cache_key("mc", key, encoder_digest(encoder), epochs, batch_size, lr, seed,
                                                              frame_index.tolist(), tuple(tokens.shape))
        if (directory / "model.safetensors").exists():
            log = json.loads((directory / "mc_finetune.json").read_text())
            return AllInOneEncoder.load(directory, str(encoder.cls_token.device)).requires_grad_(False).eval(), \
                {**log, "cached": True}
    torch.manual_seed(seed)
    dev = encoder.cls_token.device
    mc = copy.deepcopy(encoder).requires_grad_(True)
    frozen = getattr(mc.text, "embeddings", None)           # MiniLM's pretrained embeddings stay frozen
    if frozen is not None:
        frozen.requires_grad_(False)
    score = nn.Linear(mc.hidden, 1).to(dev)
    params = [p for p in mc.parameters() if p.requires_grad] + list(score.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    N, K = tokens.shape[:2]
    steps = max(1, epochs * -(-N // batch_size))
    sched = warmup_cosine(opt, steps)
    g = torch.Generator().manual_seed(seed)
    log: dict[str, Any] = {"epochs": epochs, "rows": N, "loss": [], "train_acc": []}
    t0 = time.perf_counter()
    mc.train()
    with _progress(progress) as bar:
        task = bar.add_task("fine-tune encoder for MC", total=steps, info="")
        for _ in range(epochs):
            tot, correct, n = 0.0, 0, 0
            for idx in torch.randperm(N, generator=g).split(batch_size):
                x = stem[idx][:, frame_index].repeat_interleave(K, dim=0)            # (B*K, D, ...)
                f = mc.fuse(x, tokens[idx].flatten(0, 1), frame_index=frame_index.to(dev))
                logits = score(f.mean(1)).view(len(idx), K)
                loss, right = classification_step(opt, sched, params, logits, label[idx].to(dev))
                tot += loss * len(idx)
                correct += right
                n += len(idx)
                bar.update(task, advance=1, info=f"loss {tot / n:.3f} acc {correct / n:.3f}")
            log["loss"].append(tot / N)
            log["train_acc"].append(correct / N)
    log["seconds"] = time.perf_counter() - t0
    mc.requires_grad_(False).eval()
    if directory is not None:
        mc.save(directory)
        (directory / "mc_finetune.json").write_text(json.dumps(log))
    return mc, {**log, "cached": False}


def pair_set(features: torch.Tensor, clips: Any, tokens: torch.Tensor, rows: torch.Tensor,
             keep_raw: bool = False, stem: torch.Tensor | ClipView | None = None,
             frame_index: torch.Tensor | None = None) -> FeatureSet:
    """The (row, candidate) pairs of ``rows`` as one FeatureSet of ``len(rows) * K`` rows, label 1 = right.

    ``keep_raw``: also the pairs' raw inputs (frames ``frame_index`` of each clip, its backbone
    output ``stem``, the pair's text), the frames and stem as :func:`pair_view` s."""
    K = features.shape[1]
    answer = (torch.arange(K)[None] == clips.mc_label[rows][:, None]).long().flatten()
    raw = keep_raw and stem is not None
    return FeatureSet(features[rows].flatten(0, 1), answer, clips.device[rows].repeat_interleave(K),
                      pair_view(clips.frames, rows, K, frame_index) if keep_raw else None,
                      tokens[rows].flatten(0, 1) if keep_raw else None,
                      tokens=pair_view(stem, rows, K, frame_index) if raw else None)


def pair_view(values: torch.Tensor | ClipView, rows: torch.Tensor, K: int,
              frame_index: torch.Tensor | None = None) -> ClipView:
    """``values[rows]`` with each row repeated ``K`` times (one per candidate), frames ``frame_index``
    of each: a :class:`ClipView` over the distinct clips of ``rows``, each read once (plain
    tensors: one entry per row), never one copy per row or per pair."""
    if isinstance(values, ClipView):
        clips, inv = torch.unique(values.index[rows], return_inverse=True)
        store = values.store[clips]
    else:
        store, inv = values[rows], torch.arange(len(rows))
    if frame_index is not None:
        store = store[:, frame_index]
    return ClipView(store, inv.repeat_interleave(K))


def _create(config: VideoQABenchConfig, name: str, prep: Prepared) -> Any:
    kw = _method_kwargs(config, name)
    if "k" in kw and "k" not in config.method_overrides.get(name, {}):
        kw["k"] = 5 * config.k                       # F-linear / Fine-tuning: all pairs of the k questions
    return catalog.create(name, num_answers=2, feature_dim=prep.encoder.hidden, encoder=prep.encoder,
                           device=prep.device, seed=config.seed, progress=config.progress, **kw)


def _evaluate(method: Any, split: str, feats: torch.Tensor, clips: Any, tokens: torch.Tensor, k: int,
              devices: list[str], stem: torch.Tensor | ClipView | None = None,
              frame_index: torch.Tensor | None = None) -> tuple[dict, list[float], tuple | None]:
    preds, labels, devs, adapt_ms, example = [], [], [], [], None
    raw = method.reads_raw_inputs
    for d in clips.device.unique().tolist():
        rows = torch.nonzero(clips.device == d).flatten()
        shot_rows, rest = rows[:k], rows[k:]
        if rest.numel() == 0:
            continue
        method.reset()
        shots = pair_set(feats, clips, tokens, shot_rows, keep_raw=raw, stem=stem, frame_index=frame_index)
        shots.meta["device_id"] = devices[d] if d < len(devices) else str(d)
        got = adapt(method, shots)
        if got.update is not None:
            example = example or (got.upload, got.update)
        if got.device_ms:
            adapt_ms.append(got.device_ms)
        logits = method.predict(pair_set(feats, clips, tokens, rest, keep_raw=raw, stem=stem, frame_index=frame_index))
        preds.append(mc_scores(logits, feats.shape[1]).argmax(-1))
        labels.append(clips.mc_label[rest])
        devs.append(clips.device[rest])
    method.reset()
    return accuracy_report(torch.cat(preds), torch.cat(labels), torch.cat(devs)), adapt_ms, example


def run_mcqa(config: VideoQABenchConfig, frames: int = MC_FRAMES, candidate_first: bool = True,
             mc_epochs: int = 2) -> dict[str, Any]:
    """Multiple-choice video QA for every method of ``config.methods`` (EmojiClips only); ``mc_epochs``:
    epochs of :func:`mc_finetune` on the history first (0: the open-ended QA-pretrained encoder as is)."""
    if config.dataset is not None:
        raise ValueError("bench mcqa runs on EmojiClips (its rows carry 5 candidates); real datasets: not yet")
    prep = prepare(config)
    ds = prep.dataset
    data_key = f"{ds.config.name}-{ds.config.fingerprint()}"
    t0 = time.perf_counter()
    tokens, feats, stems = {}, {}, {}
    fi = frame_index(ds.history.frames.shape[1], frames)      # every split has the same T
    extra = candidate_words(ds.vocab) if prep.encoder.config.text == "minilm" else []
    if extra:                                                 # the candidates' own words, embedded by MiniLM
        prep = dataclasses.replace(prep, encoder=prep.encoder.with_words(extra))
    words = [*ds.vocab.words, *extra]
    for s in ("history", *SPLITS):
        clips = ds.split(s)
        stems[s] = prep.features[s].tokens                    # per-clip views; frames fi picked per batch
        tokens[s] = mc_tokens(clips.question, clips.candidates, ds.vocab, prep.encoder.config.max_question_len,
                              candidate_first, words)
    mc_log = None
    if mc_epochs:
        if stems["history"] is None:
            raise ValueError("mc_epochs > 0 needs a cacheable encoder (a frozen pretrained backbone); use mc_epochs=0")
        encoder, mc_log = mc_finetune(prep.encoder, stems["history"], tokens["history"], ds.history.mc_label, fi,
                                      epochs=mc_epochs, seed=config.seed, key=f"{data_key}-{prep.pretrain_log.get('path')}",
                                      root=config.cache_root, progress=config.progress)
        prep = dataclasses.replace(prep, encoder=encoder)  # Fine-tuning's private copy starts from it too
    for s in ("history", *SPLITS):
        clips = ds.split(s)
        feats[s] = encode_cached(prep.encoder, clips.frames, tokens[s], f"mc{frames}{'c' if candidate_first else 'q'}-{data_key}-{s}-{prep.pretrain_log.get('path')}",
                                 config.cache_root, progress=config.progress, label=f"encode mc {s}",
                                 stem=stems[s], frame_index=fi)
    prep.timings["mc_features_s"] = time.perf_counter() - t0
    history = pair_set(feats["history"], ds.history, tokens["history"], torch.arange(len(ds.history)))

    results: dict[str, Any] = {}
    for name in config.methods:
        torch.manual_seed(config.seed)
        method = _create(config, name, prep)
        t0 = time.perf_counter()
        method.fit(history)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        r: dict[str, Any] = {"accuracy": {}}
        adapt_all, example = [], None
        for s in SPLITS:
            r["accuracy"][s], adapt_ms, ex = _evaluate(method, s, feats[s], ds.split(s), tokens[s], config.k,
                                                       ds.vocab.devices, stems[s], fi)
            adapt_all += adapt_ms
            example = example or ex
        r.update(fit_s=fit_s, eval_s=time.perf_counter() - t0, collaborative=bool(method.collaborative),
                 d_params=count(method.device_params()), c_params=count(method.cloud_params()),
                 bytes_up=int(wire.tensor_nbytes(example[0])) if example else 0,
                 bytes_down=int(wire.tensor_nbytes(example[1])) if example else 0,
                 adapt_ms=statistics.median(adapt_all) if adapt_all else None,
                 config=dataclasses.asdict(method.config) if dataclasses.is_dataclass(getattr(method, "config", None)) else {})
        results[name] = r
        if config.progress:
            print(f"{name:14s} new {r['accuracy']['new']['filtered']:.3f}  unseen {r['accuracy']['unseen']['filtered']:.3f}"
                  f"  fit {fit_s:.1f}s eval {r['eval_s']:.1f}s")
    return {
        "task": "videoqa-mc", "config": dataclasses.asdict(config), "device": prep.device,
        "dataset": {"preset": ds.config.name, "source": ds.config.source, "fingerprint": ds.config.fingerprint(),
                    "rows": {s: len(ds.split(s)) for s in ("history", *SPLITS)}, "candidates": 5, "frames": frames,
                    "text": "[CLS] candidate [SEP] question" if candidate_first else "[CLS] question [SEP] candidate",
                    "train_devices": int(ds.history.device.unique().numel()),
                    "unseen_devices": int(ds.unseen.device.unique().numel())},
        "encoder": {"pretrain": prep.pretrain_log, "mc_finetune": mc_log}, "timings": prep.timings, "methods": results,
        "summary": {n: {"new": r["accuracy"]["new"]["filtered"], "unseen": r["accuracy"]["unseen"]["filtered"],
                        "worst_device": min(r["accuracy"][s]["worst_device"] for s in SPLITS),
                        "bytes_up": r["bytes_up"], "bytes_down": r["bytes_down"], "adapt_ms": r["adapt_ms"],
                        "fit_s": r["fit_s"]} for n, r in results.items()},
    }


def markdown(result: dict[str, Any]) -> str:
    from paramcast.bench.report import markdown_table

    ds = result["dataset"]
    rows = [{"method": n, **row} for n, row in result["summary"].items()]
    return (f"## Multiple-choice video QA — EmojiClips `{ds['preset']}` ({ds['source']}), {ds['train_devices']} "
            f"training + {ds['unseen_devices']} unseen devices, 5 candidates (chance 0.20)\n\n"
            "Accuracy of the argmax over the 5 candidates' scores, on the training devices' new samples and on "
            "unseen devices; each device's first k questions adapt and are not evaluated. Pair heads trained "
            "pointwise (see `docs/tasks.md`).\n\n"
            + markdown_table(rows, ["method", "new", "unseen", "worst_device", "bytes_up", "bytes_down",
                                    "adapt_ms", "fit_s"]))


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paramcast.bench.report import save_figure

    rows = result["summary"]
    names = list(rows)
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (key, label) in enumerate((("new", "new samples"), ("unseen", "unseen devices"))):
        ax.bar([j + (i - 0.5) * 0.38 for j in range(len(names))], [100 * rows[n][key] for n in names], 0.38,
               label=label)
    ax.axhline(20, color="gray", ls="--", lw=1, label="chance (1/5)")
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Multiple-choice video QA")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
