"""What both codecs of :mod:`paramcast.wire` share: the safetensors container, its digest, the errors.

:mod:`paramcast.wire.message` (uploads, heads, deltas) and :mod:`paramcast.wire.history` (history
bodies) read a received header themselves with :func:`read_header`, before ``safetensors`` allocates
anything, so that their limits apply first. It checks every JSON value's *type* before using it (a
``dtype`` that is a list, a shape that is an object, ``[`` nested 100,000 deep, a number with
10,000 digits), so a malformed header raises the caller's error type and nothing else; the callers
then apply their own rules (which tensors, which shapes, which metadata keys).

One error hierarchy: :class:`WireError` (a ``ValueError``) for any refused bytes;
:class:`~paramcast.wire.history.HistoryError` (and its :class:`~paramcast.wire.history.LabelError`)
derive from it, so that the service can answer a history body differently (``bad_history``, 422).

:func:`digest` is the one checksum: SHA-256 over an optional prefix, then every tensor's
``[name, torch dtype, shape]`` JSON and bytes in name order. The two formats differ only in the
prefix and the JSON separators (docs/wire.md §3 and §5), frozen by the golden vectors.
"""

from __future__ import annotations

import hashlib
import json
import math
import reprlib
import struct
from collections.abc import Mapping

import torch

__all__ = ["COMPACT", "DTYPES", "MAX_HEADER_BYTES", "Entry", "WireError", "canonical", "digest", "read_header",
           "short", "write"]

Entry = tuple[torch.dtype, tuple[int, ...]]
MAX_DIMS = 8  # any tensor; the decoders allow fewer
MAX_HEADER_BYTES = 2**20  # the safetensors header of any message (docs/wire.md §1)
COMPACT = (",", ":")  # JSON separators of canonical text
#: every dtype safetensors writes from torch (a decoder passes the subset it accepts, so a wrong one is named)
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
_NAMES = {v: k for k, v in DTYPES.items()}
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}
_repr = reprlib.Repr()  # keyword arguments need Python 3.12
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict, _repr.maxlevel = 40, 40, 6, 6, 3


class WireError(ValueError):
    """Received bytes (or a payload to encode) are malformed; the message says what is wrong."""


def canonical(value: object) -> str:
    """Canonical JSON: sorted keys, no spaces, ASCII only (docs/wire.md §2)."""
    return json.dumps(value, sort_keys=True, separators=COMPACT, ensure_ascii=True)


def digest(tensors: Mapping[str, torch.Tensor], *, prefix: str = "", separators: tuple[str, str] = COMPACT) -> str:
    """SHA-256 hex of ``prefix``, then per tensor in name order its ``[name, dtype, shape]`` JSON (with
    ``separators``) and its little-endian, row-major bytes."""
    h = hashlib.sha256(prefix.encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)], sort_keys=True, separators=separators,
                            ensure_ascii=True).encode())
        h.update(_buffer(t))  # the buffer itself: no copy
    return h.hexdigest()


def _buffer(t: torch.Tensor):
    """The bytes of a contiguous CPU tensor, without copying them."""
    return t.detach().cpu().reshape(-1).view(torch.uint8).numpy() if t.numel() else b""


def write(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """The safetensors file of ``tensors`` (contiguous, on the CPU, dtypes of :data:`DTYPES`) with
    ``metadata`` as ``__metadata__``, made with one copy of the data: the header and every tensor's
    own buffer joined once into the result (``safetensors.torch.save`` copies it into a Rust buffer
    and again into ``bytes``). Layout as safetensors writes it: tensors by itemsize, largest first
    (each aligned to it), then by name; the header padded with spaces to a multiple of 8; keys of
    ``__metadata__`` sorted (safetensors' are in hash order; docs/wire.md §1: any order is valid)."""
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    parts, offset = [], 0
    for name in sorted(tensors, key=lambda k: (-tensors[k].element_size(), k)):
        t = tensors[name]
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        parts.append(_buffer(t))
        offset += n
    text = json.dumps(header, separators=COMPACT, ensure_ascii=True).encode()
    text += b" " * (-len(text) % 8)
    return b"".join([struct.pack("<Q", len(text)), text, *parts])


def short(value: object) -> str:
    """A bounded ``repr`` for error messages: a received value can be a megabyte of nesting."""
    return _repr.repr(value)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_header(data: bytes, *, dtypes: Mapping[str, torch.dtype], error: type[WireError] = WireError,
                max_header_bytes: int = MAX_HEADER_BYTES) -> tuple[dict[str, str], dict[str, Entry]]:
    """``(metadata, entries)`` of the safetensors message ``data``; raise ``error`` on anything else.

    ``metadata`` is the ``__metadata__`` object (``{}`` when absent), every value a string.
    ``entries`` maps each tensor name to ``(dtype, shape)``: ``dtype`` one of ``dtypes`` (safetensors
    names, e.g. ``"F32"``), ``shape`` at most :data:`MAX_DIMS` ints >= 0, and ``data_offsets`` two ints
    that lie in the data section and span exactly the tensor's bytes.
    """
    if len(data) < 8:
        raise error(f"message of {len(data)} bytes is too short to be safetensors (8-byte header length)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > max_header_bytes or n > len(data) - 8:
        raise error(f"safetensors header length {n} is beyond the {len(data)}-byte message or {max_header_bytes} B")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: '[' * 100_000
        raise error(f"safetensors header is not valid JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(header, dict):
        raise error(f"safetensors header must be a JSON object, got {type(header).__name__}")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise error(f"safetensors __metadata__ must be an object of strings, got {short(meta)}")
    data_len = len(data) - 8 - n
    entries: dict[str, Entry] = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != _ENTRY_KEYS:
            raise error(f"tensor {short(name)}: entry must be an object with keys {sorted(_ENTRY_KEYS)}, "
                        f"got {short(info)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in dtypes:
            raise error(f"tensor {short(name)}: dtype must be one of {sorted(dtypes)}, got {short(dtype)}")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_int(d) and d >= 0 for d in shape):
            raise error(f"tensor {short(name)}: shape must be a list of at most {MAX_DIMS} ints >= 0, "
                        f"got {short(shape)}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_len):
            raise error(f"tensor {short(name)}: data_offsets must be [begin, end] within the {data_len}-byte "
                        f"data section, got {short(offsets)}")
        size = math.prod(shape) * dtypes[dtype].itemsize
        if offsets[1] - offsets[0] != size:
            raise error(f"tensor {short(name)}: data_offsets span {offsets[1] - offsets[0]} bytes, but a "
                        f"{dtype} {shape} tensor has {size}")
        entries[name] = (dtypes[dtype], tuple(shape))
    return meta, entries
