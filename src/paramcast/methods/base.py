"""The one interface every method implements — ours and the baselines alike.

The trainer, the benchmark runner, the HTTP service and the device client all drive a method
through these six calls and nothing else (docs/design.md, "one interface, one direction of flow")::

    method.fit(history)                      # cloud: train on the cloud's history
    method.reset()                           # device: forget any adaptation
    upload = method.device_step(batch)       # device: summary to send, or None (device-only)
    update = method.cloud_step(upload)       # cloud: generated head / weight delta, or None
    method.apply(update)                     # device: install it
    logits = method.predict(batch)           # device: (B, V) answer logits

Device-only baselines (F-linear, Fine-tuning, TENT, CoTTA) adapt inside ``device_step`` and return
``None``; a static model (source-only) does nothing there.

**Device half, cloud half** (Flower's Client / Strategy split). ``method.device_half(device_id)`` is
what runs on one phone (:class:`DeviceHalf`: ``device_step``, ``apply``, ``predict``, ``reset``);
``method.cloud_half()`` is what the service holds (:class:`CloudHalf`: ``cloud_step``,
``cloud_step_batch``, ``forget``), answering any number of devices and keeping whatever it keeps per
device keyed by ``Upload.device_id``. The two halves exchange :mod:`paramcast.types` payloads and
nothing else. A method whose cloud keeps no per-device state (the generated-head family: the
generator is a pure function of the upload) is its own two halves; CD-CCA and its KD baselines keep a
cloud student copy and a delta base per device, so their halves are separate objects
(:mod:`paramcast.methods.cd_cca.method`). ``Method`` itself stays the one-process view the
benchmarks drive: its ``device_step`` / ``cloud_step`` / ``apply`` / ``predict`` act on one device.

**Training objective** (the one hook a benchmark needs to train a method with another loss). A method
of the video-QA families trains its output layer against ``method.objective`` wherever it trains
it: in the cloud ``fit`` and in device-side adaptation (F-linear, Fine-tuning). The default is the QA
cross-entropy (:data:`paramcast.models.training.ANSWER_CE`); ``method.set_objective(obj)`` before
``fit`` swaps it (``bench retrieval``: InfoNCE against a caption tower), with the calling convention
of :class:`paramcast.models.training.Objective`. The method keeps its own training loop, its own
regularisers (StableSynthNet's DCT/ODS/TDE, CDC-MMPG's ADR phase) and its own batching; the bench
knows nothing else about it. The objective is the task's, not the method's: it is not part of
``modules()`` or a checkpoint. Methods with a loss of their own kind (the MLLM family: CD-CCA, its KD
baselines, TENT, CoTTA) have ``objective = None`` and refuse ``set_objective``.

Checkpoints: ``method.save_checkpoint(path)`` writes every ``nn.Module`` attribute's state as one
safetensors file whose metadata names the method and its constructor arguments (``num_answers``,
``feature_dim``, ``config``); :func:`paramcast.catalog.from_checkpoint` rebuilds the method from it,
so ``paramcast serve --checkpoint`` and ``paramcast device --checkpoint`` need nothing else. No pickle.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from paramcast.types import Update, Upload

__all__ = ["CHECKPOINT_FORMAT", "CloudHalf", "DeviceHalf", "Method", "UploadRejected", "read_checkpoint"]

CHECKPOINT_FORMAT = "paramcast.checkpoint/1"


class UploadRejected(ValueError):
    """A cloud half refuses an upload it cannot answer (bad token indices, a stale model version);
    the service answers it with a 4xx, never a 500. ``status``: 409 for a version conflict, else 422."""

    def __init__(self, detail: str, status: int = 422, error: str = "bad_upload"):
        super().__init__(detail)
        self.status, self.error = status, error


@runtime_checkable
class DeviceHalf(Protocol):
    """What one device runs: its upload, the update it installs, its answers."""

    name: str

    def device_step(self, batch: Any) -> Upload | None: ...
    def apply(self, update: Update) -> None: ...
    def predict(self, batch: Any) -> torch.Tensor: ...
    def reset(self) -> None: ...


@runtime_checkable
class CloudHalf(Protocol):
    """What the service holds: answers uploads of any number of devices."""

    name: str

    def cloud_step(self, upload: Upload) -> Update | None: ...
    def cloud_step_batch(self, uploads: Sequence[Upload]) -> list[Update | None]: ...
    def forget(self, device_id: str) -> None: ...


class Method(abc.ABC):
    name: ClassVar[str] = "method"
    #: True when the method talks to the cloud at adaptation time (uploads something).
    collaborative: ClassVar[bool] = False
    #: True when adaptation reads the raw frames and questions of its batches (``FeatureSet.frames`` /
    #: ``.question``), not only their features: benchmarks then build such batches (they cost memory).
    reads_raw_inputs: ClassVar[bool] = False

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

    # --- the training objective (module docstring) ------------------------------------------
    #: ``objective(outputs, data, rows) -> (loss, correct)`` the output layer trains against; None: the
    #: method trains its own loss only and refuses :meth:`set_objective`.
    objective: Any = None

    def set_objective(self, objective: Any) -> None:
        """Train the output layer against ``objective`` from now on (call before ``fit``)."""
        if self.objective is None:
            raise NotImplementedError(f"{self.name} trains only its own loss; it takes no other objective")
        self.objective = objective

    # --- what the benchmarks report -------------------------------------------------------------
    #: Seconds the last ``device_step`` spent adapting on the device (device-only methods that train
    #: there); None where nothing is measured.
    last_adapt_seconds: float | None = None

    def device_params(self) -> int | None:
        """Numbers the device holds besides the shared encoder (None: not counted for this method)."""
        return None

    def cloud_params(self) -> int | None:
        """Numbers the cloud holds to serve updates (None: not counted for this method)."""
        return None

    # --- the two halves ----------------------------------------------------------------------
    def device_half(self, device_id: str | None = None) -> DeviceHalf:
        """What one device runs. Default: the method itself (its device state is its own; the device
        id travels in the batch). Methods with per-device cloud state return a fresh object."""
        return self

    def cloud_half(self) -> CloudHalf:
        """What the service holds. Default: the method itself (no per-device cloud state)."""
        return self

    def batch_from_tensors(self, tensors: dict[str, torch.Tensor], device_id: str) -> Any:
        """One device's rows of a saved stream (``paramcast train``'s ``stream-*.safetensors``) as the
        batch ``device_step`` / ``predict`` take. Default: frame features ``features`` (N, T, C)."""
        from paramcast.models.features import FeatureSet

        return FeatureSet(tensors["features"], tensors["answer"], tensors["device"], meta={"device_id": device_id})

    def forget(self, device_id: str) -> None:  # noqa: B027 - nothing kept per device
        """Drop what the cloud keeps for ``device_id`` (nothing, unless a method keeps per-device state)."""

    # --- checkpoints ---------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        """The method's own state: every ``nn.Module`` attribute by name, except the shared frozen
        ``encoder`` (the device's, passed to the constructor) and the ``objective`` (the task's);
        neither is part of a method checkpoint."""
        return {k: v for k, v in vars(self).items() if isinstance(v, nn.Module) and k not in ("encoder", "objective")}

    def after_load(self) -> None:  # noqa: B027 - most methods need nothing here
        """Hook run after a checkpoint's weights are loaded, before ``reset()`` (e.g. re-snapshot)."""

    def checkpoint_args(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this method's shapes (stored in the checkpoint)."""
        args: dict[str, Any] = {}
        for key in ("num_answers", "feature_dim"):
            if hasattr(self, key):
                args[key] = int(getattr(self, key))
        config = getattr(self, "config", None)
        if dataclasses.is_dataclass(config):
            args["config"] = dataclasses.asdict(config)
        return args

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write every module's weights + the constructor arguments to ``path`` (safetensors)."""
        from safetensors.torch import save_file

        tensors = {f"{name}.{k}": v.detach().cpu().contiguous()
                   for name, mod in self.modules().items() for k, v in mod.state_dict().items()}
        meta = {"format": CHECKPOINT_FORMAT, "method": self.name, "args": json.dumps(self.checkpoint_args()),
                "model_version": str(getattr(self, "model_version", ""))}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata=meta)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Load what :meth:`save_checkpoint` wrote; raise ``ValueError`` if it is another method or shape."""
        self.load_state(*read_checkpoint(path), source=str(path))

    def load_state(self, meta: dict[str, Any], tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Install a checkpoint already read by :func:`read_checkpoint` (its metadata and tensors)."""
        if meta["method"] != self.name:
            raise ValueError(f"{source} is a {meta['method']!r} checkpoint, not {self.name!r}")
        device = getattr(self, "device", "cpu")
        for name, mod in self.modules().items():
            prefix = f"{name}."
            state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                mod.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise ValueError(f"{source} does not fit this {self.name} ({name}): {exc}") from None
            mod.to(device).eval()
        unknown = {k.split(".", 1)[0] for k in tensors} - set(self.modules())
        if unknown:
            raise ValueError(f"{source} holds modules {sorted(unknown)} this {self.name} does not have")
        if meta.get("model_version"):
            self.model_version = meta["model_version"]
        self.after_load()
        self.reset()


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A checkpoint's metadata (``method``, ``args`` decoded, ``model_version``) and tensors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as exc:  # safetensors raises its own types for every malformation
        raise ValueError(f"{path} is not a safetensors checkpoint: {exc}") from None
    if meta.get("format") != CHECKPOINT_FORMAT or "method" not in meta:
        raise ValueError(f"{path} is not a paramcast checkpoint (format {meta.get('format')!r})")
    meta["args"] = json.loads(meta.get("args") or "{}")
    return meta, tensors
