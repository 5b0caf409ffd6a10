import math

import pytest
import torch

from paramcast.bench.flops import count_flops
from paramcast.bench.metrics import (
    accuracy,
    accuracy_report,
    per_device_accuracy,
)
from paramcast.bench.videoqa import VideoQABenchConfig

IGN = -1


def test_accuracy_filtered_and_unfiltered_hand_checked():
    pred = torch.tensor([0, 1, 2, 3, 4, 5])
    answer = torch.tensor([0, 1, IGN, 0, IGN, 5])
    assert accuracy(pred, answer, filtered=True) == pytest.approx(3 / 4)     # IGNORE rows dropped
    assert accuracy(pred, answer, filtered=False) == pytest.approx(3 / 6)    # IGNORE rows count as wrong
    assert math.isnan(accuracy(pred[:0], answer[:0]))


def test_per_device_and_worst_device_hand_checked():
    pred = torch.tensor([0, 1, 2, 3, 4, 5])
    answer = torch.tensor([0, 9, 2, 3, IGN, 9])
    device = torch.tensor([0, 0, 1, 1, 2, 2])
    per = per_device_accuracy(pred, answer, device)
    assert per[0] == pytest.approx(0.5) and per[1] == pytest.approx(1.0) and per[2] == pytest.approx(0.0)
    rep = accuracy_report(pred, answer, device)
    assert rep["worst_device"] == pytest.approx(0.0)
    assert rep["filtered"] == pytest.approx(3 / 5) and rep["unfiltered"] == pytest.approx(3 / 6)
    assert rep["rows"] == 6 and rep["rows_in_vocab"] == 5


def test_flops_of_a_matmul():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    assert count_flops(torch.mm, a, b) == 2 * 4 * 8 * 3


def test_config_validation_lists_every_problem():
    with pytest.raises(ValueError) as exc:
        VideoQABenchConfig(preset="huge", methods=["nope"], k=0, profiles=["6G"])
    msg = str(exc.value)
    assert "preset" in msg and "nope" in msg and "k=0" in msg and "6G" in msg
