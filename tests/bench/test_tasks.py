"""Issue 6 tasks: retrieval recall and MC scoring checked by hand; one tiny end-to-end run per command."""

import json
import math

import pytest
import torch

from paramcast.bench.metrics import mc_scores, retrieval_ranks, retrieval_recall


def test_retrieval_recall_hand_checked_both_directions():
    # rows = videos, columns = captions; the diagonal is each video's own caption
    sim = torch.tensor([[0.9, 0.1, 0.3],
                        [0.8, 0.2, 0.7],
                        [0.5, 0.6, 0.4]])
    pos = torch.eye(3, dtype=torch.bool)
    # video -> text: v0 rank 1; v1: 0.8 and 0.7 ahead -> 3; v2: 0.5 and 0.6 ahead -> 3
    assert retrieval_ranks(sim, pos).tolist() == [1, 3, 3]
    assert retrieval_recall(sim, pos, (1, 2, 3)) == {1: pytest.approx(1 / 3), 2: pytest.approx(1 / 3), 3: 1.0}
    # text -> video (transpose): t0 column (0.9, 0.8, 0.5) -> 1; t1 (0.1, 0.2, 0.6): 0.6 ahead -> 2;
    # t2 (0.3, 0.7, 0.4): 0.7 ahead -> 2
    assert retrieval_ranks(sim.T, pos.T).tolist() == [1, 2, 2]
    assert retrieval_recall(sim.T, pos.T, (1, 2)) == {1: pytest.approx(1 / 3), 2: 1.0}


def test_retrieval_ties_are_pessimistic_and_duplicates_count_as_correct():
    sim = torch.tensor([[0.5, 0.5, 0.2],     # tie with a negative: the negative goes first -> rank 2
                        [0.3, 0.3, 0.3],     # all equal: both negatives ahead -> rank 3
                        [0.1, 0.9, 0.9]])    # columns 1 and 2 are the same caption: best positive 0.9 -> rank 1
    pos = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 1]], dtype=torch.bool)
    assert retrieval_ranks(sim, pos).tolist() == [2, 3, 1]
    rec = retrieval_recall(sim, pos, (1, 2, 3))
    assert rec[1] == pytest.approx(1 / 3) and rec[2] == pytest.approx(2 / 3) and rec[3] == 1.0
    # the rule does not depend on the gallery order
    perm = torch.tensor([2, 0, 1])
    assert retrieval_ranks(sim[:, perm], pos[:, perm]).tolist() == [2, 3, 1]
    # a query without any positive is never retrieved
    assert retrieval_ranks(sim[:1], torch.zeros(1, 3, dtype=torch.bool)).tolist() == [4]


def test_mc_scores_shape_and_argmax():
    # 2 questions x 5 candidates, pair logits (no, yes): score = yes - no
    logits = torch.zeros(10, 2)
    logits[3, 1] = 2.0          # question 0: candidate 3
    logits[5, 0] = -1.0         # question 1: candidate 0 (score +1) ...
    logits[9, 1] = 0.5          # ... beats candidate 4 (score 0.5)
    s = mc_scores(logits)
    assert s.shape == (2, 5)
    assert s.argmax(-1).tolist() == [3, 0]
    assert mc_scores(logits[:, 1:]).argmax(-1).tolist() == [3, 4]       # one-logit heads used as is
    with pytest.raises(ValueError):
        mc_scores(torch.zeros(7, 2))


def test_mc_tokens_join_question_sep_candidate():
    from paramcast.bench.mcqa import mc_tokens
    from paramcast.data.base import Vocab

    vocab = Vocab(words=["[PAD]", "[CLS]", "[SEP]", "[UNK]", "is", "red", "yes", "no"], answers=["yes", "no"],
                  devices=[], categories=[], qtypes=[], mc_answers=["yes", "no", "red thing"])
    tok = mc_tokens(torch.tensor([[1, 4, 5, 0]]), torch.tensor([[0, 2]]), vocab)
    assert tok.tolist() == [[[1, 4, 5, 2, 6, 0], [1, 4, 5, 2, 5, 3]]]
    tok = mc_tokens(torch.tensor([[1, 4, 5, 0]]), torch.tensor([[0, 2]]), vocab, candidate_first=True)
    assert tok.tolist() == [[[1, 6, 2, 4, 5, 0], [1, 5, 3, 2, 4, 5]]]
    # the candidates' words the word list lacks get ids after it instead of [UNK]
    from paramcast.bench.mcqa import candidate_words

    assert candidate_words(vocab) == ["thing"]
    tok = mc_tokens(torch.tensor([[1, 4, 5, 0]]), torch.tensor([[0, 2]]), vocab, candidate_first=True,
                    words=[*vocab.words, *candidate_words(vocab)])
    assert tok.tolist() == [[[1, 6, 2, 4, 5, 0], [1, 5, 8, 2, 4, 5]]]


def test_mcqa_pair_inputs_are_a_view_over_distinct_clips_not_a_copy_per_row(tmp_path):
    """6 questions per clip x 5 candidates: the pairs' frames / stem hold each clip's 3 frames once."""
    import numpy as np

    from paramcast.bench.mcqa import pair_set
    from paramcast.data.base import ClipSet
    from paramcast.data.store import ClipView, NpyWriter, open_npy

    U, per_clip, T, K = 4, 6, 8, 5
    rng = np.random.default_rng(0)
    with NpyWriter(tmp_path / "c.npy", (U, T, 6, 6, 3), np.uint8) as w:
        w.write(0, rng.integers(0, 255, (U, T, 6, 6, 3), dtype=np.uint8))
    store, mapping = open_npy(tmp_path / "c.npy")
    clip_row = torch.arange(U).repeat_interleave(per_clip)                     # (24,) rows -> clip
    N = len(clip_row)
    clips = ClipSet(frames=ClipView(store, clip_row, mapping), question=torch.ones(N, 3, dtype=torch.long),
                    answer=torch.zeros(N, dtype=torch.long), answer_text=[""] * N,
                    candidates=torch.zeros(N, K, dtype=torch.long), mc_label=torch.arange(N) % K,
                    caption=torch.ones(N, 2, dtype=torch.long), device=clip_row.clone(),
                    category=torch.zeros(N, dtype=torch.long), qtype=torch.zeros(N, dtype=torch.long),
                    clip_id=clip_row.clone(), meta={})
    stem = ClipView(torch.randn(U, T, 2, 3, 3).half(), clip_row)
    fi = torch.tensor([0, 4, 7])
    rows = torch.tensor([1, 2, 3, 7, 8, 20])                                   # clips 0, 1, 3
    fs = pair_set(torch.randn(N, K, 3, 4), clips, torch.ones(N, K, 6, dtype=torch.long), rows, keep_raw=True,
                  stem=stem, frame_index=fi)
    assert isinstance(fs.frames, ClipView) and isinstance(fs.tokens, ClipView)
    assert fs.frames.shape == (len(rows) * K, 3, 6, 6, 3) and fs.tokens.shape == (len(rows) * K, 3, 2, 3, 3)
    one_clip = 3 * 6 * 6 * 3
    assert fs.frames.store.shape[0] == 3                                        # distinct clips, not 6 rows x 5 pairs
    assert fs.frames.store.untyped_storage().nbytes() == 3 * one_clip
    assert fs.tokens.store.untyped_storage().nbytes() == 3 * 3 * 2 * 3 * 3 * 2
    # the same bytes as the per-pair copy the benchmark used to build
    assert torch.equal(fs.frames[:], store[clip_row[rows]][:, fi].repeat_interleave(K, 0))
    assert torch.equal(fs.tokens[:], stem.store[clip_row[rows]][:, fi].repeat_interleave(K, 0))
    assert fs.answer.tolist() == [int(k == mc) for mc in clips.mc_label[rows].tolist() for k in range(K)]
    assert torch.equal(clips.frames[rows, fi], store[clip_row[rows]][:, fi])   # rows read first, then frames


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from paramcast.bench.videoqa import VideoQABenchConfig

    root = tmp_path_factory.mktemp("tasks")

    def cfg(methods):
        return VideoQABenchConfig(preset="tiny", source="shapes", methods=methods, k=4, epochs=1, adr_epochs=1,
                                  adapt_steps=1, pretrain_epochs=1, pretrain_max_rows=200, timing_repeats=1,
                                  data_root=str(root / "data"), cache_root=str(root / "cache"), device="cpu",
                                  progress=False)
    return cfg


def _finite(x):
    return isinstance(x, float) and not math.isnan(x) and 0.0 <= x <= 1.0


def test_mcqa_tiny_end_to_end(tiny, tmp_path):
    from paramcast.bench import mcqa
    from paramcast.bench.report import write_result

    result = mcqa.run_mcqa(tiny(list(mcqa.MC_METHODS)))
    json.dumps(result)
    assert set(result["methods"]) == set(mcqa.MC_METHODS)
    for r in result["methods"].values():
        assert _finite(r["accuracy"]["new"]["filtered"]) and _finite(r["accuracy"]["unseen"]["filtered"])
    ours = result["methods"]["cdc-mmpg"]
    assert ours["bytes_up"] == 192 * 4 and ours["bytes_down"] == (96 + 1) * 2 * 4      # a Linear(96, 2) pair head
    paths = write_result(result, tmp_path / "mc", mcqa.markdown(result))
    assert paths["markdown"].read_text().count("|") > 10
    assert mcqa.plot(result, tmp_path / "mc.png").stat().st_size > 0


def test_retrieval_tiny_end_to_end(tiny, tmp_path):
    from paramcast.bench import retrieval

    result = retrieval.run_retrieval(tiny(list(retrieval.RETRIEVAL_METHODS)))
    json.dumps(result)
    for name, r in result["methods"].items():
        for split in ("new", "unseen"):
            m = r["splits"][split]
            for d in ("VR", "TR"):
                assert m[f"{d}@1"] <= m[f"{d}@5"] <= m[f"{d}@10"], name
                assert _finite(m[f"{d}@10"])
    assert result["methods"]["cdc-mmpg"]["splits"]["new"]["bytes_down"] == (96 + 1) * retrieval.EMBED_DIM * 4
    # the device-side baselines adapt on the device (Fine-tuning re-encodes with its tuned encoder copy)
    assert result["methods"]["fine-tuning"]["splits"]["new"]["adapt_ms"] > 0
    assert result["methods"]["f-linear"]["splits"]["new"]["adapt_ms"] > 0
    assert retrieval.plot(result, tmp_path / "r.png").stat().st_size > 0
    assert "VR@1" in retrieval.markdown(result)


def test_frames_tiny_end_to_end(tiny, tmp_path):
    from paramcast.bench import frames

    # (fine-tuning, the other default, re-encodes every clip: left to the quick-preset run to keep this fast)
    result = frames.run_frames(tiny(["cdc-mmpg", "f-hyper"]), frames=(2, 5))
    json.dumps(result)
    assert [(r["method"], r["D"]) for r in result["rows"]] == [("cdc-mmpg", 2), ("cdc-mmpg", 5),
                                                               ("f-hyper", 2), ("f-hyper", 5)]
    for r in result["rows"]:
        assert _finite(r["new"]) and r["cloud_s_per_epoch"] > 0
    assert frames.plot(result, tmp_path / "f.png").stat().st_size > 0


def test_mc_finetune_trains_a_copy_keeps_frozen_parts_and_caches(tiny):
    from paramcast.baselines.duet import frame_index
    from paramcast.bench.mcqa import mc_finetune, mc_tokens
    from paramcast.bench.videoqa import prepare

    cfg = tiny(["source-only"])
    prep = prepare(cfg)
    ds = prep.dataset
    rows = torch.arange(40)
    tokens = mc_tokens(ds.history.question[rows], ds.history.candidates[rows], ds.vocab, candidate_first=True)
    stem = prep.features["history"].tokens
    fi = frame_index(ds.history.frames.shape[1], 3)
    before = {k: v.clone() for k, v in prep.encoder.state_dict().items()}
    enc, log = mc_finetune(prep.encoder, stem[rows], tokens, ds.history.mc_label[rows], fi, epochs=1,
                           key="t", root=cfg.cache_root)
    assert not log["cached"] and log["rows"] == 40
    after = enc.state_dict()
    assert all(torch.equal(v, prep.encoder.state_dict()[k]) for k, v in before.items())   # shared encoder untouched
    assert any(not torch.equal(v, after[k]) for k, v in before.items())                     # the copy trained
    frozen = [k for k in before if k.startswith("text.embeddings")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)                 # MiniLM stays frozen
    assert not any(p.requires_grad for p in enc.parameters())
    again, log2 = mc_finetune(prep.encoder, stem[rows], tokens, ds.history.mc_label[rows], fi, epochs=1,
                              key="t", root=cfg.cache_root)
    assert log2["cached"] and all(torch.equal(v, again.state_dict()[k]) for k, v in after.items())


def test_retrieval_refuses_a_k_that_leaves_no_gallery(tiny):
    import dataclasses

    from paramcast.bench import retrieval

    with pytest.raises(ValueError, match="leaves no gallery"):          # was an IndexError after every fit
        retrieval.run_retrieval(dataclasses.replace(tiny(["source-only"]), k=16))


def test_environment_records_the_cpu(monkeypatch, tmp_path):
    """A result says which CPU measured it and whether bf16 runs natively there (read from /proc/cpuinfo)."""
    from paramcast.bench import report

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse avx2 amx_bf16 avx512f\n")
    from paramcast.methods.cdc_mmpg import serving

    monkeypatch.setattr(serving, "CPUINFO", info)
    monkeypatch.setattr(report.platform, "processor", lambda: "")
    env = report.environment()
    assert env["cpu"] == "Test CPU 9000" and env["cpu_bf16"] == ["amx_bf16"]
    assert env["cpu_capability"] == report.torch.backends.cpu.get_cpu_capability()
