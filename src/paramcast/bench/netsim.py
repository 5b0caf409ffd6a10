"""Network profiles and ideal transfer times (the seeds' latency tables).

The seeds compute a delay as ``bytes / bandwidth`` with 1 MB = 1024 × 1024 bytes (docs/design.md:
568.5 KB at 100 MB/s = 5.55 ms). :func:`transfer_ms` adds an optional round-trip time, which the
seeds leave out (``rtt_ms = 0`` reproduces their tables).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MB", "PAPER_HEADS", "PAPER_PROFILES", "PROFILES", "Profile", "paper_table", "transfer_ms"]

MB = 1024 * 1024  # bytes; the seeds' "MB" and "MB/s"
KB = 1024


@dataclass(frozen=True)
class Profile:
    name: str
    bandwidth_mb_s: float  # MB/s, MB = 1024² bytes
    rtt_ms: float = 0.0    # round trip added once per adaptation (request + response)

    def __post_init__(self) -> None:
        if not self.bandwidth_mb_s > 0:
            raise ValueError(f"profile {self.name}: bandwidth must be > 0 MB/s, got {self.bandwidth_mb_s}")
        if self.rtt_ms < 0:
            raise ValueError(f"profile {self.name}: rtt_ms must be >= 0, got {self.rtt_ms}")


#: The four profiles of the seeds' latency tables (no RTT, as they report).
PAPER_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (Profile("4G-5", 5.0), Profile("4G-15", 15.0), Profile("5G-50", 50.0), Profile("5G-100", 100.0))
}
#: Profiles for paramcast's own reports: the seeds' four plus gigabit Ethernet.
PROFILES: dict[str, Profile] = {**PAPER_PROFILES, "GigE": Profile("GigE", 1000 / 8 * 1e6 / MB)}


def transfer_ms(up_bytes: int, down_bytes: int, profile: Profile, rtt_ms: float | None = None) -> float:
    """Ideal time to send ``up_bytes`` and receive ``down_bytes`` over ``profile``, in milliseconds."""
    rtt = profile.rtt_ms if rtt_ms is None else rtt_ms
    return rtt + (up_bytes + down_bytes) / (profile.bandwidth_mb_s * MB) * 1e3


#: The seed's (CDC-MMPG Table 6) datasets and their answer vocabularies (All-in-One's top-V answers).
PAPER_HEADS: dict[str, int] = {"MSRVTT-QA": 1500, "MSVD-QA": 1000, "TGIF-QA": 1540}


def paper_table(feature_dim: int = 192, head_in: int = 96, heads: dict[str, int] | None = None) -> list[dict]:
    """CDC-MMPG's Table 6 from shapes alone: upload/download size and time for each paper profile.

    Sizes are tensor bytes (what the seed counts, no container header), computed by
    :func:`paramcast.wire.tensor_nbytes` from a one-frame fp32 upload and a generated fp32 head.
    """
    import torch

    from paramcast import wire
    from paramcast.types import HeadParams, Upload

    ids = {"device_id": "paper", "method": "cdc-mmpg", "task": "videoqa", "model_version": "paper"}
    up = wire.tensor_nbytes(Upload(**ids, features=torch.zeros(1, feature_dim)))
    rows = []
    for dataset, answers in (heads or PAPER_HEADS).items():
        head = HeadParams(**ids, weight=torch.zeros(answers, head_in), bias=torch.zeros(answers))
        down = wire.tensor_nbytes(head)
        for direction, nbytes in (("up", up), ("down", down)):
            row = {"dataset": dataset, "direction": direction, "size_kb": nbytes / KB}
            row |= {f"{p.name}_ms": transfer_ms(nbytes, 0, p) for p in PAPER_PROFILES.values()}
            rows.append(row)
    return rows
