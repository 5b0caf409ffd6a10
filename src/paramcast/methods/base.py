"""The one interface every method implements — ours and the baselines alike.

The trainer, the benchmark runner, the HTTP service and the device client all drive a method
through these six calls and nothing else (DESIGN.md, "one interface, one direction of flow")::

    method.fit(history)                      # cloud: train on the cloud's history
    method.reset()                           # device: forget any adaptation
    upload = method.device_step(batch)       # device: summary to send, or None (device-only)
    update = method.cloud_step(upload)       # cloud: generated head / weight delta, or None
    method.apply(update)                     # device: install it
    logits = method.predict(batch)           # device: (B, V) answer logits

Device-only baselines (F-linear, Fine-tuning, TENT, CoTTA) adapt inside ``device_step`` and return
``None``; a static model (source-only) does nothing there.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from paramcast.types import Update, Upload

__all__ = ["Method"]


class Method(abc.ABC):
    name: ClassVar[str] = "method"
    #: True when the method talks to the cloud at adaptation time (uploads something).
    collaborative: ClassVar[bool] = False

    @abc.abstractmethod
    def fit(self, history: Any) -> None:
        """Train the cloud-side (and static device-side) parts on the cloud's history."""

    def device_step(self, batch: Any) -> Upload | None:
        """Look at the device's current data; return what to upload, or None."""
        return None

    def cloud_step(self, upload: Upload) -> Update | None:
        """Answer one device's upload."""
        return None

    def cloud_step_batch(self, uploads: Sequence[Upload]) -> list[Update | None]:
        """Answer several devices at once; must equal ``[cloud_step(u) for u in uploads]``.

        Methods whose generator batches well (one matmul for many devices) override this; the
        service's dynamic batcher calls it.
        """
        return [self.cloud_step(u) for u in uploads]

    def apply(self, update: Update) -> None:
        """Install an update received from the cloud."""
        raise NotImplementedError(f"{type(self).__name__} does not take updates from the cloud")

    @abc.abstractmethod
    def predict(self, batch: Any) -> torch.Tensor:
        """Answer logits (B, V) for a batch of the device's samples."""

    def reset(self) -> None:  # noqa: B027 - a static method has nothing to reset
        """Drop every device-side adaptation (back to the state right after ``fit``)."""
