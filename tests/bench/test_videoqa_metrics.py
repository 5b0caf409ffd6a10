import math

import pytest
import torch

from paramcast.bench.flops import count_flops
from paramcast.bench.metrics import (
    accuracy,
    accuracy_report,
    head_payload_bytes,
    per_device_accuracy,
    upload_payload_bytes,
)
from paramcast.bench.netsim import PAPER_PROFILES, transfer_ms
from paramcast.bench.videoqa import VideoQABenchConfig, paper_payloads

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


def test_payload_formula_and_paper_table():
    assert upload_payload_bytes(192) == 768                      # 0.75 KB
    assert head_payload_bytes(1500, 96) == 97 * 1500 * 4
    p = paper_payloads()
    assert p["upload_kb"] == 0.75
    kb = {k: v["download_kb"] for k, v in p["datasets"].items()}
    assert round(kb["MSRVTT"], 1) == 568.4
    assert round(kb["MSVD"], 1) == 378.9
    assert round(kb["TGIF"], 1) == 583.5 and math.ceil(kb["TGIF"] * 10) / 10 == 583.6
    # the seed's Table 6 delays (ms): 568.5 KB at 100 MB/s = 5.55 ms, etc.
    d = p["datasets"]
    assert round(d["MSRVTT"]["download_ms"]["5G-100"], 2) == 5.55
    assert round(d["MSRVTT"]["download_ms"]["4G-5"]) == 111
    assert round(d["TGIF"]["download_ms"]["5G-100"], 2) == 5.70
    assert round(d["MSVD"]["seed_delay_ms"]["5G-100"], 2) == 3.71
    assert round(d["MSVD"]["download_ms"]["4G-15"], 1) == 24.7
    assert round(transfer_ms(768, 0, PAPER_PROFILES["5G-100"]), 3) == 0.007


def test_flops_of_a_matmul():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    assert count_flops(torch.mm, a, b) == 2 * 4 * 8 * 3


def test_config_validation_lists_every_problem():
    with pytest.raises(ValueError) as exc:
        VideoQABenchConfig(preset="huge", methods=["nope"], k=0, profiles=["6G"])
    msg = str(exc.value)
    assert "preset" in msg and "nope" in msg and "k=0" in msg and "6G" in msg
