"""Write the golden wire vectors of docs/wire.md into this folder (or ``--out DIR``).

    PYTHONPATH=src python tests/vectors/generate.py            # rewrite tests/vectors/
    PYTHONPATH=src python tests/vectors/generate.py --out /tmp/v

Every valid message is made by :func:`paramcast.wire.encode` (or
:func:`paramcast.wire.history.encode_history`); every malformed one is a valid message changed in one
way, and its expected error is what :func:`paramcast.wire.decode` says about it. ``manifest.json``
lists them all. tests/test_vectors.py regenerates the folder and demands the same files (the same
tensor bytes and the same header JSON: safetensors writes ``__metadata__`` keys in hash-map order, so
the header's text may differ run to run), so the vectors can never drift from the code; clients
(clients/node) decode them from the spec alone.

Files:

* ``<name>.bin``                    the message exactly as it travels;
* ``<name>.expected.safetensors``   what a decoder must produce: every float tensor as fp32 under its
  logical name (``weight``, ``bias``, ``features``, ``deltas/<param>``), every int64 tensor as is;
* ``codebooks.json``                the int8 dynamic map and the NF4 levels as float32 values;
* ``manifest.json``                 per vector: file, kind, quant, blocksize, ids, sizes, and for a
  malformed one the decoder that must refuse it, the service's answer and the decoder's message.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as st_save

from paramcast import compression, wire
from paramcast.types import HeadParams, Upload, WeightDelta
from paramcast.wire.history import HistoryError, decode_history, encode_history

HERE = Path(__file__).resolve().parent
IDS = {"device_id": "dev-a", "method": "cdc-mmpg", "task": "videoqa-open", "model_version": "v-test"}


def _randn(g: np.random.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    # numpy's generator: the vectors' values do not depend on torch's RNG
    return torch.from_numpy((g.standard_normal(shape) * scale).astype(np.float32))


def _valid(g: np.random.Generator) -> list[tuple[str, object, str, int]]:
    """(name, payload, quant, blocksize) of every valid vector."""
    up = Upload(**IDS, features=_randn(g, 1, 8))
    uts = Upload(**IDS, features=_randn(g, 3, 8), positions=torch.tensor([0, 5, 2]), samples=torch.tensor([0, 0, 1]),
                 text=torch.tensor([[1, 7, 9, 0], [1, 4, 0, 0]]))
    small = HeadParams(**IDS, weight=_randn(g, 5, 13, scale=0.2), bias=_randn(g, 5, scale=0.1))  # 65 + 5 elements: odd
    big = HeadParams(**IDS, weight=_randn(g, 97, 96, scale=0.05), bias=_randn(g, 97, scale=0.01))  # 291 blocks of 32
    delta = WeightDelta(**IDS, base_version="base-1",
                        deltas={"lora.a": _randn(g, 4, 8, scale=1e-2), "lora.b": _randn(g, 8, 4, scale=1e-2)})
    return [
        ("upload-fp32", up, "fp32", 64),
        ("upload-uts-fp32", uts, "fp32", 64),
        ("upload-int8", up, "int8", 64),
        ("head-fp32", small, "fp32", 64),
        ("head-fp16", small, "fp16", 64),
        ("head-int8", small, "int8", 64),
        ("head-nf4", small, "nf4", 64),
        ("head-int8-b32-2groups", big, "int8", 32),
        ("head-nf4-b32-2groups", big, "nf4", 32),
        ("delta-nf4", delta, "nf4", 64),
        ("delta-fp16", delta, "fp16", 64),
    ]


def _expected(payload) -> dict[str, torch.Tensor]:
    if isinstance(payload, Upload):
        out = {"features": payload.features}
        out.update({k: getattr(payload, k) for k in ("positions", "samples", "text") if getattr(payload, k) is not None})
        return out
    if isinstance(payload, HeadParams):
        return {"weight": payload.weight, "bias": payload.bias}
    return {"deltas/" + k: v for k, v in payload.deltas.items()}


def _ids(payload) -> dict:
    out = {k: getattr(payload, k) for k in IDS}
    if isinstance(payload, WeightDelta):
        out["base_version"] = payload.base_version
    return out


def _rebuild(meta: dict, tensors: dict[str, torch.Tensor], checksum: str | None = None) -> bytes:
    """A message from metadata and tensors, with a correct checksum unless one is given."""
    meta_json = wire._container.canonical(meta)
    return st_save(tensors, metadata={"paramcast": meta_json, "sha256": checksum or wire.message.checksum(meta_json, tensors)})


def _parts(message: bytes) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors.torch import load

    header_len = int.from_bytes(message[:8], "little")
    meta = json.loads(json.loads(message[8 : 8 + header_len])["__metadata__"]["paramcast"])
    return meta, load(message)


def _malformed(valid: dict[str, bytes]) -> list[tuple[str, bytes, str]]:
    """(name, bytes, what is wrong) of every malformed wire message."""
    out: list[tuple[str, bytes, str]] = []
    head = valid["head-fp32"]
    out.append(("bad-too-short", head[:5], "fewer than 8 bytes"))
    out.append(("bad-header-length", (2**40).to_bytes(8, "little") + b'{"__metadata__":{}}', "header length beyond the message"))
    out.append(("bad-truncated", head[:-7], "tensor data cut short"))
    out.append(("bad-not-json", (16).to_bytes(8, "little") + b"\xff" * 16, "header is not UTF-8 JSON"))
    flipped = bytearray(head)
    flipped[-1] ^= 0x01
    out.append(("bad-checksum", bytes(flipped), "one bit of tensor data flipped: sha256 mismatch"))

    meta, tensors = _parts(head)
    out.append(("bad-schema", _rebuild({**meta, "schema": 2}, tensors), "schema 2 (readers accept only 1)"))
    out.append(("bad-extra-key", _rebuild({**meta, "extra": 1}, tensors), "an unknown metadata key"))
    out.append(("bad-device-id", _rebuild({**meta, "device_id": "dev a!"}, tensors), "device_id with a space"))
    out.append(("bad-quant", _rebuild({**meta, "quant": "int4"}, tensors), "unknown quant"))
    out.append(("bad-blocksize", _rebuild({**meta, "blocksize": 48}, tensors), "blocksize not a power of two in 32..4096"))
    nan = dict(tensors)
    nan["bias#values"] = tensors["bias#values"].clone()
    nan["bias#values"][0] = float("nan")
    out.append(("bad-nan", _rebuild(meta, nan), "a NaN in the bias (checksum correct)"))
    extra = {**tensors, "weight#extra": torch.zeros(1)}
    out.append(("bad-unexpected-tensor", _rebuild(meta, extra), "a tensor the layout does not name"))
    wrong_shape = {**meta, "shapes": {**meta["shapes"], "bias": [4]}}
    out.append(("bad-bias-shape", _rebuild(wrong_shape, tensors), "bias (4,) for weight (5, 13)"))

    meta4, t4 = _parts(valid["head-nf4"])
    short = {**t4, "weight#codes": t4["weight#codes"][:-1].clone()}
    out.append(("bad-nf4-codes-length", _rebuild(meta4, short), "NF4 codes one byte short"))
    as_i64 = {**t4, "bias#absmax_codes": t4["bias#absmax_codes"].to(torch.int64)}
    out.append(("bad-part-dtype", _rebuild(meta4, as_i64), "absmax codes as I64 instead of U8"))

    metau, tu = _parts(valid["upload-uts-fp32"])
    out.append(("bad-samples-range", _rebuild(metau, {**tu, "samples": torch.tensor([0, 0, 2])}),
                "samples indexes row 2 of a 2-row text"))
    out.append(("bad-negative-position", _rebuild(metau, {**tu, "positions": torch.tensor([0, -1, 2])}),
                "a negative position"))
    return out


def _history_vectors(g: np.random.Generator) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes, str]]]:
    feats, labels = _randn(g, 3, 8), torch.tensor([2, -1, 0])
    question = torch.tensor([[1, 5, 6, 0, 0], [1, 9, 0, 0, 0], [1, 4, 4, 7, 0]])
    good = encode_history("dev-a", "videoqa-open", feats, labels, question)
    plain = encode_history("dev-a", "videoqa-open", feats[:1], labels[:1])
    header_len = int.from_bytes(good[:8], "little")
    meta = json.loads(good[8 : 8 + header_len])["__metadata__"]
    from safetensors.torch import load

    tensors = load(good)
    bad_labels = {**tensors, "labels": torch.tensor([2, -2, 0])}
    from paramcast.wire.history import digest

    malformed = [
        ("history-bad-checksum", st_save({**tensors, "labels": torch.tensor([2, 1, 0])}, metadata=meta),
         "labels changed after the digest"),
        ("history-bad-labels", st_save(bad_labels, metadata={**meta, "sha256": digest(bad_labels)}),
         "a label below -1 (digest correct)"),
        ("history-bad-schema", st_save(tensors, metadata={**meta, "schema": "paramcast.history/2"}), "schema /2"),
        ("history-rows-differ", st_save({**tensors, "labels": labels[:2].clone()},
                                        metadata={**meta, "sha256": digest({**tensors, "labels": labels[:2].clone()})}),
         "3 feature rows, 2 labels"),
    ]
    return [("history", good), ("history-no-question", plain)], malformed


def generate(out: Path) -> list[Path]:
    """Write every vector into ``out``; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(20)
    written: list[Path] = []
    manifest: dict = {"schema": wire.SCHEMA_VERSION, "history_schema": "paramcast.history/1",
                      "note": "generated by tests/vectors/generate.py; see docs/wire.md", "valid": [], "malformed": []}

    def put(name: str, data: bytes) -> str:
        (out / name).write_bytes(data)
        written.append(out / name)
        return name

    valid_bytes: dict[str, bytes] = {}
    for name, payload, quant, blocksize in _valid(g):
        data = wire.encode(payload, quant, blocksize=blocksize)
        decoded = wire.decode(data)
        valid_bytes[name] = data
        expected = {k: v.contiguous() for k, v in _expected(decoded).items()}
        manifest["valid"].append({
            "name": name, "file": put(f"{name}.bin", data),
            "expected": put(f"{name}.expected.safetensors", st_save(expected)),
            "kind": wire.message.KINDS[type(payload)], "quant": quant, "blocksize": blocksize, **_ids(payload),
            "shapes": {k: list(v.shape) for k, v in expected.items()},
            "bytes": len(data), "tensor_bytes": wire.tensor_nbytes(payload, quant, blocksize=blocksize),
            # the largest |decoded - original| (0 for fp32): how lossy the layout is on this tensor
            "max_abs_error": max(float((v - _expected(payload)[k].float()).abs().max()) for k, v in expected.items()
                                 if v.is_floating_point()),
        })
    for name, data, why in _malformed(valid_bytes):
        try:
            wire.decode(data)
        except wire.WireError as exc:
            message = str(exc)
        else:  # pragma: no cover - the generator's own check
            raise AssertionError(f"{name} decodes; it is meant to be malformed")
        manifest["malformed"].append({"name": name, "file": put(f"{name}.bin", data), "decoder": "wire", "why": why,
                                      "error": message, "service": {"status": 400, "error": "bad_payload"}})

    history_ok, history_bad = _history_vectors(g)
    for name, data in history_ok:
        batch = decode_history(data)
        manifest["valid"].append({
            "name": name, "file": put(f"{name}.bin", data),
            "expected": put(f"{name}.expected.safetensors", st_save(dict(batch.tensors))),
            "kind": "history", "device_id": batch.device_id, "task": batch.task,
            "shapes": {k: list(v.shape) for k, v in batch.tensors.items()}, "bytes": len(data),
})
    for name, data, why in history_bad:
        try:
            decode_history(data)
        except HistoryError as exc:
            message = str(exc)
        else:  # pragma: no cover
            raise AssertionError(f"{name} decodes; it is meant to be malformed")
        manifest["malformed"].append({"name": name, "file": put(f"{name}.bin", data), "decoder": "history", "why": why,
                                      "error": message, "service": {"status": 400, "error": "bad_history"}})

    dynamic = compression._quant._bnb().create_dynamic_map(signed=True)
    codebooks = {"int8_dynamic_map": [float(v) for v in dynamic.tolist()],
                 "nf4_levels": [float(torch.tensor(v, dtype=torch.float32)) for v in compression.NF4_LEVELS],
                 "absmax_blocksize": compression._quant._ABSMAX_BLOCKSIZE}
    put("codebooks.json", (json.dumps(codebooks, indent=1) + "\n").encode())
    put("manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    files = generate(args.out)
    print(f"wrote {len(files)} files to {args.out}")


if __name__ == "__main__":
    main()
