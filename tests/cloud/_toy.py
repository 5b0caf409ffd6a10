"""Test support shared by tests/cloud and tests/device (loaded by path from both conftests).

* ``ToyHyper`` ("toy-hyper"): a real, tiny linear hypernetwork implementing the Method interface,
  with a batched ``cloud_step_batch`` (one generator call for many devices).
* ``wire``: ``paramcast.wire`` if it is importable, else a minimal stand-in with the same API
  (installed as ``paramcast.wire``) until the real module lands.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types

import torch
from torch import nn

from paramcast.methods.base import Method
from paramcast.registry import _REGISTRY, register
from paramcast.types import QUANTS, HeadParams, Upload, WeightDelta

try:
    from paramcast import wire
except ImportError:  # stand-in until paramcast.wire lands
    from safetensors.torch import load as _st_load
    from safetensors.torch import save as _st_save

    class WireError(ValueError):
        pass

    def _digest(tensors, meta):
        h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
        for k in sorted(tensors):
            h.update(k.encode())
            h.update(tensors[k].contiguous().numpy().tobytes())
        return h.hexdigest()

    def encode(payload, quant=None):
        quant = quant or payload.quant
        if isinstance(payload, Upload):
            tensors = {"features": payload.features}
            tensors |= {k: getattr(payload, k) for k in ("positions", "samples") if getattr(payload, k) is not None}
        elif isinstance(payload, HeadParams):
            tensors = {"weight": payload.weight, "bias": payload.bias}
        else:
            tensors = {f"delta.{k}": v for k, v in payload.deltas.items()}
        if quant == "fp16":
            tensors = {k: (v.half().float() if v.is_floating_point() else v) for k, v in tensors.items()}
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        meta = {"schema": 1, "type": type(payload).__name__, "device_id": payload.device_id,
                "method": payload.method, "task": payload.task, "model_version": payload.model_version,
                "quant": quant}
        return _st_save(tensors, metadata={"meta": json.dumps(meta), "sha256": _digest(tensors, meta)})

    def decode(data, *, max_bytes=64 * 2**20, expect=None):
        if not isinstance(data, bytes | bytearray) or len(data) > max_bytes or len(data) < 8:
            raise WireError("payload size out of range")
        try:
            n = int.from_bytes(data[:8], "little")
            header = json.loads(bytes(data[8:8 + n]))
            md = header["__metadata__"]
            meta = json.loads(md["meta"])
            tensors = _st_load(bytes(data))
        except Exception as exc:
            raise WireError(f"malformed payload: {exc!r}") from None
        if not isinstance(meta, dict) or _digest(tensors, meta) != md.get("sha256"):
            raise WireError("checksum mismatch")
        try:
            for v in tensors.values():
                if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                    raise WireError("non-finite values")
            kw = {k: str(meta[k]) for k in ("device_id", "method", "task", "model_version")}
            if meta.get("quant") not in QUANTS:
                raise WireError("bad quant")
            kind = meta["type"]
            if kind == "Upload":
                out = Upload(**kw, features=tensors["features"].float(), positions=tensors.get("positions"),
                             samples=tensors.get("samples"), quant=meta["quant"])
            elif kind == "HeadParams":
                out = HeadParams(**kw, weight=tensors["weight"].float(), bias=tensors["bias"].float(), quant=meta["quant"])
            else:
                raise WireError(f"unknown type {kind!r}")
        except WireError:
            raise
        except Exception as exc:
            raise WireError(f"malformed payload: {exc!r}") from None
        if expect is not None and not isinstance(out, expect):
            raise WireError(f"expected {expect}, got {type(out).__name__}")
        return out

    wire = types.ModuleType("paramcast.wire")
    wire.WireError, wire.encode, wire.decode = WireError, encode, decode
    wire.STANDIN = True
    sys.modules["paramcast.wire"] = wire
    import paramcast

    paramcast.wire = wire

C, H, V, HIDDEN = 8, 4, 5, 16


class ToyHyper(Method):
    """Tiny hypernetwork: mean feature (C,) -> MLP -> head weight (V, H) and bias (V,).

    Device side: a frozen projection ``P`` (H, C) maps a sample's feature to the head's input; the
    head is the static one until the cloud sends a generated one.
    """

    collaborative = True
    task = "toy"
    model_version = "toy-1"
    upload_shape = (1, C)

    def __init__(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.generator = nn.Sequential(nn.Linear(C, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, V * (H + 1)))
        for p in self.generator.parameters():
            nn.init.normal_(p, std=0.5, generator=g)
        self.proj = torch.randn(H, C, generator=g)
        self.static_weight = torch.randn(V, H, generator=g)
        self.static_bias = torch.zeros(V)
        self.device_id = "dev-a"
        self.reset()

    def fit(self, history) -> None:
        return None

    # ---- device side
    def device_step(self, batch: dict) -> Upload:
        feats = batch["x"]  # (B, C)
        return Upload(device_id=self.device_id, method=self.name, task=self.task,
                      model_version=self.model_version, features=feats.mean(0, keepdim=True))

    def apply(self, update) -> None:
        if not isinstance(update, HeadParams) or update.weight.shape != (V, H) or update.bias.shape != (V,):
            raise ValueError("toy-hyper takes HeadParams with weight (V, H) and bias (V,)")
        self.weight, self.bias = update.weight.clone(), update.bias.clone()

    def predict(self, batch: dict) -> torch.Tensor:
        h = batch["x"] @ self.proj.T            # (B, H)
        return h @ self.weight.T + self.bias    # (B, V)

    def reset(self) -> None:
        self.weight, self.bias = self.static_weight.clone(), self.static_bias.clone()

    # ---- cloud side
    def cloud_step(self, upload: Upload) -> HeadParams:
        return self.cloud_step_batch([upload])[0]

    def cloud_step_batch(self, uploads) -> list[HeadParams]:
        x = torch.stack([u.features.mean(0) for u in uploads])  # (B, C)
        out = self.generator(x).view(len(uploads), V, H + 1)      # (B, V, H + 1): one generator call
        return [HeadParams(device_id=u.device_id, method=self.name, task=self.task,
                           model_version=self.model_version, weight=o[:, :H].clone(), bias=o[:, H].clone())
                for u, o in zip(uploads, out, strict=True)]


if "toy-hyper" not in _REGISTRY:
    register("toy-hyper")(ToyHyper)
else:
    ToyHyper = _REGISTRY["toy-hyper"]  # noqa: F811 - loaded once per process


def make_upload(device_id: str = "dev-a", features: torch.Tensor | None = None, **kw) -> Upload:
    f = torch.randn(1, C) if features is None else features
    meta = {"method": "toy-hyper", "task": "toy", "model_version": "toy-1"} | kw
    return Upload(device_id=device_id, features=f, **meta)


__all__ = ["C", "H", "V", "ToyHyper", "WeightDelta", "make_upload", "wire"]
