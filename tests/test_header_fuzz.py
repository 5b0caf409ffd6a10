"""Every field of a received safetensors header, set to a value of every JSON type and nesting depth:
``wire.decode`` raises ``WireError`` and ``decode_history`` raises ``HistoryError`` — nothing else
(a ``RecursionError`` and a ``TypeError: unhashable type`` each answered 500 once)."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from header_mutation import RAW, paths, with_field
from paramcast import wire
from paramcast.types import HeadParams, Upload
from paramcast.wire.history import HistoryError, decode_history, encode_history

_IDS = dict(device_id="dev-a", method="toy-hyper", task="toy", model_version="toy-1")
UPLOAD = wire.encode(Upload(**_IDS, features=torch.randn(2, 8), positions=torch.tensor([0, 3]),
                            samples=torch.tensor([0, 1]), text=torch.tensor([[1, 2], [3, 0]])))
HEAD = wire.encode(HeadParams(**_IDS, weight=torch.randn(5, 4), bias=torch.randn(5)), "int8")
HISTORY = encode_history("dev-a", "toy", torch.randn(3, 8), torch.tensor([0, 1, -1]), torch.randint(0, 9, (3, 4)))
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _decodes_or_refuses(decode, error, msg):
    """Raises ``error`` or decodes: only a value equal to the original (1.0 for 1) leaves a valid message."""
    try:
        decode(msg)
    except error:
        pass


@FUZZ
@given(st.sampled_from([(m, p) for m in (UPLOAD, HEAD) for p in paths(m, inner=True)]), RAW)
def test_wire_header_fields_of_every_type(field, raw):
    msg, path = field
    _decodes_or_refuses(wire.decode, wire.WireError, with_field(msg, path, raw))


@FUZZ
@given(st.sampled_from(paths(HISTORY, inner=False)), RAW)
def test_history_header_fields_of_every_type(path, raw):
    _decodes_or_refuses(decode_history, HistoryError, with_field(HISTORY, path, raw))


def test_the_fuzz_reaches_every_field_and_the_reported_bodies():
    fields = set(paths(UPLOAD, inner=True))
    assert {(), ("__metadata__",), ("text", "dtype"), ("features#values", "shape", 0),
            ("positions", "data_offsets", 1), ("__metadata__", "paramcast", "<json>", "shapes", "features", 0),
            ("__metadata__", "paramcast", "<json>", "blocksize")} <= fields
    deep = struct.pack("<Q", 100_000) + b"[" * 100_000  # the reported history body
    with pytest.raises(HistoryError, match="not valid JSON: RecursionError"):
        decode_history(deep)
    header = b'{"__metadata__":{"paramcast":"{}","sha256":"x"},"x":{"dtype":[1],"shape":[1],"data_offsets":[0,4]}}'
    for body in (header, header.replace(b"[1],", b'{"a":1},', 1)):  # the reported upload, and an object dtype
        with pytest.raises(wire.WireError, match="dtype must be one of"):
            wire.decode(struct.pack("<Q", len(body)) + body + b"\0" * 4)


@pytest.mark.parametrize("decode, error, msg", [(wire.decode, wire.WireError, UPLOAD),
                                                (decode_history, HistoryError, HISTORY)])
def test_offsets_must_span_exactly_the_tensor(decode, error, msg):
    """Checked on the header, before safetensors sees the bytes: a span one element short, and one past the data."""
    name = "features#values" if msg is UPLOAD else "features"
    begin, end = json.loads(msg[8 : 8 + struct.unpack("<Q", msg[:8])[0]])[name]["data_offsets"]
    with pytest.raises(error, match="data_offsets span"):
        decode(with_field(msg, (name, "data_offsets"), json.dumps([begin, end - 4])))
    with pytest.raises(error, match="within the"):
        decode(with_field(msg, (name, "data_offsets", 1), str(len(msg))))
