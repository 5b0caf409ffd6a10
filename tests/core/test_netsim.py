import pytest

from paramcast.bench.netsim import MB, PAPER_PROFILES, Profile, transfer_ms


def test_seed_example_568kb_at_100mbs_is_5_55ms():
    # DESIGN.md: 568.5 KB at 100 MB/s = 5.55 ms with 1 MB = 1024² B.
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
