"""CD-CCA's device student exported to ONNX (paramcast.device.export.export_student): a DWC delta
installed by adding it to the graph's adapter inputs gives the PyTorch student's answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from paramcast import wire
from paramcast.methods.cd_cca import CDCCA, CDCCAConfig, UTSConfig
from paramcast.methods.cd_cca.akd import AKDConfig
from paramcast.models.mllm_tasks import make_batch

from .synth import synth_clips

ort = pytest.importorskip("onnxruntime")


def test_student_onnx_installs_a_delta_as_inputs(pre, tmp_path):  # pre: conftest.py, the tiny pretrained pair
    from safetensors.numpy import load_file

    from paramcast.device.export import export_student

    batch = make_batch(pre.encoder, synth_clips(12, pre.vocab, seed=1, size=32))
    m = CDCCA(pre, CDCCAConfig(uts=UTSConfig(sample_ratio=0.5, token_ratio=0.5, mc_passes=3),
                               akd=AKDConfig(steps=3, batch_size=4)))
    info = export_student(pre.encoder.eval(), m.model, tmp_path, image_size=32, question_len=batch.question.shape[1])
    assert json.loads((tmp_path / "student.json").read_text()) == info
    session = ort.InferenceSession(str(tmp_path / "student.onnx"), providers=["CPUExecutionProvider"])
    flat = load_file(str(tmp_path / "student_adapters.safetensors"))["adapters"]
    at = {e["name"]: e for e in info["layout"]}
    assert len(at) > 5 and sum(np.prod(e["shape"]) for e in at.values()) == flat.size == info["inputs"]["adapters"][0]

    def run():  # batch 1, row by row, as a phone runs it
        return np.concatenate([session.run(["answers"], {"frames": batch.frames[i:i + 1].numpy(),
                                                         "question": batch.question[i:i + 1].numpy(),
                                                         "adapters": flat})[0] for i in range(len(batch))])

    np.testing.assert_allclose(run(), m.predict(batch).numpy(), atol=1e-4, rtol=0)
    before = run()
    update = wire.decode(wire.encode(m.cloud_step(m.device_step(batch))))  # the delta as a device receives it
    m.apply(update)
    assert update.deltas and set(update.deltas) <= set(at)
    for name, delta in update.deltas.items():                               # what a device runtime does
        o = at[name]["offset"]
        flat[o:o + delta.numel()] += delta.float().numpy().ravel()
    after = run()
    np.testing.assert_allclose(after, m.predict(batch).numpy(), atol=1e-4, rtol=0)
    assert np.abs(after - before).max() > 1e-3                             # the delta changed the answers
