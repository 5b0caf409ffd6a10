"""Mutating one field of a safetensors header to any JSON text: shared by tests/test_header_fuzz.py
(the decoders) and tests/cloud/test_fuzz.py (the routes)."""

from __future__ import annotations

import json
import struct

from hypothesis import strategies as st

_PH = "\x00placeholder\x00"


def _split(msg: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", msg[:8])
    return json.loads(msg[8 : 8 + n]), msg[8 + n :]


def paths(msg: bytes, inner: bool) -> list[tuple]:
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


def with_field(msg: bytes, path: tuple, raw: str) -> bytes:
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
