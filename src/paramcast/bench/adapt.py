"""One device's adaptation as every benchmark runs it, through the public method contract only.

    got = adapt(method, shots)                        # in process
    got = adapt(method, shots, WireTransport())       # every payload encoded and decoded by paramcast.wire

``device_step`` -> (transport) -> ``cloud_step`` -> (transport) -> ``apply``. :class:`Adapted` holds
the upload and update as the method made them, and the adaptation time: the method's own
``last_adapt_seconds`` for a device-only method that trains on the device, else the wall time from
``device_step`` to the update installed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from paramcast import wire
from paramcast.types import Update, Upload

__all__ = ["Adapted", "WireTransport", "adapt", "count"]

Payload = Upload | Update


@dataclass
class Adapted:
    upload: Upload | None   # as device_step made it (None: the method uploads nothing)
    update: Update | None   # as cloud_step made it
    elapsed_ms: float       # device_step .. apply, wall time
    device_ms: float | None  # the method's own adaptation time (device-only methods), else None


@dataclass
class WireTransport:
    """Payloads through ``wire.encode`` / ``wire.decode``; keeps each message's encoded and tensor bytes."""

    quant: str | None = None                            # None: each payload's own
    sent: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, message bytes, tensor bytes)

    def __call__(self, payload: Payload) -> Payload:
        msg = wire.encode(payload, self.quant)
        self.sent.append((type(payload).__name__, len(msg), wire.tensor_nbytes(payload, self.quant)))
        return wire.decode(msg, expect=type(payload))


def adapt(method: Any, shots: Any, transport: Callable[[Payload], Payload] | None = None) -> Adapted:
    """Adapt ``method`` (its current device state) to ``shots``; see the module docstring."""
    t0 = time.perf_counter()
    upload = method.device_step(shots)
    update = None
    if upload is not None:
        update = method.cloud_step(transport(upload) if transport else upload)
        if update is not None:
            method.apply(transport(update) if transport else update)
    elapsed = (time.perf_counter() - t0) * 1e3
    own = None if method.collaborative or method.last_adapt_seconds is None else method.last_adapt_seconds * 1e3
    return Adapted(upload, update, elapsed, own)


def count(n: int | None) -> int | None:
    """A parameter count for a result (``Method.device_params`` / ``cloud_params``), None kept."""
    return None if n is None else int(n)
