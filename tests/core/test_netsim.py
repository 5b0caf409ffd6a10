import pytest

from paramcast.bench.netsim import MB, PAPER_PROFILES, Profile, transfer_ms


def test_seed_example_568kb_at_100mbs_is_5_55ms():
    # docs/design.md: 568.5 KB at 100 MB/s = 5.55 ms with 1 MB = 1024² B.
    assert transfer_ms(0, int(568.5 * 1024), PAPER_PROFILES["5G-100"]) == pytest.approx(5.55, abs=0.005)


def test_rtt_is_added_once():
    p = Profile("x", 1.0, rtt_ms=20)
    assert transfer_ms(MB // 2, MB // 2, p) == pytest.approx(1020.0)
    assert transfer_ms(MB, 0, p, rtt_ms=0) == pytest.approx(1000.0)


def test_profile_rejects_bad_values():
    with pytest.raises(ValueError, match="bandwidth"):
        Profile("bad", 0)
    with pytest.raises(ValueError, match="rtt"):
        Profile("bad", 1, rtt_ms=-1)


# CDC-MMPG Table 6 as printed (KB, then ms at 5 / 15 / 50 / 100 MB/s).
SEED_TABLE6 = {
    ("MSRVTT-QA", "up"): (0.75, 0.15, 0.05, 0.01, 0.007),
    ("MSRVTT-QA", "down"): (568.5, 111, 37.0, 11.1, 5.55),
    ("MSVD-QA", "down"): (379.4, 74, 24.7, 7.41, 3.71),
    ("TGIF-QA", "down"): (583.8, 114, 38.0, 11.4, 5.70),
}


def test_paper_table_reproduces_seed_table6_from_shapes():
    from paramcast.bench.netsim import paper_table

    rows = {(r["dataset"], r["direction"]): r for r in paper_table()}
    assert rows[("MSRVTT-QA", "up")]["size_kb"] == 0.75  # 192 fp32 = 768 B exactly
    assert rows[("MSRVTT-QA", "down")]["size_kb"] * 1024 == (96 + 1) * 1500 * 4
    for key, (kb, *ms) in SEED_TABLE6.items():
        row = rows[key]
        # The seed's sizes are within 0.15 % of (96 + 1) x V x 4 B; its 379.4 KB for V = 1000 is
        # 0.5 KB above 378.9 KB, which puts its MSVD 5G times 0.3 % high.
        assert row["size_kb"] == pytest.approx(kb, rel=2e-3)
        got = [row[f"{p}_ms"] for p in ("4G-5", "4G-15", "5G-50", "5G-100")]
        for g, want in zip(got, ms, strict=True):
            # the seed prints 2-3 significant figures: compare at the printed precision
            assert g == pytest.approx(want, rel=3e-3, abs=0.005), (key, got, ms)
