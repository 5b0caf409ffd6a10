"""Answer vocabulary (top-V, All-in-One), IGNORE, filtered vs unfiltered accuracy, VQA soft score: hand cases."""

from __future__ import annotations

import pytest
import torch

from paramcast.bench.metrics import accuracy
from paramcast.data.base import IGNORE
from paramcast.data.formats import build_answer_vocab, build_word_vocab, tokenize, vqa_score
from paramcast.data.formats._common import SPECIALS, answer_ids, encode_text


def test_top_v_answers_most_frequent_first_ties_first_seen():
    train = ["dog", "man", "dog", "cat", "man", "dog", "two", "cat"]
    assert build_answer_vocab(train, 3) == ["dog", "man", "cat"]          # man and cat tie at 2: man seen first
    vocab = build_answer_vocab(train, 2)
    assert answer_ids(["man", "cat", "dog", "bird"], vocab).tolist() == [1, IGNORE, 0, IGNORE]


def test_filtered_and_unfiltered_accuracy():
    """The two rules on real-dataset labels, through the one implementation in bench.metrics."""
    answer = torch.tensor([0, 1, IGNORE, 2, IGNORE])
    pred = torch.tensor([0, 2, 0, 2, 1])                      # 2 right among the 3 in-vocabulary rows
    assert accuracy(pred, answer, filtered=True) == pytest.approx(2 / 3)
    assert accuracy(pred, answer, filtered=False) == pytest.approx(2 / 5)   # IGNORE rows count as wrong


def test_vqa_soft_score_official_leave_one_out():
    ten = ["red"] * 3 + ["blue"] * 7
    # drop a "red" annotator (3 of 10 subsets): 2 matches -> 2/3; drop a "blue" one (7 subsets): 3 -> 1
    assert vqa_score("red", ten) == pytest.approx((3 * 2 / 3 + 7 * 1) / 10)
    assert vqa_score("Blue ", ten) == pytest.approx(1.0)
    assert vqa_score("green", ten) == 0.0


def test_word_vocab_and_encoding():
    assert tokenize("What's the man doing?") == ["what", "'", "s", "the", "man", "doing", "?"]
    words = build_word_vocab(["the man runs", "the dog runs", "the man"], max_words=6)
    assert words[:4] == list(SPECIALS) and words[4:] == ["the", "man"]
    ids = encode_text(["the man jumps", "the the the the the"], words, 5)
    assert ids.tolist() == [[1, 4, 5, 3, 2], [1, 4, 4, 4, 2]]  # [CLS] ... [UNK] [SEP]; truncated keeps [SEP]
