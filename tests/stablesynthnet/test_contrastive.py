import math

import pytest
import torch

from paramcast.losses.contrastive import margin_info_nce, per_label_variance


def _hand(emb, labels, m, T):
    """Eq. 5-6 written out with Python loops and math."""
    z = [e / e.norm() for e in emb]
    out = []
    for i in range(len(z)):
        f_pos = f_neg = 0.0
        for j in range(len(z)):
            if j == i:
                continue
            c = float(z[i] @ z[j])
            if labels[j] == labels[i]:
                f_pos += math.exp(math.cos(math.acos(c) + m) / T)
            else:
                f_neg += math.exp(c / T)
        out.append(-math.log(f_pos / (f_pos + f_neg)) if f_pos > 0 else None)
    return out


def test_margin_info_nce_equals_hand_computation():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(6, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    losses, valid = margin_info_nce(emb, labels, margin=0.3, temperature=0.5, eps=1e-12)
    hand = _hand(emb, labels.tolist(), 0.3, 0.5)
    assert valid.tolist() == [h is not None for h in hand]
    for got, want in zip(losses.tolist(), hand, strict=True):
        if want is not None:
            assert got == pytest.approx(want, rel=1e-9)
    assert losses[5] == 0  # label 2 has no positive


def test_margin_makes_the_loss_larger_and_unlabelled_rows_are_in_no_set():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(5, 3, generator=g)
    labels = torch.tensor([0, 0, 1, 1, -1])
    l0, _ = margin_info_nce(emb, labels, margin=0.0, temperature=0.2)
    l1, valid = margin_info_nce(emb, labels, margin=0.3, temperature=0.2)
    assert not valid[4] and bool((l1[:4] > l0[:4]).all())
    # Dropping the unlabelled row changes nothing for the others.
    l2, _ = margin_info_nce(emb[:4], labels[:4], margin=0.3, temperature=0.2)
    torch.testing.assert_close(l1[:4], l2)


def test_per_label_variance():
    losses = torch.tensor([1.0, 3.0, 2.0, 2.0, 6.0, 9.0])
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    valid = torch.tensor([True, True, True, True, True, False])
    var = per_label_variance(losses, labels, valid)
    v1 = torch.tensor([2.0, 2.0, 6.0]).var(unbiased=False)
    torch.testing.assert_close(var, torch.stack([torch.tensor(1.0), torch.tensor(1.0), v1, v1, v1, torch.tensor(0.0)]))
