"""The golden wire vectors (tests/vectors/) against the code and against docs/wire.md.

1. Regenerating them gives the committed bytes (they cannot drift from ``paramcast.wire``).
2. A decoder written from docs/wire.md alone — numpy, ``struct``, ``hashlib``; no safetensors, no
   bitsandbytes, no torch — decodes every valid vector to exactly the expected tensors and refuses
   every malformed one. It is the spec in executable form; clients/node implements the same.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest

import vectors.generate as gen  # tests/ is on pytest's pythonpath

VECTORS = Path(__file__).parent / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())
CODEBOOKS = json.loads((VECTORS / "codebooks.json").read_text())


def test_regenerated_vectors_are_byte_identical(tmp_path):
    files = gen.generate(tmp_path)
    committed = {p.name for p in VECTORS.iterdir() if p.is_file() and p.suffix != ".py"}
    assert {p.name for p in files} == committed
    for p in files:
        assert _same_file(p.read_bytes(), (VECTORS / p.name).read_bytes(), p.suffix), (
            f"{p.name} drifted from the code: rerun tests/vectors/generate.py")


def _same_file(a: bytes, b: bytes, suffix: str) -> bool:
    """Equal as files a reader sees: JSON equal, or safetensors with equal header JSON and data bytes
    (safetensors writes ``__metadata__`` keys in hash-map order, so the header text is not fixed)."""
    if suffix == ".json":
        return json.loads(a) == json.loads(b)
    if len(a) < 8 or len(b) < 8 or a[:8] != b[:8] or len(a) != len(b):
        return a == b
    n = struct.unpack("<Q", a[:8])[0]
    try:
        same_header = json.loads(a[8 : 8 + n]) == json.loads(b[8 : 8 + n])
    except ValueError:  # the malformed vectors whose header is not JSON
        return a == b
    return same_header and a[8 + n :] == b[8 + n :]


# ---- a decoder from docs/wire.md ---------------------------------------------------------------
DTYPES = {"F32": ("<f4", "torch.float32"), "F16": ("<f2", "torch.float16"), "U8": ("u1", "torch.uint8"),
          "I64": ("<i8", "torch.int64")}
ID = re.compile(r"[A-Za-z0-9_.:@+=/\-]{0,128}")
BLOCKSIZES = [2**k for k in range(5, 13)]
META_KEYS = {"schema", "kind", "device_id", "method", "task", "model_version", "quant", "blocksize", "shapes"}


class Refused(Exception):
    pass


def read_safetensors(data: bytes) -> tuple[dict, dict[str, tuple[str, np.ndarray]]]:
    """(``__metadata__``, name -> (dtype code, array)) per docs/wire.md §1."""
    if len(data) < 8:
        raise Refused("short")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 2**20:
        raise Refused("header length")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused("header json") from exc
    meta = header.pop("__metadata__", None)
    body = data[8 + n :]
    tensors, covered = {}, 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        if info["dtype"] not in DTYPES:
            raise Refused(f"dtype {info['dtype']}")
        start, end = info["data_offsets"]
        np_dtype = np.dtype(DTYPES[info["dtype"]][0])
        if start != covered or end > len(body) or end - start != math.prod(info["shape"]) * np_dtype.itemsize:
            raise Refused("offsets")
        covered = end
        tensors[name] = (info["dtype"], np.frombuffer(body[start:end], np_dtype).reshape(info["shape"]))
    if covered != len(body):
        raise Refused("data not covered")
    return meta, tensors


def digest(prefix: bytes, tensors: dict, separators: tuple[str, str]) -> str:
    h = hashlib.sha256(prefix)
    for name in sorted(tensors):
        code, arr = tensors[name]
        h.update(json.dumps([name, DTYPES[code][1], list(arr.shape)], separators=separators).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def dequantise(parts: dict, quant: str, shape: list[int], blocksize: int) -> np.ndarray:
    n = math.prod(shape)
    if quant in ("fp32", "fp16"):
        want = {"values": ("F32" if quant == "fp32" else "F16", shape)}
    else:
        nb = -(-n // blocksize)
        want = {"codes": ("U8", [n if quant == "int8" else -(-n // 2)]), "absmax_codes": ("U8", [nb]),
                "absmax_scale": ("F32", [-(-nb // 256)]), "absmax_offset": ("F32", [1])}
    if set(parts) != set(want) or any((parts[k][0], list(parts[k][1].shape)) != v for k, v in want.items()):
        raise Refused("parts")
    if quant in ("fp32", "fp16"):
        return parts["values"][1].astype(np.float32)
    dyn = np.array(CODEBOOKS["int8_dynamic_map"], np.float32)
    nf4 = np.array(CODEBOOKS["nf4_levels"], np.float32)
    nb = len(parts["absmax_codes"][1])
    absmax = dyn[parts["absmax_codes"][1]] * parts["absmax_scale"][1][np.arange(nb) // 256] + parts["absmax_offset"][1][0]
    codes = parts["codes"][1]
    if quant == "int8":
        levels = dyn[codes]
    else:
        levels = nf4[np.stack([codes >> 4, codes & 15], 1).reshape(-1)[:n]]  # high nibble first
    return (levels * absmax[np.arange(n) // blocksize]).astype(np.float32).reshape(shape)


def decode_message(data: bytes) -> dict[str, np.ndarray]:
    raw, tensors = read_safetensors(data)
    if not isinstance(raw, dict) or set(raw) != {"paramcast", "sha256"}:
        raise Refused("metadata keys")
    meta = json.loads(raw["paramcast"])
    if meta.get("schema") != 1 or meta.get("kind") not in ("upload", "head", "delta"):
        raise Refused("schema/kind")
    if set(meta) != META_KEYS | ({"base_version"} if meta["kind"] == "delta" else set()):
        raise Refused("keys")
    ids = ["device_id", "method", "task", "model_version"] + (["base_version"] if meta["kind"] == "delta" else [])
    if any(not isinstance(meta[k], str) or not ID.fullmatch(meta[k]) for k in ids):
        raise Refused("ids")
    if meta["quant"] not in ("fp32", "fp16", "int8", "nf4") or meta["blocksize"] not in BLOCKSIZES:
        raise Refused("quant/blocksize")
    if digest(raw["paramcast"].encode(), tensors, (",", ":")) != raw["sha256"]:
        raise Refused("sha256")
    shapes, kind = meta["shapes"], meta["kind"]
    if kind == "head" and (set(shapes) != {"weight", "bias"} or shapes["bias"] != shapes["weight"][:1]):
        raise Refused("head shapes")
    if kind == "upload" and set(shapes) != {"features"}:
        raise Refused("upload shapes")
    if kind == "delta" and not all(k.startswith("deltas/") for k in shapes):
        raise Refused("delta names")
    out, used = {}, set()
    for name, shape in shapes.items():
        parts = {k.split("#", 1)[1]: v for k, v in tensors.items() if k.split("#", 1)[0] == name and "#" in k}
        used |= {f"{name}#{p}" for p in parts}
        out[name] = dequantise(parts, meta["quant"], shape, meta["blocksize"])
        if not np.isfinite(out[name]).all():
            raise Refused("non-finite")
    rows = shapes["features"][0] if kind == "upload" else None
    for name in ("positions", "samples", "text"):
        if name in tensors:
            code, arr = tensors[name]
            if kind != "upload" or code != "I64" or (name != "text" and arr.shape != (rows,)) or (arr < 0).any():
                raise Refused(name)
            out[name], used = arr, used | {name}
    if "samples" in out and "text" in out and out["samples"].max() >= len(out["text"]):
        raise Refused("samples beyond text")
    if used != set(tensors):
        raise Refused("unexpected tensors")
    return out


def decode_history_body(data: bytes) -> dict[str, np.ndarray]:
    meta, tensors = read_safetensors(data)
    if not isinstance(meta, dict) or set(meta) != {"schema", "device_id", "task", "sha256"}:
        raise Refused("metadata keys")
    if meta["schema"] != "paramcast.history/1":
        raise Refused("schema")
    spec = {"features": ("F32", 2), "labels": ("I64", 1), "question": ("I64", 2)}
    if not {"features", "labels"} <= set(tensors) <= set(spec):
        raise Refused("tensors")
    if any((c, a.ndim) != spec[k] for k, (c, a) in tensors.items()) or len({a.shape[0] for _, a in tensors.values()}) != 1:
        raise Refused("dtypes/rows")
    if (tensors["labels"][1] < -1).any() or not np.isfinite(tensors["features"][1]).all():
        raise Refused("values")
    if digest(b"", tensors, (", ", ": ")) != meta["sha256"]:
        raise Refused("sha256")
    return {k: a for k, (_, a) in tensors.items()}


@pytest.mark.parametrize("vec", MANIFEST["valid"], ids=lambda v: v["name"])
def test_spec_decoder_matches_expected(vec):
    data = (VECTORS / vec["file"]).read_bytes()
    assert len(data) == vec["bytes"]
    got = decode_history_body(data) if vec["kind"] == "history" else decode_message(data)
    _, expected = read_safetensors((VECTORS / vec["expected"]).read_bytes())
    assert set(got) == set(expected)
    for name, (_, want) in expected.items():
        assert got[name].dtype == want.dtype and got[name].shape == want.shape
        assert np.array_equal(got[name], want), name  # bit-exact, the same arithmetic as bitsandbytes


@pytest.mark.parametrize("vec", MANIFEST["malformed"], ids=lambda v: v["name"])
def test_spec_decoder_refuses_malformed(vec):
    data = (VECTORS / vec["file"]).read_bytes()
    with pytest.raises((Refused, KeyError, TypeError, ValueError)):
        (decode_history_body if vec["decoder"] == "history" else decode_message)(data)


def test_codebooks_are_the_ones_the_code_uses():
    from paramcast import compression

    assert CODEBOOKS["nf4_levels"] == [float(np.float32(v)) for v in compression.NF4_LEVELS]
    dyn = np.array(CODEBOOKS["int8_dynamic_map"], np.float32)
    assert len(dyn) == 256 and (np.diff(dyn) >= 0).all() and dyn[-1] == 1.0 and dyn[127] == 0.0
