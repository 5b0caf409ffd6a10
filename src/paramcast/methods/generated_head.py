"""The device/cloud half shared by every method whose cloud *generates* the device's last layer.

CDC-MMPG (FDA + ADR), F-hyper, StableSynthNet and DUET differ only in how they train and in the
generator; at adaptation time they all do the same thing (seed cdc-mmpg §3, Fig. 2 c)::

    device: F_m (T, C) of its first sample ──upload_index──► Upload(features=(D, C))
    cloud:  generate(features) ──► W (V, H), b (V,) ──► HeadParams
    device: DeviceModel.apply_params(HeadParams) ; predict = static head -> generated Linear(H, V)

**Whole layer or residual** (``residual`` in every generated-head config). The seeds generate the
layer Θ_d itself: ``W, b = f_h(·)`` (``residual=False``, the seed-literal default). paramcast's
reading adds a learned static layer, ``W = W_0 + ΔW``, ``b = b_0 + Δb`` (``residual=True``), so
training starts from a working head. The two differ less than they look: f_h's output layer has a
bias of the same (H + 1)·V numbers, which is already a learned static layer; what ``residual=True``
adds is a second copy initialised as a ``Linear(H, V)`` (not at zero) and weight-decayed apart
from f_h. :func:`add_static_layer` registers ``W_0, b_0`` as trained parameters only when
``residual``; otherwise they are fixed buffers (a random ``Linear(H, V)`` init), the layer a device
runs before its first update, never part of a generated one and not counted as cloud parameters.

A subclass sets ``self.model`` (a :class:`~paramcast.models.heads.DeviceModel`), ``self.device``,
``self.feature_dim`` and ``self.model_version``, and implements :meth:`generate`,
:meth:`static_layer` (the ``W_0, b_0`` a device runs before its first update) and ``cloud_params``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from paramcast.methods.base import Method
from paramcast.models.training import ANSWER_CE
from paramcast.types import HeadParams, Update, Upload

if TYPE_CHECKING:
    from paramcast.models.features import FeatureSet
    from paramcast.models.heads import DeviceModel

__all__ = ["TASK", "GeneratedHeadMethod", "add_static_layer"]

TASK = "videoqa-open"


def add_static_layer(module: torch.nn.Module, head_in: int, num_answers: int, residual: bool) -> None:
    """Give ``module`` its ``weight0 (V, H)`` and ``bias0 (V,)``: parameters when ``residual`` (added to
    every generated layer, trained), buffers otherwise (the pre-update layer only; see the module docstring)."""
    w0 = torch.nn.Linear(head_in, num_answers)
    for name, t in (("weight0", w0.weight), ("bias0", w0.bias)):
        if residual:
            module.register_parameter(name, torch.nn.Parameter(t.detach().clone()))
        else:
            module.register_buffer(name, t.detach().clone())


class GeneratedHeadMethod(Method):
    collaborative = True
    task = TASK              # what uploads must name (the service checks it)
    objective = ANSWER_CE    # what the generated layer trains against (Method.set_objective)
    model: DeviceModel
    device: torch.device
    feature_dim: int
    model_version: str

    # --- what a subclass provides ------------------------------------------------------------
    def upload_index(self, num_frames: int) -> torch.Tensor:
        """Which frames of the device's first sample are uploaded: (D,) int64. Default: ONE frame,
        ``config.anchor_frame`` (the seeds' one-frame upload)."""
        return torch.tensor([min(self.config.anchor_frame, num_frames - 1)])

    @property
    def upload_frames(self) -> int:
        """D, the number of frame features in one upload."""
        return 1

    @property
    def upload_shape(self) -> tuple[int, int]:
        """(D, C) of every upload's features (the service refuses anything else with a 422)."""
        return self.upload_frames, self.feature_dim

    @abc.abstractmethod
    def generate(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Uploaded features -> weight (N, V, H), bias (N, V). ``features`` is (N, C) for one-frame
        uploads and (N, D, C) for D > 1."""

    @abc.abstractmethod
    def static_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The cloud's static last layer ``W_0 (V, H), b_0 (V,)``."""

    # --- the shared adaptation-time protocol --------------------------------------------------
    def device_step(self, batch: FeatureSet) -> Upload:
        """Upload D frame features of the device's first sample: (D, C)."""
        feature = batch.features[0, self.upload_index(batch.features.shape[1])].detach().float().cpu()
        return Upload(device_id=str(batch.meta.get("device_id", int(batch.device[0]))), method=self.name,
                      task=TASK, model_version=self.model_version, features=feature)

    def cloud_step(self, upload: Upload) -> HeadParams:
        return self.cloud_step_batch([upload])[0]

    def cloud_step_batch(self, uploads: Sequence[Upload]) -> list[Update | None]:
        """N uploads -> one batched generator call -> N heads (row-wise, so it equals the loop)."""
        shape = self.upload_shape
        for u in uploads:
            if tuple(u.features.shape) != shape:
                raise ValueError(f"{self.name} expects {shape[0]} frame feature{'s' if shape[0] > 1 else ''} of shape {shape}; "
                                 f"device {u.device_id} uploaded {tuple(u.features.shape)}")
        features = torch.stack([u.features for u in uploads])                  # (N, D, C)
        weight, bias = self.generate(features[:, 0] if shape[0] == 1 else features)
        return [HeadParams(device_id=u.device_id, method=self.name, task=u.task, model_version=self.model_version,
                           weight=weight[i].cpu(), bias=bias[i].cpu()) for i, u in enumerate(uploads)]

    def apply(self, update: Update) -> None:
        if not isinstance(update, HeadParams):
            raise TypeError(f"{self.name} installs HeadParams, got {type(update).__name__}")
        self.model.apply_params(update)

    @torch.no_grad()
    def predict(self, batch: FeatureSet) -> torch.Tensor:
        self.model.eval()
        return self.model(batch.features.to(self.device)).cpu()

    def reset(self) -> None:
        """Back to the cloud's static layer W_0, b_0 (what a device runs before its first update)."""
        weight, bias = self.static_layer()
        self.model.apply_params(HeadParams(device_id="", method=self.name, task=TASK, model_version="",
                                           weight=weight.detach(), bias=bias.detach()))

    def device_params(self) -> int:
        """Parameters on the device besides the shared encoder: static head + the installed layer."""
        m = self.model
        return sum(p.numel() for p in m.static.parameters()) + m.weight.numel() + m.bias.numel()

    @abc.abstractmethod
    def cloud_params(self) -> int:
        """Numbers the cloud holds to serve updates."""
