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

from paramcast import wire
from paramcast.history_wire import HistoryError, decode_history, encode_history
from paramcast.types import HeadParams, Upload

_IDS = dict(device_id="dev-a", method="toy-hyper", task="toy", model_version="toy-1")
UPLOAD = wire.encode(Upload(**_IDS, features=torch.randn(2, 8), positions=torch.tensor([0, 3]),
                            samples=torch.tensor([0, 1]), text=torch.tensor([[1, 2], [3, 0]])))
HEAD = wire.encode(HeadParams(**_IDS, weight=torch.randn(5, 4), bias=torch.randn(5)), "int8")
HISTORY = encode_history("dev-a", "toy", torch.randn(3, 8), torch.tensor([0, 1, -1]), torch.randint(0, 9, (3, 4)))
_PH = "\x00placeholder\x00"


def _split(msg: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", msg[:8])
    return json.loads(msg[8 : 8 + n]), msg[8 + n :]


def _paths(msg: bytes, inner: bool) -> list[tuple]:
    """Every field of the header: the header itself, each key (and a new one) of each object, each
    list element, and, for wire messages, every field inside the ``paramcast`` metadata JSON."""
    header, _ = _split(msg)

    def walk(value, path):
        yield path
        if isinstance(value, dict):
            yield (*path, "new-key")
            for k, v in value.items():
                yield from walk(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from walk(v, (*path, i))

    paths = list(walk(header, ()))
    if inner:
        meta = json.loads(header["__metadata__"]["paramcast"])
        paths += [("__metadata__", "paramcast", "<json>", *p) for p in walk(meta, ())]
    return paths


def _set(obj, path, value):
    if not path:
        return value
    *head, last = path
    target = obj
    for k in head:
        target = target[k]
    target[last] = value
    return obj


def _with(msg: bytes, path: tuple, raw: str) -> bytes:
    """``msg`` with the field at ``path`` replaced by the JSON text ``raw`` (spliced in as text, so
    values ``json.dumps`` cannot write — 100,000-deep nesting, 5,000-digit numbers — travel too)."""
    header, data = _split(msg)
    ph = json.dumps(_PH)
    if "<json>" in path:
        i = path.index("<json>")
        meta = _set(json.loads(header["__metadata__"]["paramcast"]), path[i + 1 :], _PH)
        header["__metadata__"]["paramcast"] = json.dumps(meta).replace(ph, raw)
        text = json.dumps(header)
    else:
        text = json.dumps(_set(header, path, _PH)).replace(ph, raw)
    body = text.encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(body)) + body + data


_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
            | st.text(max_size=8))
_json = st.recursive(_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                     max_leaves=8).map(json.dumps)
_deep = st.integers(1, 100_000).flatmap(lambda d: st.sampled_from([
    "[" * d,                                    # never closed
    "[" * d + "]" * d,                          # valid JSON, d deep
    '{"a":' * d + "1" + "}" * d,                # objects, d deep
    '[{"dtype":' * d + '"F32"' + "}]" * d,      # a plausible value inside
]))
_odd = st.sampled_from(["1" + "0" * 5000, "-0", "1e999", "NaN", "-Infinity", '"\\ud800"', '"F32 "', '""',
                        "[1,2,3,4,5,6,7,8,9]", "[-1]", "[0, 18446744073709551616]", '"' + "x" * 5000 + '"'])
RAW = st.one_of(_json, _deep, _odd)
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _decodes_or_refuses(decode, error, msg):
    try:
        decode(msg)
    except error:
        return
    # only a value equal to the original (e.g. 1.0 for 1) can leave a valid message


@FUZZ
@given(st.sampled_from([(m, p) for m in (UPLOAD, HEAD) for p in _paths(m, inner=True)]), RAW)
def test_wire_header_fields_of_every_type(field, raw):
    msg, path = field
    _decodes_or_refuses(wire.decode, wire.WireError, _with(msg, path, raw))


@FUZZ
@given(st.sampled_from(_paths(HISTORY, inner=False)), RAW)
def test_history_header_fields_of_every_type(path, raw):
    _decodes_or_refuses(decode_history, HistoryError, _with(HISTORY, path, raw))


def test_the_fuzz_reaches_every_field_and_the_reported_bodies():
    paths = set(_paths(UPLOAD, inner=True))
    assert {(), ("__metadata__",), ("text", "dtype"), ("features#values", "shape", 0),
            ("positions", "data_offsets", 1), ("__metadata__", "paramcast", "<json>", "shapes", "features", 0),
            ("__metadata__", "paramcast", "<json>", "blocksize")} <= paths
    deep = struct.pack("<Q", 100_000) + b"[" * 100_000  # the reported history body
    with pytest.raises(HistoryError, match="not valid JSON: RecursionError"):
        decode_history(deep)
    header = b'{"__metadata__":{"paramcast":"{}","sha256":"x"},"x":{"dtype":[1],"shape":[1],"data_offsets":[0,4]}}'
    for body in (header, header.replace(b"[1],", b'{"a":1},', 1)):  # the reported upload, and an object dtype
        with pytest.raises(wire.WireError, match="dtype must be one of"):
            wire.decode(struct.pack("<Q", len(body)) + body + b"\0" * 4)
