"""Network profiles and ideal transfer times (the seeds' latency tables).

The seeds compute a delay as ``bytes / bandwidth`` with 1 MB = 1024 × 1024 bytes (DESIGN.md:
568.5 KB at 100 MB/s = 5.55 ms). :func:`transfer_ms` adds an optional round-trip time, which the
seeds leave out (``rtt_ms = 0`` reproduces their tables).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MB", "PAPER_PROFILES", "PROFILES", "Profile", "transfer_ms"]

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
