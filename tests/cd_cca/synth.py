"""A tiny synthetic ClipSet (random frames, consistent vocab) for CD-CCA unit tests."""

from __future__ import annotations

import torch

from paramcast.data.base import ClipSet, Vocab


def synth_vocab(n_words: int = 20, n_answers: int = 6) -> Vocab:
    words = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"] + [f"w{i}" for i in range(n_words - 4)]
    return Vocab(words=words, answers=[f"a{i}" for i in range(n_answers)], devices=["d0", "d1"],
                 categories=["c0", "c1", "c2"], qtypes=["q0"])


def synth_clips(n: int = 12, vocab: Vocab | None = None, seed: int = 0, size: int = 64) -> ClipSet:
    vocab = vocab or synth_vocab()
    g = torch.Generator().manual_seed(seed)
    W, A = len(vocab.words), len(vocab.answers)
    question = torch.randint(4, W, (n, 6), generator=g)
    question[:, 0] = 1
    question[: n // 2, 4:] = 0
    caption = torch.randint(4, W, (n, 7), generator=g)
    caption[:, 0] = 1
    caption[:, 5:] = 0
    answer = torch.randint(0, A, (n,), generator=g)
    cand = torch.stack([torch.randperm(A, generator=g)[:5] for _ in range(n)])
    label = torch.randint(0, 5, (n,), generator=g)
    cand[torch.arange(n), label] = answer
    for i in range(n):  # the true answer once only
        others = [a for a in range(A) if a != int(answer[i])][:4]
        row = torch.tensor(others[:int(label[i])] + [int(answer[i])] + others[int(label[i]):])
        cand[i] = row
    return ClipSet(frames=torch.randint(0, 256, (n, 4, size, size, 3), generator=g, dtype=torch.uint8),
                   question=question, answer=answer, answer_text=[vocab.answers[a] for a in answer.tolist()],
                   candidates=cand, mc_label=label, caption=caption, device=torch.zeros(n, dtype=torch.long),
                   category=torch.randint(0, 3, (n,), generator=g), qtype=torch.zeros(n, dtype=torch.long),
                   clip_id=torch.arange(n))
