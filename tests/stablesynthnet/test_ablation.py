import pytest

from paramcast.bench.stablesynthnet_ablation import READINGS, VARIANTS, _paired, markdown, run_ablation


def test_variants_switch_one_component_each():
    assert VARIANTS["full"] == {}
    assert {k: v for k, v in VARIANTS.items() if k.startswith("no-")} == {
        "no-dct": {"use_dct": False}, "no-ods": {"use_ods": False}, "no-tde": {"use_tde": False}}


def test_unknown_variant_and_empty_seeds_fail_before_any_work():
    with pytest.raises(ValueError, match="unknown ablation variants"):
        run_ablation("quick", variants=["no-everything"])
    with pytest.raises(ValueError, match="seeds is empty"):
        run_ablation("quick", seeds=())


def test_markdown_shows_mean_and_std():
    row = {"method": "stablesynthnet", "new": {"mean": 0.5, "std": 0.01}, "unseen": {"mean": 0.4, "std": 0.02},
           "cloud_flops": 10, "bytes_up": 768, "bytes_down": 100}
    md = markdown({"preset": "quick", "seeds": [0, 1], "epochs": 2, "k": 16, "rows": {"full": row}})
    assert "0.500 ± 0.010" in md and "0.400 ± 0.020" in md


def test_readings_change_one_choice_against_a_default_row_and_are_paired_per_seed():
    assert READINGS["cdc-mmpg eq17-anchor"] == ("cdc-mmpg", {"lam_on": "anchor"})
    assert READINGS["residual"] == ("stablesynthnet", {"residual": True})
    with pytest.raises(ValueError, match="unknown readings"):
        run_ablation("quick", readings=["nope"])

    def row(method, overrides, new):
        return {"method": method, "overrides": overrides, "runs": [{"new": n, "unseen": 0.1} for n in new]}

    rows = {"cdc-mmpg": row("cdc-mmpg", {}, [0.30, 0.20]),
            "cdc-mmpg residual": row("cdc-mmpg", {"residual": True}, [0.35, 0.21]),
            "f-hyper residual": row("f-hyper", {"residual": True}, [0.1, 0.1])}
    _paired(rows)
    assert rows["cdc-mmpg residual"]["vs"] == "cdc-mmpg"
    assert rows["cdc-mmpg residual"]["paired_new"]["mean"] == pytest.approx(0.03)       # (0.05 + 0.01) / 2
    assert rows["cdc-mmpg residual"]["paired_unseen"]["mean"] == pytest.approx(0.0)
    assert "vs" not in rows["cdc-mmpg"] and "vs" not in rows["f-hyper residual"]       # no default row to pair
