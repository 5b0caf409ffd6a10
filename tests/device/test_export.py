"""The exported ONNX device model (paramcast.device.export) equals the PyTorch device model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")


def _run(session, frames, question, weight, bias):
    return session.run(["features", "logits"], {"frames": frames.numpy(), "question": question.numpy(),
                                                  "weight": weight.numpy(), "bias": bias.numpy()})


@pytest.fixture(scope="module")
def session(exported_device):
    return ort.InferenceSession(str(exported_device["dir"] / "device.onnx"), providers=["CPUExecutionProvider"])


def test_generated_head_as_input_matches_pytorch(exported_device, session):
    m, batch = exported_device["method"], exported_device["batch"]
    head = m.cloud_step(m.device_step(batch))  # the generator's head for this device's first sample
    m.apply(head)
    want = m.predict(batch).numpy()                                     # (20, V) the PyTorch device model
    features, logits = _run(session, exported_device["frames"], exported_device["question"], head.weight, head.bias)
    assert logits.shape == want.shape == (20, m.num_answers)
    np.testing.assert_allclose(features, batch.features.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits, want, atol=1e-4, rtol=0)
    assert (logits.argmax(1) == want.argmax(1)).all()
    # installing another head is passing other tensors: the static head gives other answers
    static = m.static_layer()
    _, logits0 = _run(session, exported_device["frames"], exported_device["question"], *(t.detach() for t in static))
    m.reset()
    np.testing.assert_allclose(logits0, m.predict(batch).numpy(), atol=1e-4, rtol=0)
    assert np.abs(logits0 - logits).max() > 1e-2


def test_executorch_program_matches_pytorch(exported_device):
    """device.pte in the ExecuTorch runtime (XNNPACK) = the PyTorch device model, one clip at a time."""
    pytest.importorskip("executorch", reason="ExecuTorch is not installed (paramcast[export])")
    from paramcast.device.export import run_pte

    m, batch, info = exported_device["method"], exported_device["batch"], exported_device["info"]
    assert info["pte"] == "device.pte" and info["pte_bytes"] == (exported_device["dir"] / "device.pte").stat().st_size
    head = m.cloud_step(m.device_step(batch))
    m.apply(head)
    want = m.predict(batch)
    m.reset()
    run = run_pte(exported_device["dir"] / "device.pte")
    for i in range(0, len(want), 5):
        features, logits = run(exported_device["frames"][i:i + 1], exported_device["question"][i:i + 1],
                               head.weight.detach().float(), head.bias.detach().float())
        torch.testing.assert_close(features, batch.features[i:i + 1], atol=1e-4, rtol=0)
        torch.testing.assert_close(logits, want[i:i + 1], atol=1e-4, rtol=0)


def test_batch_is_dynamic_and_upload_is_the_anchor_feature(exported_device, session):
    m, batch, info = exported_device["method"], exported_device["batch"], exported_device["info"]
    w, b = (t.detach() for t in m.static_layer())
    one, _ = _run(session, exported_device["frames"][:1], exported_device["question"][:1], w, b)
    upload = m.device_step(batch).features                                # (1, C)
    assert one.shape[0] == 1 and list(upload.shape) == info["upload_shape"]
    np.testing.assert_allclose(one[0, info["anchor_frame"]][None], upload.numpy(), atol=1e-4, rtol=0)


def test_device_json_and_graph_inputs(exported_device):
    import onnx

    d = exported_device["dir"]
    info = json.loads((d / "device.json").read_text())
    m = exported_device["method"]
    assert info == exported_device["info"] and info["model_version"] == m.model_version
    assert info["inputs"]["weight"] == [m.num_answers, 96] and info["inputs"]["bias"] == [m.num_answers]
    assert info["exporter"] in ("dynamo", "torchscript")
    model = onnx.load(str(d / "device.onnx"))
    inputs = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    assert inputs == {"frames": onnx.TensorProto.UINT8, "question": onnx.TensorProto.INT64,
                      "weight": onnx.TensorProto.FLOAT, "bias": onnx.TensorProto.FLOAT}
    assert {i.name for i in model.graph.initializer}.isdisjoint({"weight", "bias"})
    from safetensors.torch import load_file

    static = load_file(str(d / "static_head.safetensors"))
    assert torch.equal(static["weight"], m.static_layer()[0].detach().cpu())
