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


def test_retrieval_refuses_a_k_that_leaves_no_gallery(tiny):
    import dataclasses

    from paramcast.bench import retrieval

    with pytest.raises(ValueError, match="leaves no gallery"):          # was an IndexError after every fit
        retrieval.run_retrieval(dataclasses.replace(tiny(["source-only"]), k=16))
