"""``paramcast bench cdcca``: CD-CCA against its baselines on a continual stream of shifted devices.

Protocol (seed sec. 4, at EmojiClips scale):

* Source domain: the history rows of the first ``source_devices`` training devices, minus the clips
  whose main sprite is in one of ``holdout_categories`` held-out categories. Encoder, teacher and
  student are pretrained there once (:func:`~paramcast.methods.cd_cca.pretrain`).
* Target stream: one unseen device per round (continual shift of art style, camera, background and
  category mix). Each round's rows are split by clip into an unlabelled adaptation stream and a
  held-out evaluation set. Every method adapts on the stream, then is evaluated on the round's
  evaluation set: VQA MC / DA accuracy, BLEU-4 and CIDEr, the latter also per nocaps-style split:
  out-domain = held-out category, near-domain = a seen category among the rarest third in the
  source, in-domain = the other seen categories.
* Collaborative methods run through the real wire: the upload and the weight delta are encoded
  and decoded by :mod:`paramcast.wire`; bytes are the encoded message lengths.

Tables produced: per-round and mean results (seed Tables 1-2, Fig. 3), ablation PL / AKD / UTS-1 /
UTS-2 (Table 3), random vs UTS token sampling at 25/50/75 % (Table 4), uplink / downlink params,
bytes and transfer times (Table 5).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from paramcast import wire
from paramcast.bench.adapt import WireTransport, adapt
from paramcast.bench.captioning import caption_scores
from paramcast.bench.netsim import PROFILES, transfer_ms
from paramcast.bench.report import markdown_table, mean_std, verdict, write_result
from paramcast.data.base import ClipSet
from paramcast.methods.cd_cca.akd import adapter_parameters
from paramcast.methods.cd_cca.method import (
    CDCCA,
    CDCCAConfig,
    MLLMSourceOnly,
    PretrainConfig,
    Pretrained,
    pretrain,
)
from paramcast.models.mllm_tasks import MLLMBatch, evaluate, make_batch
from paramcast.types import WeightDelta

__all__ = ["CDCCABenchConfig", "bench_cdcca", "run_cdcca"]


@dataclass(frozen=True)
class CDCCABenchConfig:
    preset: str = "quick"            # EmojiClips preset
    data_source: str | None = None   # "shapes" | "emoji"; None keeps the preset's
    seed: int = 0                    # domain split, pretraining, UTS and AKD draws
    data_seed: int = 0               # the EmojiClips dataset (fixed across seeds: one dataset, built once)
    source_devices: int = 4          # training devices that form the source domain
    holdout_categories: int = 3      # categories absent from the source (out-domain captions)
    max_source: int = 1200           # source rows the device student is pretrained on
    teacher_source_rows: int = 0     # source rows of the cloud's encoder + teacher (0: every source-domain
                                     # row; they include the student's): the large cloud model has seen more
    teacher_devices: int = 0         # training devices in the teacher's corpus (0: the source devices). More
                                     # is a study, not the protocol: a teacher that has seen other styles and
                                     # cameras (never the rounds' devices, never the held-out categories)
    teacher_all_categories: bool = False  # study: those other devices' rows *with* the held-out categories -
                                     # a cloud that knows concepts the device never saw (web-scale knowledge,
                                     # the seed's premise), still never the rounds' devices. Needs
                                     # teacher_devices > source_devices
    rounds: int = 3                  # one unseen device per round (cycled if there are fewer)
    round_rows: int = 0              # rows per round (0: every row of the round's device), split half
                                     # stream / half evaluation by clip
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    cdcca: CDCCAConfig = field(default_factory=CDCCAConfig)
    ablations: bool = True           # Table 3 and the DWC / all-tokens references
    token_study: bool = True         # Table 4
    device: str | None = None        # torch device of every model (None: cuda when available)
    pair: str = "scratch"            # "scratch": the from-scratch pair of models/mllm.py (shared ViT);
                                     # "pretrained": models/mllm_pretrained.py with teacher_vision="device"
                                     # (Lite0 tokens shared, 6-layer MiniLM teacher; issue 16)

    def __post_init__(self) -> None:
        if self.pair not in ("scratch", "pretrained"):
            raise ValueError(f"pair={self.pair!r}: use scratch or pretrained")
        if self.rounds < 1 or not (self.round_rows == 0 or self.round_rows >= 4):
            raise ValueError("rounds must be >= 1 and round_rows 0 (all) or >= 4 (half stream, half evaluation)")
        if self.teacher_all_categories and self.teacher_devices <= self.source_devices:
            raise ValueError(f"teacher_all_categories needs teacher_devices > source_devices ({self.source_devices}): "
                             "the held-out categories reach the teacher only from the other training devices")


@dataclass
class _Round:
    stream: MLLMBatch
    test: MLLMBatch
    split: list[str]  # nocaps-style split of each test row: in | near | out


def _load(cfg: CDCCABenchConfig):
    from paramcast.data.emojiclips import load

    return load(cfg.preset, source=cfg.data_source, seed=cfg.data_seed, progress=False)


def _domains(ds, cfg: CDCCABenchConfig) -> tuple[ClipSet, ClipSet, list[tuple[ClipSet, list[str]]], dict]:
    """Teacher's and student's source rows; per round (target rows, split per row); a description."""
    n_cat = len(ds.vocab.categories)
    held = list(range(n_cat - cfg.holdout_categories, n_cat))
    hist = ds.history
    g = torch.Generator().manual_seed(cfg.seed)

    def rows(mask: torch.Tensor) -> torch.Tensor:  # shuffled indices into the history
        idx = mask.nonzero().flatten()
        return idx[torch.randperm(len(idx), generator=g)]

    seen_cat = ~torch.isin(hist.category, torch.tensor(held))
    src_idx = rows((hist.device < cfg.source_devices) & seen_cat)
    t_idx = src_idx
    if cfg.teacher_devices > cfg.source_devices:  # the source rows first, then the other devices' rows
        other = (hist.device >= cfg.source_devices) & (hist.device < cfg.teacher_devices)
        t_idx = torch.cat([src_idx, rows(other if cfg.teacher_all_categories else other & seen_cat)])
    teacher_source = hist.subset(t_idx[: cfg.teacher_source_rows or None])
    source = hist.subset(src_idx[: cfg.max_source])
    counts = torch.bincount(source.category, minlength=n_cat)
    seen = [c for c in range(n_cat) if c not in held]
    near = sorted(seen, key=lambda c: int(counts[c]))[: max(1, len(seen) // 3)]

    def split_of(c: int) -> str:
        return "out" if c in held else "near" if c in near else "in"

    unseen_devices = sorted(set(ds.unseen.device.tolist()))
    rounds = []
    for r in range(cfg.rounds):
        dev = unseen_devices[r % len(unseen_devices)]
        rows = ds.unseen.subset(ds.unseen.device == dev)
        rows = rows.subset(torch.randperm(len(rows), generator=g)[: cfg.round_rows or None])
        rounds.append((rows, [split_of(int(c)) for c in rows.category]))
    info = {"source_devices": [ds.vocab.devices[d] for d in range(cfg.source_devices)],
            "heldout_categories": [ds.vocab.categories[c] for c in held],
            "near_categories": [ds.vocab.categories[c] for c in near],
            "round_devices": [ds.vocab.devices[unseen_devices[r % len(unseen_devices)]] for r in range(cfg.rounds)],
            "source_rows": len(source), "teacher_source_rows": len(teacher_source),
            "teacher_heldout_rows": int(torch.isin(teacher_source.category, torch.tensor(held)).sum())}
    return teacher_source, source, rounds, info


def _split_round(pre: Pretrained, rows: ClipSet, split: list[str]) -> _Round:
    """Half the clips stream (unlabelled), the other half evaluate."""
    clips = rows.clip_id.unique()
    test_clips = clips[1::2]
    is_test = torch.isin(rows.clip_id, test_clips)
    test_idx = is_test.nonzero().flatten()
    return _Round(make_batch(pre.encoder, rows.subset(~is_test)), make_batch(pre.encoder, rows.subset(is_test)),
                  [split[i] for i in test_idx.tolist()])


def _scores(model, batch: MLLMBatch, split: list[str], pre: Pretrained, qtype: torch.Tensor | None = None) -> dict:
    """MC, DA, BLEU-4 and CIDEr (all, and per caption split); with ``qtype`` (N,) also MC per question
    type (``MC_<type>``, the vocabulary's type names)."""
    ev = evaluate(model, batch, pre.vocab.words, pre.max_caption)
    out = {"MC": ev["MC"], "DA": ev["DA"]}
    if qtype is not None:
        for t, name in enumerate(pre.vocab.qtypes):
            m = qtype.cpu() == t
            if m.any():
                out[f"MC_{name}"] = 100.0 * float(ev["MC_ok"][m].float().mean())
    out.update(caption_scores(ev["hyps"], ev["refs"]))
    for part in ("in", "near", "out"):
        idx = [i for i, s in enumerate(split) if s == part]
        sc = caption_scores([ev["hyps"][i] for i in idx], [ev["refs"][i] for i in idx])
        out[f"BLEU4_{part}"], out[f"CIDEr_{part}"] = sc["BLEU4"], sc["CIDEr"]
    return out


class TeacherReference(MLLMSourceOnly):
    """The cloud teacher evaluated on the device's rounds, never adapted: not a device method (it is the
    large cloud model), the ceiling that distillation from its pseudo-labels works towards."""

    name = "teacher"

    def reset(self) -> None:
        self.model = self.pre.teacher.eval()


def _run_method(method: MLLMSourceOnly, pre: Pretrained, rounds: list[_Round]) -> dict:
    t0 = time.perf_counter()
    per_round = []
    for rd in rounds:
        comm = {"up_bytes": 0, "down_bytes": 0, "up_tensor_bytes": 0, "down_tensor_bytes": 0, "up_tokens": 0,
                "up_samples": 0, "down_params": 0}
        link = WireTransport()  # upload and delta through the real wire, one message each
        got = adapt(method, rd.stream, link)
        if got.upload is not None:
            (_, comm["up_bytes"], comm["up_tensor_bytes"]), (_, comm["down_bytes"], comm["down_tensor_bytes"]) = link.sent
            comm["up_tokens"], comm["up_samples"] = int(got.upload.features.shape[0]), int(got.upload.text.shape[0])
            comm["down_params"] = sum(t.numel() for t in got.update.deltas.values())
        per_round.append({**_scores(method.model, rd.test, rd.split, pre), **comm})
    keys = [k for k in per_round[0] if not k.startswith(("up_", "down_"))]
    mean = {k: sum(r[k] for r in per_round) / len(per_round) for k in keys}
    return {"rounds": per_round, "mean": mean, "seconds": time.perf_counter() - t0}


def _variant(base: CDCCAConfig, uts: dict | None = None, akd: dict | None = None, dwc: dict | None = None
             ) -> CDCCAConfig:
    return dataclasses.replace(base, uts=dataclasses.replace(base.uts, **(uts or {})),
                               akd=dataclasses.replace(base.akd, **(akd or {})),
                               dwc=dataclasses.replace(base.dwc, **(dwc or {})))


def prepare(cfg: CDCCABenchConfig, ds=None) -> tuple[Pretrained, list[_Round], dict]:
    """The protocol up to the methods: domains, pretraining, the rounds' stream / evaluation batches.
    ``ds``: the loaded EmojiClips dataset, when the caller already holds it (several seeds)."""
    torch.manual_seed(cfg.seed)
    ds = _load(cfg) if ds is None else ds
    teacher_source, source, target, info = _domains(ds, cfg)
    if cfg.pair == "pretrained":
        from paramcast.models.mllm_pretrained import PairConfig, pretrain_pair

        p = cfg.pretrain
        pre = pretrain_pair(source, ds.vocab, PairConfig(teacher_vision="device", teacher_epochs=p.teacher_epochs,
                                                         student_epochs=p.student_epochs, seed=p.seed),
                            cfg.device, teacher_source=teacher_source)
    else:
        pre = pretrain(source, ds.vocab, cfg.pretrain, cfg.device, teacher_source=teacher_source)
    return pre, [_split_round(pre, rows, split) for rows, split in target], info


def run_cdcca(cfg: CDCCABenchConfig = CDCCABenchConfig(), progress=print, ds=None) -> dict:
    """Pretrain once, then run every method and study over the same rounds; a JSON-able dict."""
    from paramcast.baselines.kd import CWD, PKD
    from paramcast.baselines.tta import CoTTA, TentContinual

    t0 = time.perf_counter()
    pre, rounds, info = prepare(cfg, ds)
    t_pre = time.perf_counter() - t0
    progress(f"pretrained in {t_pre:.0f}s: teacher on {info['teacher_source_rows']}, student on "
             f"{info['source_rows']} source rows")

    base = cfg.cdcca
    methods = {
        "Teacher (cloud, reference)": lambda: TeacherReference(pre),
        "Source-only": lambda: MLLMSourceOnly(pre),
        "TENT-continual": lambda: TentContinual(pre),
        "CoTTA": lambda: CoTTA(pre, seed=cfg.seed),
        **{name: (lambda make=make: make(pre, cfg.seed)) for name, (_, make) in READINGS.items()},
        "PKD": lambda: PKD(pre, base),
        "ChannelWiseDivergence": lambda: CWD(pre, base),
        "CD-CCA": lambda: CDCCA(pre, base),
    }
    if cfg.ablations:
        methods |= {
            "PL": lambda: CDCCA(pre, _variant(base, {"sample_mode": "all", "token_mode": "all"}, {"feature_loss": "none"})),
            "PL+AKD": lambda: CDCCA(pre, _variant(base, {"sample_mode": "all", "token_mode": "all"})),
            "PL+AKD+UTS-1": lambda: CDCCA(pre, _variant(base, {"token_mode": "all"})),
            "CD-CCA (fp16 full delta)": lambda: CDCCA(pre, _variant(base, dwc={"scheme": "fp16", "energy": 1.0, "budget": None})),
            "CD-CCA (fp16 tokens)": lambda: CDCCA(pre, dataclasses.replace(base, upload_quant="fp16")),
        }
    if cfg.token_study:
        for r in (0.25, 0.5, 0.75):
            methods[f"tokens random {r:.0%}"] = (lambda r=r: CDCCA(pre, _variant(base, {"token_mode": "random", "token_ratio": r})))
            if r != base.uts.token_ratio:
                methods[f"tokens UTS {r:.0%}"] = (lambda r=r: CDCCA(pre, _variant(base, {"token_ratio": r})))
    results = {}
    for name, make in methods.items():
        # Each row from the same global RNG state (dropout in AKD, LoRA / phi initialisation): a row does
        # not depend on which rows ran before it (it did: CD-CCA's quick CIDEr moved 21.3 <-> 24.9).
        torch.manual_seed(cfg.seed)
        results[name] = _run_method(make(), pre, rounds)
        m = results[name]["mean"]
        progress(f"{name:28s} MC {m['MC']:.2f} DA {m['DA']:.2f} BLEU4 {m['BLEU4']:.2f} CIDEr {m['CIDEr']:.2f} "
                 f"({results[name]['seconds']:.0f}s)")

    # Table 5: what every-token-of-every-sample and an fp16 full delta would cost. Like for like: tensor
    # bytes from shapes (what the seeds count) on both sides, and whole encoded messages on both sides.
    n_stream = sum(len(r.stream) for r in rounds) / len(rounds)
    T, C = rounds[0].stream.image.shape[1:]
    q_bytes = 8 * rounds[0].stream.question.shape[1] * n_stream
    adapters = adapter_parameters(pre.student)
    n_trainable = sum(v.numel() for v in adapters.values())
    full = WeightDelta(device_id="bench", method="cd-cca", task="bench", model_version="bench",
                       deltas={k: torch.zeros_like(v, dtype=torch.float32) for k, v in adapters.items()},
                       base_version="bench", quant="fp16")
    comm = {"all_tokens_fp32_bytes": n_stream * T * C * 4 + q_bytes,
            "full_delta_fp16_bytes": wire.tensor_nbytes(full), "full_delta_fp16_wire_bytes": wire.nbytes(full),
            "trainable_params": n_trainable}
    cd = results["CD-CCA"]["rounds"]
    for key in ("up_bytes", "down_bytes", "up_tensor_bytes", "down_tensor_bytes", "down_params"):
        comm[f"cdcca_{key}"] = sum(r[key] for r in cd) / len(cd)
    comm["uts_up_bytes"], comm["dwc_down_bytes"] = comm["cdcca_up_tensor_bytes"], comm["cdcca_down_tensor_bytes"]
    comm["dwc_down_params"] = comm["cdcca_down_params"]
    comm["uplink_ratio"] = comm["uts_up_bytes"] / comm["all_tokens_fp32_bytes"]
    comm["downlink_ratio"] = comm["dwc_down_bytes"] / comm["full_delta_fp16_bytes"]
    comm["downlink_ratio_wire"] = comm["cdcca_down_bytes"] / comm["full_delta_fp16_wire_bytes"]
    gige = PROFILES["GigE"]
    comm["transfer_ms_GigE"] = {
        "uplink_all": transfer_ms(int(comm["all_tokens_fp32_bytes"]), 0, gige),
        "uplink_uts": transfer_ms(int(comm["uts_up_bytes"]), 0, gige),
        "downlink_fp16": transfer_ms(0, int(comm["full_delta_fp16_bytes"]), gige),
        "downlink_dwc": transfer_ms(0, int(comm["dwc_down_bytes"]), gige),
    }
    return {"config": dataclasses.asdict(cfg), "domains": info, "pretrain_seconds": t_pre,
            "results": results, "communication": comm, "seconds": time.perf_counter() - t0}


MAIN = ("Source-only", "TENT-continual", "CoTTA", "PKD", "ChannelWiseDivergence", "CD-CCA")


def _tent_caption(pre: Pretrained, seed: int) -> MLLMSourceOnly:
    from paramcast.baselines.tta import TentContinual

    return TentContinual(pre, caption_entropy=True)


def _cotta_paramcast(pre: Pretrained, seed: int) -> MLLMSourceOnly:
    from paramcast.baselines.tta import CoTTA

    return CoTTA(pre, seed=seed, per_sample=True, n_augment=4, anchor_threshold=0.9, caption_loss=True)


#: paramcast's earlier readings of the published baselines: row -> (the published row, how to build it).
READINGS = {"TENT-continual (+caption entropy)": ("TENT-continual", _tent_caption),
            "CoTTA (paramcast: per-sample test, 4 views, +caption)": ("CoTTA", _cotta_paramcast)}
# What each compression costs (issue targets: <= 0.5 point): the reference it is measured against.
COSTS = {"uplink (UTS vs every token of every sample)": "PL+AKD",
         "downlink (DWC vs the fp16 full delta)": "CD-CCA (fp16 full delta)"}


def compression_costs(results: dict) -> dict:
    """Points lost by CD-CCA against each reference of :data:`COSTS` (positive = CD-CCA is lower)."""
    cd = results["CD-CCA"]["mean"]
    return {link: {k: results[ref]["mean"][k] - cd[k] for k in ("MC", "DA", "CIDEr")}
            for link, ref in COSTS.items() if ref in results}


_BASELINES = ("Source-only", "TENT-continual", "CoTTA", "PKD", "ChannelWiseDivergence")
#: CD-CCA's claims (cd-cca.txt): (claim, row A, relation, row B, metrics, margin) for
#: :func:`paramcast.bench.report.verdict` on the paired difference A - B over seeds.
CLAIMS = [
    ("premise: the cloud teacher > the device model (issue 16's target: +5)", "Teacher (cloud, reference)", ">",
     "Source-only", ("MC", "DA", "CIDEr"), 0.0),
    ("CD-CCA > Source-only (Tables 1-2; the seed: +3.93 MC / +3.19 DA / +2.20 CIDEr)", "CD-CCA", ">", "Source-only",
     ("MC", "DA", "CIDEr"), 0.0),
    *((f"CD-CCA > {b} (Tables 1-2)", "CD-CCA", ">", b, ("MC", "DA", "CIDEr"), 0.0) for b in _BASELINES[1:]),
    *((f"{b} within ±0.8 of source-only (Table 1)", b, "≈", "Source-only", ("MC", "DA"), 0.8)
      for b in _BASELINES[1:]),
    ("AKD adds to pseudo-labels (Table 3)", "PL+AKD", ">", "PL",
     ("MC", "DA"), 0.0),
    ("UTS-1 (sample selection) adds (Table 3)", "PL+AKD+UTS-1", ">", "PL+AKD", ("MC",), 0.0),
    ("UTS-2 (token selection) adds (Table 3)", "CD-CCA", ">", "PL+AKD+UTS-1", ("MC",), 0.0),
    ("UTS > random tokens at 25 % (Table 4)", "tokens UTS 25%", ">", "tokens random 25%", ("MC",), 0.0),
    ("UTS > random tokens at 50 % (Table 4)", "CD-CCA", ">", "tokens random 50%", ("MC",), 0.0),
    ("UTS > random tokens at 75 % (Table 4)", "tokens UTS 75%", ">", "tokens random 75%", ("MC",), 0.0),
    ("UTS costs <= 0.5 point vs every token (Table 5)", "CD-CCA", "≥", "PL+AKD",
     ("MC", "DA", "CIDEr"), -0.5),
    ("DWC costs <= 0.5 point vs the fp16 delta", "CD-CCA", "≥", "CD-CCA (fp16 full delta)",
     ("MC", "DA", "CIDEr"), -0.5),
]


#: issue 16's bar for a decidable comparison: >= 3 seeds, and the spread over them of a paired difference below this
DECIDABLE = {"MC": 1.0, "DA": 1.0, "CIDEr": 2.0}


def claims(runs: list[dict]) -> list[dict]:
    """Each claim of :data:`CLAIMS` per metric: the paired difference A - B (same seed: same pretraining, same
    rounds), mean ± std over the runs, and whether it holds (:func:`~paramcast.bench.report.verdict`).
    Claims whose rows a run lacks (``--no-ablations``, ``--no-token-study``) are left out."""
    out = []
    for text, a, rel, b, metrics, margin in CLAIMS:
        if a not in runs[0]["results"] or b not in runs[0]["results"]:
            continue
        for k in metrics:
            d = mean_std([r["results"][a]["mean"][k] - r["results"][b]["mean"][k] for r in runs])
            out.append({"claim": text, "metric": k, "A": a, "B": b, "relation": rel, "diff": round(d["mean"], 2),
                        "std": round(d["std"], 2), "seeds": len(runs), "holds": verdict(d["mean"], d["std"], rel, margin),
                        "decidable": len(runs) >= 3 and d["std"] < DECIDABLE[k]})
    return out


def summarise_seeds(runs: list[dict]) -> dict:
    """Per method, over seeds: mean ± std of the round-mean MC / DA / CIDEr and of the *paired* gain over
    source-only in the same seed (same pretraining, same rounds: the comparison that cancels most noise);
    and the transmission ratios."""
    out: dict = {"methods": {}, "communication": {}}
    for name in runs[0]["results"]:
        per = [r["results"][name]["mean"] for r in runs]
        src = [r["results"]["Source-only"]["mean"] for r in runs]
        out["methods"][name] = {k: mean_std([p[k] for p in per]) for k in ("MC", "DA", "BLEU4", "CIDEr")} | {
            f"gain_{k}": mean_std([p[k] - s[k] for p, s in zip(per, src, strict=True)]) for k in ("MC", "DA", "CIDEr")}
    # each paramcast reading against the published method, paired per seed (positive = the reading is higher)
    out["readings"] = {name: {"vs": ref} | {k: mean_std([r["results"][name]["mean"][k] - r["results"][ref]["mean"][k]
                                                         for r in runs]) for k in ("MC", "DA", "CIDEr")}
                       for name, (ref, _) in READINGS.items() if name in runs[0]["results"]}
    for k in ("uplink_ratio", "downlink_ratio", "downlink_ratio_wire"):
        out["communication"][k] = mean_std([r["communication"][k] for r in runs])
    costs = [compression_costs(r["results"]) for r in runs]
    out["costs"] = {link: {k: mean_std([c[link][k] for c in costs]) for k in ("MC", "DA", "CIDEr")}
                    for link in costs[0]}
    out["claims"] = claims(runs)
    return out


def _markdown_seeds(res: dict) -> str:
    S, seeds = res["summary"], res["seeds"]

    def pm(d: dict, digits: int = 2) -> str:
        return f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f}"

    order = [n for n in (*MAIN, *(n for n in S["methods"] if n.startswith("Teacher"))) if n in S["methods"]]
    order += [n for n in S["methods"] if n not in order]
    rows = [{"method": n, **{k: pm(S["methods"][n][k]) for k in ("MC", "DA", "CIDEr")},
             **{f"gain {k}": pm(S["methods"][n][f"gain_{k}"]) for k in ("MC", "DA", "CIDEr")}} for n in order]
    c = S["communication"]
    costs = [{"link": link, **{k: pm(v[k]) for k in ("MC", "DA", "CIDEr")}} for link, v in S["costs"].items()]
    first = _markdown(res["runs"][0]).split("\n", 2)[2]  # without its title line
    return "\n".join([
        f"# CD-CCA benchmark over {len(seeds)} seeds ({', '.join(map(str, seeds))})", "",
        *(["Merged from (`--from-json` given several results):",
           *(f"- seed{'s' * (len(p['seeds']) > 1)} {', '.join(map(str, p['seeds']))}: `{p['command']}`"
             for p in res["parts"]), ""]
          if "parts" in res else []),
        "Each seed redraws the student's source rows, pretraining, UTS and AKD; the dataset and the rounds' "
        "devices are the same. Round-mean accuracy (%) and CIDEr as mean ± std over seeds; `gain` is the "
        "paired difference with source-only in the same seed.", "",
        "## All methods (Tables 1-4, round means)", markdown_table(rows),
        f"Uplink ratio {pm(c['uplink_ratio'], 4)}, downlink ratio {pm(c['downlink_ratio'], 4)} "
        f"(encoded messages {pm(c['downlink_ratio_wire'], 4)}); total {res['seconds']:.0f}s.", "",
        "Points CD-CCA loses to its uncompressed references, paired per seed (positive = lost):",
        markdown_table(costs) if costs else "(no ablation rows)",
        "paramcast's readings of the baselines minus the published method, paired per seed:",
        markdown_table([{"reading": n, "vs": v["vs"], **{k: pm(v[k]) for k in ("MC", "DA", "CIDEr")}}
                        for n, v in S.get("readings", {}).items()]),
        "## The seed's claims, holds / does not hold",
        "Paired difference A - B per seed, mean ± std over seeds (points); `paramcast.bench.report.verdict`: "
        "`>` holds when mean - std > 0, `≥ ... -0.5` (a cost of at most 0.5 point) when mean + std >= -0.5, "
        "`≈` (within ±0.8) when |mean| <= 0.8. `decidable`: at least 3 seeds and a std below 1 point (MC, DA) or "
        "2 (CIDEr), issue 16's bar; where it is not, the verdict rests on noise.", "",
        markdown_table([{"claim": c["claim"], "metric": c["metric"], "A - B": f"{c['diff']:+.2f} ± {c['std']:.2f}",
                         "holds": "holds" if c["holds"] else "does not hold",
                         "decidable": "yes" if c["decidable"] else "no"} for c in S["claims"]]),
        f"# Seed {seeds[0]} in full", "", first])


def _markdown(res: dict) -> str:
    R = res["results"]
    main = [*MAIN, *(n for n in R if n.startswith("Teacher"))]
    src = R["Source-only"]["mean"]
    rows = []
    for name in main:
        r = R[name]
        row = {"method": name}
        for i, rd in enumerate(r["rounds"]):
            row[f"MC r{i + 1}"], row[f"DA r{i + 1}"] = rd["MC"], rd["DA"]
        row |= {"mean MC": r["mean"]["MC"], "mean DA": r["mean"]["DA"],
                "gain MC": r["mean"]["MC"] - src["MC"], "gain DA": r["mean"]["DA"] - src["DA"]}
        rows.append(row)
    cap = [{"method": n, **{f"{m} {p}": R[n]["mean"][f"{m}_{p}"] for p in ("in", "near", "out") for m in ("BLEU4", "CIDEr")},
            "BLEU4 all": R[n]["mean"]["BLEU4"], "CIDEr all": R[n]["mean"]["CIDEr"]} for n in main]
    abl = [{"variant": n, "MC": R[n]["mean"]["MC"], "DA": R[n]["mean"]["DA"], "CIDEr": R[n]["mean"]["CIDEr"]}
           for n in ("Source-only", "PL", "PL+AKD", "PL+AKD+UTS-1", "CD-CCA", "CD-CCA (fp16 full delta)",
                     "CD-CCA (fp16 tokens)") if n in R]
    tok = [{"sampling": n, "MC": R[n]["mean"]["MC"], "DA": R[n]["mean"]["DA"]} for n in R if n.startswith("tokens")]
    c = res["communication"]
    md = ["# CD-CCA benchmark", "", f"Domains: {res['domains']}", "",
          "## VQA on the target stream (Table 1)", markdown_table(rows),
          "## Captioning (Table 2)", markdown_table(cap),
          "## Ablation (Table 3)", markdown_table(abl)]
    if tok:
        md += ["## Token sampling (Table 4; UTS at the default ratio is the CD-CCA row)", markdown_table(tok)]
    md += ["## Transmission per round (Table 5)", markdown_table([
        {"link": "uplink, every token of every sample (fp32)", "params": None, "bytes": c["all_tokens_fp32_bytes"],
         "message bytes": None, "ms GigE": c["transfer_ms_GigE"]["uplink_all"]},
        {"link": "uplink, UTS", "params": None, "bytes": c["uts_up_bytes"], "message bytes": c["cdcca_up_bytes"],
         "ms GigE": c["transfer_ms_GigE"]["uplink_uts"]},
        {"link": "downlink, fp16 full delta", "params": c["trainable_params"], "bytes": c["full_delta_fp16_bytes"],
         "message bytes": c["full_delta_fp16_wire_bytes"], "ms GigE": c["transfer_ms_GigE"]["downlink_fp16"]},
        {"link": "downlink, DWC", "params": c["dwc_down_params"], "bytes": c["dwc_down_bytes"],
         "message bytes": c["cdcca_down_bytes"], "ms GigE": c["transfer_ms_GigE"]["downlink_dwc"]}]),
        "`bytes`: tensor bytes from shapes (what the seed's Table 5 counts); `message bytes`: the whole encoded "
        "wire message, safetensors header and metadata included.",
        f"Uplink ratio {c['uplink_ratio']:.4f}, downlink ratio {c['downlink_ratio']:.4f} "
        f"(encoded messages: {c['downlink_ratio_wire']:.4f}); "
        f"total {res['seconds']:.0f}s (pretraining {res['pretrain_seconds']:.0f}s).", ""]
    costs = compression_costs(R)
    if costs:
        md += ["Points CD-CCA loses to its uncompressed references (positive = lost):",
               markdown_table([{"link": link, **v} for link, v in costs.items()])]
    return "\n".join(md)


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name in MAIN:
        rds = res["results"][name]["rounds"]
        for ax, key in zip(axes, ("MC", "DA"), strict=True):
            ax.plot(range(1, len(rds) + 1), [r[key] for r in rds], marker="o", label=name)
            ax.set(title=f"{key} accuracy per round", xlabel="round", ylabel="%")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bench_cdcca(preset: str = "quick", source: str | None = None, rounds: int = 3, round_rows: int = 0,
                seed: int = 0, seeds: int = 1, epochs: int = 12, ablations: bool = True, token_study: bool = True,
                teacher_devices: int = 0, device: str | None = None, out: Path = Path("runs/cdcca/cdcca"),
                pair: str = "scratch", teacher_all_categories: bool = False) -> dict:
    """Entry point of ``paramcast bench cdcca``: run seeds ``seed .. seed + seeds - 1``, then write JSON,
    Markdown and a PNG (the first seed's rounds). With several seeds the JSON holds every run and a
    ``summary`` (mean ± std, paired gains over source-only)."""
    if seeds < 1:
        raise ValueError(f"seeds={seeds}: run at least one")
    t0 = time.perf_counter()
    runs, ds = [], None
    for s in range(seed, seed + seeds):
        cfg = CDCCABenchConfig(preset=preset, data_source=source, rounds=rounds, round_rows=round_rows, seed=s,
                               pretrain=PretrainConfig(teacher_epochs=epochs, student_epochs=epochs, seed=s),
                               ablations=ablations, token_study=token_study, teacher_devices=teacher_devices,
                               teacher_all_categories=teacher_all_categories, device=device, pair=pair)
        ds = _load(cfg) if ds is None else ds  # one dataset for every seed (data_seed is fixed)
        runs.append(run_cdcca(cfg, ds=ds))
        # after every seed: a run stopped later keeps the seeds it finished (the JSON lists them)
        if seeds == 1:
            res, md = runs[0], _markdown(runs[0])
        else:
            res = {"seeds": list(range(seed, seed + len(runs))), "summary": summarise_seeds(runs), "runs": runs,
                   "seconds": time.perf_counter() - t0}
            md = _markdown_seeds(res)
        paths = write_result(res, Path(out), md)
    _plot(runs[0], Path(out).with_suffix(".png"))
    return {k: str(v) for k, v in paths.items()}


#: what every merged run must share (everything of the protocol but the seed)
_SAME = ("preset", "data_source", "data_seed", "rounds", "round_rows", "ablations", "token_study", "teacher_devices",
         "teacher_all_categories", "pair")


def _unseeded(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != "seed"}


def rerender(paths: Path | list[Path], out: Path) -> dict:
    """Write committed results (``bench_cdcca``'s JSON) at ``out`` with the current summary and report, no
    training. One path: the JSON keeps the command and machine that measured it. Several: their runs are
    merged into one result over every seed they hold (e.g. seed 0 measured in one session, seeds 1-2 in the
    next), refused when a seed repeats or the protocol differs; ``parts`` keeps each file's command and
    seeds, and the Markdown lists them."""
    import json

    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    loaded = [json.loads(p.read_text()) for p in paths]
    if len(loaded) == 1:
        res = loaded[0]
        if "runs" not in res:
            return {k: str(v) for k, v in write_result(res, Path(out), _markdown(res)).items()}
    else:
        runs, parts = [], []
        for p, r in zip(paths, loaded, strict=True):
            mine = r.get("runs", [r])
            runs += mine
            parts.append({"path": str(p), "command": r["command"], "seeds": [x["config"]["seed"] for x in mine]})
        runs.sort(key=lambda r: r["config"]["seed"])
        seeds = [r["config"]["seed"] for r in runs]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {seeds}: a seed appears in more than one result")
        for r in runs[1:]:
            diff = [k for k in _SAME if r["config"].get(k) != runs[0]["config"].get(k)]
            diff += ["pretrain"] * (_unseeded(r["config"]["pretrain"]) != _unseeded(runs[0]["config"]["pretrain"]))
            if diff or set(r["results"]) != set(runs[0]["results"]):
                raise ValueError(f"seed {r['config']['seed']} differs from seed {seeds[0]} in "
                                 f"{diff or 'its methods'}: not one protocol")
        # the command is this merge's (write_result records it); how each run was measured is in parts
        res = {"seeds": seeds, "runs": runs, "parts": parts, "seconds": sum(r["seconds"] for r in runs)}
    res["summary"] = summarise_seeds(res["runs"])
    return {k: str(v) for k, v in write_result(res, Path(out), _markdown_seeds(res)).items()}


def domains(cfg: CDCCABenchConfig, ds=None) -> tuple[ClipSet, ClipSet, list[ClipSet], object]:
    """The protocol's data without pretraining: teacher's and student's source rows, each round's rows,
    the dataset (what ``paramcast train`` trains an MLLM method on and streams to devices)."""
    ds = _load(cfg) if ds is None else ds
    teacher_source, source, rounds, _ = _domains(ds, cfg)
    return teacher_source, source, [rows for rows, _ in rounds], ds
