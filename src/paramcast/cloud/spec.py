"""The service as a recipe: what ``paramcast serve`` was told, picklable, so that any process (the
uvicorn engine's, each Ray Serve replica) builds the same app from it with :func:`build_app`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

__all__ = ["BATCHERS", "AppSpec", "build_app"]

# "replica": paramcast's DynamicBatcher in the app's process (the uvicorn engine's, each Ray replica's);
# "serve": Ray Serve's @serve.batch (paramcast.cloud.serve_batch.ServeBatcher), for the ray engine.
BATCHERS = ("replica", "serve")


@dataclass(frozen=True)
class AppSpec:
    """How to build the service in any process: what ``paramcast serve`` was told."""

    method: str | None = None
    checkpoint: str | None = None
    method_kwargs: dict = field(default_factory=dict)
    plugins: tuple[str, ...] = ()
    threads: int = 0                           # torch threads (0: torch's default)
    app_kwargs: dict = field(default_factory=dict)  # create_app's keywords; batching / limits as dicts
    batcher: str = "replica"                   # BATCHERS: what groups uploads inside the app (docs/scale.md)

    def __post_init__(self) -> None:
        if self.batcher not in BATCHERS:
            raise ValueError(f"batcher {self.batcher!r} must be one of {' | '.join(BATCHERS)}")


def build_app(spec: AppSpec):
    """The FastAPI app for ``spec`` (imports the plugins, loads the method, sets torch's threads)."""
    import torch

    from paramcast.cloud.app import Batching, Limits, create_app, load_method

    if spec.threads > 0:
        torch.set_num_threads(spec.threads)
    for module in spec.plugins:
        importlib.import_module(module)
    method = load_method(spec.method or (None if spec.checkpoint else "cdc-mmpg"), spec.checkpoint,
                         **spec.method_kwargs)
    kw = dict(spec.app_kwargs)
    if "batching" in kw:
        kw["batching"] = Batching(**kw["batching"])
    if "limits" in kw:
        kw["limits"] = Limits(**kw["limits"])
    if spec.batcher == "serve":
        from paramcast.cloud.serve_batch import ServeBatcher

        kw["batcher"] = ServeBatcher
    return create_app(method, **kw)
