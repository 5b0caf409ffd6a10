"""Per-device history quotas: token buckets on posts and on bytes, answered 429 + ``Retry-After``.

Each device has two buckets: ``posts_per_minute`` posts (capacity = one minute's worth, refilled
continuously) and ``bytes_per_hour`` body bytes (capacity = one hour's worth). A post takes one post
token before its body is read and ``len(body)`` byte tokens after; when a bucket is short the
request is refused with 429 and ``Retry-After`` = the whole seconds until it refills enough.
Buckets live in the process (a restart refills them) and exist only for authenticated devices, so
their number is bounded by the token file.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from paramcast.cloud.errors import ApiError

__all__ = ["DeviceQuota"]


class _Bucket:
    def __init__(self, capacity: float, per_second: float, now: float):
        self.capacity, self.per_second = capacity, per_second
        self.tokens, self.stamp = capacity, now

    def take(self, amount: float, now: float) -> float:
        """Take ``amount`` tokens and return 0, or take nothing and return the seconds to wait."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if amount <= self.tokens:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.per_second


class DeviceQuota:
    """``charge(device, posts=1)`` / ``charge(device, nbytes=n)``: raise a 429 :class:`ApiError` when over."""

    def __init__(self, posts_per_minute: int, bytes_per_hour: int, clock: Callable[[], float] = time.monotonic):
        self.posts_per_minute, self.bytes_per_hour = posts_per_minute, bytes_per_hour
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[_Bucket, _Bucket]] = {}

    def charge(self, device: str, *, posts: int = 0, nbytes: int = 0) -> None:
        now = self._clock()
        with self._lock:
            if device not in self._buckets:
                self._buckets[device] = (_Bucket(self.posts_per_minute, self.posts_per_minute / 60, now),
                                         _Bucket(self.bytes_per_hour, self.bytes_per_hour / 3600, now))
            post_bucket, byte_bucket = self._buckets[device]
            wait = post_bucket.take(posts, now) if posts else 0.0
            what = f"{self.posts_per_minute} history posts per minute"
            if not wait and nbytes:
                wait = byte_bucket.take(nbytes, now)
                what = f"{self.bytes_per_hour} history bytes per hour"
        if wait:
            retry = max(1, math.ceil(wait))
            raise ApiError(429, "quota_exceeded", f"device {device!r} is over its quota of {what}; retry in {retry} s",
                           {"Retry-After": str(retry)})
