"""Fixtures for the device client: the toy method (tests/toy_service.py) and a real uvicorn server
on loopback in a thread, which a test can stop to play a dying cloud."""

from __future__ import annotations

import pytest

import toy_service as toy  # tests/ is on pytest's pythonpath
from toy_service import TOKENS, LiveServer


@pytest.fixture
def serve_app():
    """Start any ASGI app on a free loopback port (a LiveServer); stopped after the test."""
    servers = []

    def start(app) -> LiveServer:
        servers.append(LiveServer(app))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def live_server(tmp_path):
    from paramcast.cloud import Batching, TokenStore, create_app

    tokens = TokenStore()
    for dev, tok in TOKENS.items():
        tokens.add_token(dev, tok)
    app = create_app(toy.ToyHyper(), tokens=tokens, batching=Batching(max_batch=4, max_wait_ms=1),
                     store_path=tmp_path / "h.sqlite")
    server = LiveServer(app)
    yield server
    server.stop()
    app.state.close()


@pytest.fixture(scope="session")
def exported_device(tmp_path_factory):
    """20 tiny-EmojiClips samples of one device, an untrained CDC-MMPG on a random 192-wide encoder,
    and the device model exported to ONNX (paramcast.device.export)."""
    import torch

    from paramcast.data.emojiclips import load
    from paramcast.device.export import export_onnx, has_executorch
    from paramcast.methods.cdc_mmpg.model import CDCMMPG
    from paramcast.models.encoder import AllInOneEncoder, EncoderConfig
    from paramcast.models.features import feature_set

    ds = load("tiny", source="shapes", seed=0, root=tmp_path_factory.mktemp("emojiclips"), progress=False)
    clips = ds.new
    first = int(clips.device[0])
    rows = (clips.device == first).nonzero().flatten()[:20]
    torch.manual_seed(0)
    _, T, S = clips.frames.shape[:3]
    L = clips.question.shape[1]
    enc = AllInOneEncoder(EncoderConfig(vocab_size=len(ds.vocab.words), image_size=S, patch_size=8, hidden=192,
                                        heads=3, fusion_layers=1, max_frames=T, max_question_len=max(L, 16)),
                          words=ds.vocab.words)   # the default, pretrained encoder (Lite0 + MiniLM)
    enc = enc.to("cpu").requires_grad_(False).eval()
    method = CDCMMPG(num_answers=len(ds.vocab.answers), feature_dim=192, encoder=enc, device="cpu", seed=0)
    sub = clips.subset(rows)
    batch = feature_set(enc, sub)  # what the Python device runs on: the torch encoder's features
    with torch.no_grad():          # from raw frames in fp32, as a device computes them (the cache keeps fp16 stems)
        batch.features = enc(sub.frames, sub.question).float()
    batch.meta["device_id"] = f"dev-{first}"
    out = tmp_path_factory.mktemp("export")
    info = export_onnx(enc, method, out, num_frames=T, image_size=S, question_len=L, executorch=has_executorch())
    return {"dir": out, "info": info, "vocab": ds.vocab, "method": method, "encoder": enc, "frames": sub.frames, "question": sub.question,
            "batch": batch, "device_id": f"dev-{first}"}
