"""Test support shared by tests/cloud and tests/device (loaded by path from both conftests).

* ``ToyHyper`` ("toy-hyper"): a real, tiny linear hypernetwork implementing the Method interface,
  with a batched ``cloud_step_batch`` (one generator call for many devices).
* ``LiveServer``: the app on a real uvicorn (``paramcast serve``'s config) on loopback, in a thread.
"""

from __future__ import annotations

import torch
from torch import nn

from paramcast import wire
from paramcast.methods.base import Method
from paramcast.registry import available, get, register
from paramcast.types import HeadParams, Upload, WeightDelta

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


if "toy-hyper" not in available():
    register("toy-hyper")(ToyHyper)
else:
    ToyHyper = get("toy-hyper")  # noqa: F811 - loaded once per process


def make_upload(device_id: str = "dev-a", features: torch.Tensor | None = None, **kw) -> Upload:
    f = torch.randn(1, C) if features is None else features
    meta = {"method": "toy-hyper", "task": "toy", "model_version": "toy-1"} | kw
    return Upload(device_id=device_id, features=f, **meta)


__all__ = ["C", "H", "V", "ToyHyper", "WeightDelta", "make_upload", "wire"]


TOKENS = {"dev-a": "token-for-a-0123456789", "dev-b": "token-for-b-0123456789"}


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``app`` served by uvicorn with :func:`paramcast.cloud.server.server_config` (``**limits``) on a
    free loopback port, in a thread; ``stop()`` plays a dying cloud. The test closes the app itself."""

    def __init__(self, app, **limits):
        import threading
        import time

        import uvicorn

        from paramcast.cloud.server import server_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = server_config(app, host="127.0.0.1", port=self.port, log_level="warning", **limits)
        config.lifespan = "off"
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
