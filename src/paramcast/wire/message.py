"""Uploads, heads and deltas as bytes and back (``paramcast.wire.encode`` / ``decode``).

A message is a safetensors file (written by ``_container.write``, read by ``safetensors.torch.load``): the payload's tensors, plus two
string entries in the safetensors ``__metadata__``:

* ``paramcast`` — canonical JSON (sorted keys, no spaces) of ``schema`` (:data:`SCHEMA_VERSION`),
  ``kind`` (``upload`` / ``head`` / ``delta``), ``device_id``, ``method``, ``task``,
  ``model_version``, ``quant``, ``blocksize``, ``shapes`` (original shape of every float tensor)
  and, for deltas, ``base_version``;
* ``sha256`` — hex digest over that JSON and every tensor (name, dtype, shape, bytes, in name order).

Float tensors (``features``, ``weight``, ``bias``, each delta) travel quantised by
:mod:`paramcast.compression` under the names ``<tensor>#<part>`` (e.g. ``weight#codes``; deltas are
``deltas/<parameter name>#<part>``); ``positions``, ``samples`` (N,) and ``text`` (S, L) travel as
int64 (``samples`` must index rows of ``text`` when both are there). Biases are
quantised with the weights: a bias error is added once per logit while a weight error is summed over
the H inputs, so the bias is never the dominant error, and an fp32 bias would cost a 96 -> 1500 int8
head 4 % of its bytes (and drop it below 3.9x smaller than fp32).

docs/design.md: CD-CCA's public code unpickles raw socket bytes; :func:`decode` never unpickles, never calls
``torch.load``, checks the size and the structure before parsing tensors, and raises one error type,
:class:`WireError`, for every malformation. The checksum detects corruption, not forgery (anyone can
recompute it): authenticity belongs to the transport.

Sizes (docs/design.md): an uplink of one 192-wide fp32 feature is 768 B of tensor data (0.75 KB); a
generated 96 -> 1500 fp32 head is (96 + 1) * 1500 * 4 B = 568.4 KB. :func:`tensor_nbytes` counts
tensor data only (what the seeds' tables count); :func:`nbytes` counts the whole message.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import torch
from safetensors.torch import load as _st_load

from paramcast import compression
from paramcast.types import QUANTS, HeadParams, Upload, WeightDelta
from paramcast.wire._container import (
    DTYPES,
    MAX_HEADER_BYTES,
    WireError,
    canonical,
    digest,
    read_header,
    short,
    write,
)

__all__ = ["KINDS", "MAX_ELEMENTS", "MAX_INDEX", "SCHEMA_VERSION", "WireError", "checksum", "decode", "encode",
           "nbytes", "tensor_nbytes"]

SCHEMA_VERSION = 1
MAX_ELEMENTS = 2**24  # per tensor: 64 MiB as fp32
MAX_TOTAL_ELEMENTS = 2**26  # per message, after dequantisation (NF4 expands 8x)
MAX_DIMS = 4
MAX_DELTAS = 4096
MAX_INDEX = 2**24  # positions / samples must lie in [0, MAX_INDEX)
_ID = re.compile(r"[A-Za-z0-9_.:@+=/\-]{0,128}")  # device ids, method, task, versions
_PARAM = re.compile(r"[A-Za-z0-9_.\-]{1,200}")  # parameter names of a WeightDelta
KINDS = {Upload: "upload", HeadParams: "head", WeightDelta: "delta"}
_META_KEYS = {
    "schema",
    "kind",
    "device_id",
    "method",
    "task",
    "model_version",
    "quant",
    "blocksize",
    "shapes",
}
_DTYPES = {k: DTYPES[k] for k in ("F32", "F16", "U8", "I64")}
_DELTA = "deltas/"


def checksum(meta_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """The ``sha256`` of a message (docs/wire.md §3): the ``paramcast`` JSON, then the tensors, compact."""
    return digest(tensors, prefix=meta_json)


def _check_id(field: str, value: object) -> str:
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise WireError(
            f"{field} must be a string of at most 128 characters from [A-Za-z0-9_.:@+=/-], got {short(value)}"
        )
    return value


def _check_shape(name: str, shape: object) -> tuple[int, ...]:
    if (
        not isinstance(shape, (list, tuple))
        or not 1 <= len(shape) <= MAX_DIMS
        or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape)
    ):
        raise WireError(f"shape of {short(name)} must be 1 to {MAX_DIMS} dims, each an int >= 1; got {short(shape)}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise WireError(f"{short(name)} has {math.prod(shape)} elements; at most {MAX_ELEMENTS} may travel")
    return tuple(shape)


def _float_tensors(payload: Upload | HeadParams | WeightDelta) -> dict[str, torch.Tensor]:
    """Logical name -> float tensor of a payload, in wire names."""
    if isinstance(payload, Upload):
        return {"features": payload.features}
    if isinstance(payload, HeadParams):
        return {"weight": payload.weight, "bias": payload.bias}
    if not isinstance(payload.deltas, dict) or len(payload.deltas) > MAX_DELTAS:
        raise WireError(f"WeightDelta.deltas must be a dict of at most {MAX_DELTAS} tensors")
    for name in payload.deltas:
        if not isinstance(name, str) or _PARAM.fullmatch(name) is None:
            raise WireError(f"parameter name {name!r} must be 1-200 characters from [A-Za-z0-9_.-]")
    return {_DELTA + name: t for name, t in payload.deltas.items()}


def _check_layout(kind: str, shapes: dict[str, tuple[int, ...]], index: dict[str, tuple[int, ...]]) -> None:
    """Shape rules per kind, shared by encode and decode."""
    if kind == "upload":
        if set(shapes) != {"features"} or len(shapes["features"]) != 2:
            raise WireError(f"an upload carries one 2-D 'features' (N, C); got {shapes}")
        n = shapes["features"][0]
        for name, s in index.items():
            if s != (n,):
                raise WireError(f"{name!r} must have shape ({n},) to match features (N, C); got {s}")
    elif kind == "head":
        w, b = shapes.get("weight"), shapes.get("bias")
        if set(shapes) != {"weight", "bias"} or len(w) != 2 or b != (w[0],):
            raise WireError(f"a head carries weight (V, H) and bias (V,); got {shapes}")
    elif any(not name.startswith(_DELTA) for name in shapes):
        raise WireError(f"a delta carries only '{_DELTA}<parameter>' tensors; got {sorted(shapes)}")
    if kind != "upload" and index:
        raise WireError(f"only uploads carry positions/samples; got {sorted(index)} in a {kind}")
    if sum(math.prod(s) for s in shapes.values()) > MAX_TOTAL_ELEMENTS:
        raise WireError(f"the message holds more than {MAX_TOTAL_ELEMENTS} float elements")


def _check_text_rows(tensors: dict[str, torch.Tensor]) -> None:
    """``samples`` must index rows of ``text`` when an upload carries both."""
    if "text" in tensors and "samples" in tensors and tensors["samples"].numel():
        if int(tensors["samples"].max()) >= tensors["text"].shape[0]:
            raise WireError(f"'samples' indexes row {int(tensors['samples'].max())} of 'text', which has "
                            f"{tensors['text'].shape[0]} rows")


def encode(
    payload: Upload | HeadParams | WeightDelta, quant: str | None = None, *, blocksize: int = 64
) -> bytes:
    """Serialise ``payload`` to safetensors bytes, float tensors quantised with ``quant``.

    ``quant=None`` uses ``payload.quant``. ``blocksize`` is the int8/NF4 block (bitsandbytes accepts
    32 ... 4096; 64 is QLoRA's). Raises :class:`WireError` for a payload that :func:`decode` would
    refuse (bad ids, shapes, dtypes, NaN/Inf, too large), so a sender learns of it first.
    """
    kind = KINDS.get(type(payload))
    if kind is None:
        raise WireError(f"cannot encode {type(payload).__name__}: expected Upload, HeadParams or WeightDelta")
    quant = payload.quant if quant is None else quant
    if quant not in QUANTS:
        raise WireError(f"quant must be one of {QUANTS}, got {quant!r}")
    if blocksize not in compression.BLOCKSIZES or isinstance(blocksize, bool):
        raise WireError(f"blocksize must be one of {compression.BLOCKSIZES}, got {blocksize!r}")
    meta: dict[str, Any] = {"schema": SCHEMA_VERSION, "kind": kind, "quant": quant, "blocksize": blocksize}
    for field in ("device_id", "method", "task", "model_version"):
        meta[field] = _check_id(field, getattr(payload, field))
    if kind == "delta":
        meta["base_version"] = _check_id("base_version", payload.base_version)

    floats = _float_tensors(payload)
    index: dict[str, torch.Tensor] = {}
    if kind == "upload":
        index = {
            k: v for k, v in (("positions", payload.positions), ("samples", payload.samples)) if v is not None
        }
        if payload.text is not None:
            t = payload.text
            if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or t.dim() != 2:
                raise WireError(f"'text' must be a 2-D int64 tensor (S, L), got "
                                f"{getattr(t, 'dtype', type(t).__name__)} {tuple(getattr(t, 'shape', ()))}")
            _check_shape("text", list(t.shape))
    shapes: dict[str, tuple[int, ...]] = {}
    for name, t in floats.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise WireError(f"{name!r} must be a float tensor, got {getattr(t, 'dtype', type(t).__name__)}")
        shapes[name] = _check_shape(name, list(t.shape))
    for name, t in index.items():
        if not isinstance(t, torch.Tensor) or t.dtype != torch.int64:
            raise WireError(f"{name!r} must be an int64 tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    _check_layout(kind, shapes, {k: tuple(v.shape) for k, v in index.items()})
    meta["shapes"] = {k: list(v) for k, v in shapes.items()}

    tensors: dict[str, torch.Tensor] = {}
    for name, t in floats.items():
        try:
            parts = compression.quantise(t, quant, blocksize)
        except ValueError as exc:
            raise WireError(f"cannot quantise {name!r} as {quant}: {exc}") from exc
        tensors.update({f"{name}#{part}": v.contiguous() for part, v in parts.items()})
    ints = dict(index)
    if kind == "upload" and payload.text is not None:
        ints["text"] = payload.text
    for name, t in ints.items():
        t = t.detach().cpu().contiguous()
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= MAX_INDEX):
            raise WireError(f"{name!r} values must lie in [0, {MAX_INDEX})")
        tensors[name] = t
    _check_text_rows(tensors)
    meta_json = canonical(meta)
    return write(tensors, {"paramcast": meta_json, "sha256": checksum(meta_json, tensors)})


def _parse_header(data: bytes) -> tuple[dict[str, str], dict[str, tuple[torch.dtype, tuple[int, ...]]]]:
    """Read the safetensors header ourselves, so limits apply before safetensors allocates anything."""
    raw_meta, entries = read_header(data, dtypes=_DTYPES)
    if set(raw_meta) != {"paramcast", "sha256"}:
        raise WireError("safetensors __metadata__ must hold exactly 'paramcast' and 'sha256'")
    return raw_meta, {name: (dtype, _check_shape(name, list(shape))) for name, (dtype, shape) in entries.items()}


def _parse_meta(raw: dict[str, str]) -> dict[str, Any]:
    if len(raw["paramcast"]) > MAX_HEADER_BYTES:
        raise WireError("paramcast metadata is too long")
    try:
        meta = json.loads(raw["paramcast"])
    except (ValueError, RecursionError) as exc:
        raise WireError(f"paramcast metadata is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise WireError("paramcast metadata must be a JSON object")
    schema = meta.get("schema")
    if isinstance(schema, bool) or schema != SCHEMA_VERSION:
        raise WireError(f"schema version {short(schema)} is not supported (this build reads {SCHEMA_VERSION})")
    kind = meta.get("kind")
    if kind not in ("upload", "head", "delta"):
        raise WireError(f"kind must be 'upload', 'head' or 'delta', got {short(kind)}")
    keys = _META_KEYS | ({"base_version"} if kind == "delta" else set())
    if set(meta) != keys:
        raise WireError(f"{kind} metadata keys must be {sorted(keys)}; got {short(sorted(meta))}")
    for field in ("device_id", "method", "task", "model_version") + (
        ("base_version",) if kind == "delta" else ()
    ):
        _check_id(field, meta[field])
    if meta["quant"] not in QUANTS:
        raise WireError(f"quant must be one of {QUANTS}, got {short(meta['quant'])}")
    if isinstance(meta["blocksize"], bool) or meta["blocksize"] not in compression.BLOCKSIZES:
        raise WireError(f"blocksize must be one of {compression.BLOCKSIZES}, got {short(meta['blocksize'])}")
    if not isinstance(meta["shapes"], dict) or (kind == "delta" and len(meta["shapes"]) > MAX_DELTAS):
        raise WireError("shapes must be an object of tensor name -> shape")
    for name in meta["shapes"]:
        if name.startswith(_DELTA) and _PARAM.fullmatch(name[len(_DELTA) :]) is None:
            raise WireError(f"parameter name {short(name)} must be 1-200 characters from [A-Za-z0-9_.-]")
    meta["shapes"] = {k: _check_shape(k, v) for k, v in meta["shapes"].items()}
    return meta


def decode(
    data: bytes, *, max_bytes: int = 64 * 2**20, expect: type | None = None
) -> Upload | HeadParams | WeightDelta:
    """Parse and validate a message from :func:`encode`; float tensors come back fp32 (dequantised).

    ``quant`` of the result says how the values travelled. ``expect`` (``Upload``, ``HeadParams`` or
    ``WeightDelta``) demands that kind. Raises :class:`WireError` — and nothing else — for anything
    malformed: too large, not safetensors, truncated, unknown schema/kind/tensors, wrong dtypes or
    shapes, bad ids, checksum mismatch, indices out of range, NaN/Inf after dequantisation.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"decode expects bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes exceeds max_bytes={max_bytes}")
    raw_meta, entries = _parse_header(data)
    meta = _parse_meta(raw_meta)
    kind, quant, blocksize, shapes = meta["kind"], meta["quant"], meta["blocksize"], meta["shapes"]
    if expect is not None and KINDS.get(expect) != kind:
        raise WireError(f"expected a {getattr(expect, '__name__', expect)} message, got kind {kind!r}")

    expected: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    for name, shape in shapes.items():
        for part, spec in compression.part_specs(shape, quant, blocksize).items():
            expected[f"{name}#{part}"] = spec
    index = {k: entries[k][1] for k in ("positions", "samples") if k in entries}
    expected.update({k: (torch.int64, s) for k, s in index.items()})
    _check_layout(kind, shapes, index)
    if "text" in entries:
        if kind != "upload" or len(entries["text"][1]) != 2:
            raise WireError(f"'text' is a 2-D (S, L) tensor of uploads only; got {entries['text'][1]} in a {kind}")
        _check_shape("text", list(entries["text"][1]))
        expected["text"] = (torch.int64, entries["text"][1])
    if set(entries) != set(expected):
        raise WireError(
            f"tensors {sorted(set(entries) - set(expected))} are unexpected and "
            f"{sorted(set(expected) - set(entries))} are missing for a {quant} {kind}"
        )
    for name, spec in expected.items():
        if entries[name] != spec:
            raise WireError(
                f"tensor {short(name)} must be {spec[0]} {spec[1]}, got {entries[name][0]} {entries[name][1]}"
            )

    try:
        tensors = _st_load(data)
    except Exception as exc:  # safetensors raises SafetensorError, ValueError, ... on bad offsets
        raise WireError(f"not a valid safetensors message: {type(exc).__name__}: {exc}") from exc
    if checksum(raw_meta["paramcast"], tensors) != raw_meta["sha256"]:
        raise WireError("sha256 checksum mismatch: the message was corrupted in transit")

    values: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        parts = {k.split("#", 1)[1]: v for k, v in tensors.items() if k.split("#", 1)[0] == name}
        values[name] = compression.dequantise(parts, quant, shape, blocksize)  # fp32, shape
        if not bool(torch.isfinite(values[name]).all()):
            raise WireError(f"{name!r} holds NaN or Inf after dequantisation")
    for name in [*index, *(["text"] if "text" in tensors else [])]:
        t = tensors[name]
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= MAX_INDEX):
            raise WireError(f"{name!r} values must lie in [0, {MAX_INDEX})")
    _check_text_rows(tensors)

    ids = {k: meta[k] for k in ("device_id", "method", "task", "model_version")}
    if kind == "upload":
        return Upload(
            **ids, features=values["features"], positions=tensors.get("positions"),
            samples=tensors.get("samples"), text=tensors.get("text"), quant=quant,
        )  # fmt: skip
    if kind == "head":
        return HeadParams(**ids, weight=values["weight"], bias=values["bias"], quant=quant)
    deltas = {name[len(_DELTA) :]: v for name, v in values.items()}
    return WeightDelta(**ids, deltas=deltas, base_version=meta["base_version"], quant=quant)


def tensor_nbytes(
    payload: Upload | HeadParams | WeightDelta, quant: str | None = None, *, blocksize: int = 64
) -> int:
    """Bytes of tensor data the payload travels as, from shapes only (no header; nothing is encoded).

    This is what the seeds' latency tables count: 768 B for one 192-wide fp32 feature,
    (96 + 1) * 1500 * 4 B = 568.4 KB for a 96 -> 1500 fp32 head.
    """
    quant = payload.quant if quant is None else quant
    total = sum(
        compression.payload_nbytes(tuple(t.shape), quant, blocksize) for t in _float_tensors(payload).values()
    )
    if isinstance(payload, Upload):
        total += sum(8 * t.numel() for t in (payload.positions, payload.samples, payload.text) if t is not None)
    return total


def nbytes(
    payload: Upload | HeadParams | WeightDelta, quant: str | None = None, *, blocksize: int = 64
) -> int:
    """Bytes of the whole encoded message, safetensors header and metadata included: ``len(encode(...))``."""
    return len(encode(payload, quant, blocksize=blocksize))
