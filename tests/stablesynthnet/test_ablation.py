import pytest

from paramcast.methods.stablesynthnet.ablation import VARIANTS, markdown, run_ablation


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
