"""End to end on the `tiny` EmojiClips preset (builds the data, pretrains a small encoder; ~12 s)."""

import json

import pytest

from paramcast.bench.videoqa import METHODS, VideoQABenchConfig, result_rows, run_videoqa


def test_variants_are_extra_rows_of_a_registered_method():
    cfg = VideoQABenchConfig(methods=["cdc-mmpg"], variants={"ours": {"method": "cdc-mmpg", "residual": True}})
    assert result_rows(cfg) == [("cdc-mmpg", "cdc-mmpg", {}), ("ours", "cdc-mmpg", {"residual": True})]
    with pytest.raises(ValueError, match="needs 'method'"):
        VideoQABenchConfig(methods=["cdc-mmpg"], variants={"x": {"residual": True}})
    with pytest.raises(ValueError, match="name of a method"):
        VideoQABenchConfig(methods=["cdc-mmpg"], variants={"cdc-mmpg": {"method": "cdc-mmpg"}})


def test_run_videoqa_tiny_end_to_end(tmp_path):
    cfg = VideoQABenchConfig(preset="tiny", source="shapes", methods=[*METHODS, "duet", "stablesynthnet"], k=4, epochs=2, adr_epochs=1,
                             variants={"cdc-mmpg residual": {"method": "cdc-mmpg", "residual": True}},
                             adapt_steps=2, pretrain_epochs=1, pretrain_max_rows=200, timing_repeats=2,
                             data_root=str(tmp_path / "data"), cache_root=str(tmp_path / "cache"), device="cpu",
                             progress=False)
    result = run_videoqa(cfg)
    json.dumps(result)  # JSON-able
    assert set(result["methods"]) == {*METHODS, "duet", "stablesynthnet", "cdc-mmpg residual"}
    assert result["methods"]["cdc-mmpg residual"]["config"]["residual"] is True
    assert result["methods"]["cdc-mmpg"]["config"]["residual"] is False      # the seed-literal default
    assert result["methods"]["cdc-mmpg residual"]["c_params"] > result["methods"]["cdc-mmpg"]["c_params"]
    ours = result["methods"]["cdc-mmpg"]
    V = result["dataset"]["num_answers"]
    assert ours["bytes_up"] == 192 * 4 and ours["bytes_down"] == (96 + 1) * V * 4
    assert ours["cloud_flops"] > 0 and ours["c_params"] > 0
    for r in result["methods"].values():
        for split in ("new", "unseen"):
            assert 0.0 <= r["accuracy"][split]["filtered"] <= 1.0
    assert result["methods"]["fine-tuning"]["adapt_ms"] > 0
    # every generated-head method is also evaluated with its downlink quantised
    dl = ours["downlink"]
    assert set(dl) == {"fp16", "int8", "nf4"} and "downlink" not in result["methods"]["source-only"]
    assert dl["fp16"]["tensor_bytes"] * 2 == ours["bytes_down"]
    assert dl["int8"]["smaller_than_fp32"] > 3.5 and dl["nf4"]["smaller_than_fp32"] > 6
    assert abs(dl["fp16"]["drop_points"]["new"]) < 1.0  # fp16 rounding hardly moves a prediction
    assert not any(r["fit_cached"] for r in result["methods"].values())
    # the second run reuses the cached encoder, features and fitted methods, and gets the same numbers
    again = run_videoqa(cfg)
    assert again["encoder"]["pretrain"]["cached"] is True
    for name, r in again["methods"].items():
        assert r["fit_cached"] and r["fit_s"] == result["methods"][name]["fit_s"]
        assert r["accuracy"] == result["methods"][name]["accuracy"], name
