"""wire: every payload kind round-trips under every scheme; every malformed message raises WireError."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paramcast import wire
from paramcast.compression import error_bound
from paramcast.types import QUANTS, HeadParams, Upload, WeightDelta
from paramcast.wire import WireError, decode, encode

IDS = dict(device_id="dev-07", method="fda_adr", task="open_qa", model_version="v1")
_g = torch.Generator().manual_seed(0)
HEAD = HeadParams(
    **IDS, weight=torch.randn(1500, 96, generator=_g) * 0.05, bias=torch.randn(1500, generator=_g) * 0.01
)
UPLOAD = Upload(**IDS, features=torch.randn(1, 192, generator=_g))
UTS = Upload(
    **IDS,
    features=torch.randn(6, 192, generator=_g),  # (N, C)
    positions=torch.tensor([0, 3, 9, 1, 2, 40]),  # (N,)
    samples=torch.tensor([0, 0, 0, 1, 1, 2]),  # (N,)
)
DELTA = WeightDelta(
    **IDS,
    deltas={
        "adapter.0.weight": torch.randn(16, 48, generator=_g) * 1e-3,
        "adapter.0.bias": torch.randn(16, generator=_g),
    },
    base_version="v0",
)
SMALL = {q: encode(HeadParams(**IDS, weight=HEAD.weight[:20, :10], bias=HEAD.bias[:20]), q) for q in QUANTS}


def _close(got: torch.Tensor, want: torch.Tensor, quant: str) -> None:
    assert got.dtype == torch.float32 and got.shape == want.shape
    if quant == "fp32":
        assert torch.equal(got, want)
    else:
        assert ((got - want).abs() <= error_bound(want, quant)).all()


@pytest.mark.parametrize("quant", QUANTS)
def test_roundtrip_every_kind(quant):
    head = decode(encode(HEAD, quant), expect=HeadParams)
    assert (head.device_id, head.method, head.task, head.model_version, head.quant) == (*IDS.values(), quant)
    _close(head.weight, HEAD.weight, quant)
    _close(head.bias, HEAD.bias, quant)

    up = decode(encode(UTS, quant), expect=Upload)
    _close(up.features, UTS.features, quant)
    assert torch.equal(up.positions, UTS.positions) and torch.equal(up.samples, UTS.samples)
    assert up.positions.dtype == torch.int64
    assert decode(encode(UPLOAD, quant)).positions is None

    delta = decode(encode(DELTA, quant), expect=WeightDelta)
    assert delta.base_version == "v0" and set(delta.deltas) == set(DELTA.deltas)
    for name, t in DELTA.deltas.items():
        _close(delta.deltas[name], t, quant)


def test_quant_none_uses_payload_quant_and_empty_delta_travels():
    assert decode(encode(HeadParams(**IDS, weight=HEAD.weight, bias=HEAD.bias, quant="nf4"))).quant == "nf4"
    assert decode(encode(WeightDelta(**IDS))).deltas == {}


@pytest.mark.parametrize("quant", QUANTS)
def test_tensor_nbytes_counts_tensor_data_and_nbytes_the_message(quant):
    msg = encode(HEAD, quant)
    assert wire.nbytes(HEAD, quant) == len(msg)
    (header_len,) = struct.unpack("<Q", msg[:8])
    assert wire.tensor_nbytes(HEAD, quant) == len(msg) - 8 - header_len


def test_design_sizes():
    # docs/design.md: uplink 192 fp32 = 0.75 KB; downlink 96 -> 1500 fp32 head = 568.4 KB.
    assert wire.tensor_nbytes(UPLOAD) == 768
    assert round(wire.tensor_nbytes(HEAD) / 1024, 1) == 568.4
    assert wire.tensor_nbytes(HEAD) / wire.tensor_nbytes(HEAD, "int8") >= 3.9
    assert wire.tensor_nbytes(HEAD) / wire.tensor_nbytes(HEAD, "nf4") >= 7.0


def test_expect_demands_a_kind():
    with pytest.raises(WireError, match="expected"):
        decode(encode(UPLOAD), expect=HeadParams)


def test_encode_refuses_what_decode_would_refuse():
    bad = [
        HeadParams(**IDS, weight=torch.ones(3, 2), bias=torch.ones(2)),
        HeadParams(**IDS, weight=torch.tensor([[float("nan")]]), bias=torch.ones(1)),
        Upload(**{**IDS, "device_id": "a b"}, features=torch.ones(1, 4)),
        Upload(**IDS, features=torch.ones(4)),
        Upload(**IDS, features=torch.ones(2, 4), positions=torch.tensor([0, -1])),
        Upload(**IDS, features=torch.ones(2, 4), samples=torch.tensor([0.0, 1.0])),
        WeightDelta(**IDS, deltas={"a#b": torch.ones(2)}),
    ]
    for payload in bad:
        with pytest.raises(WireError):
            encode(payload)
    with pytest.raises(WireError, match="quant"):
        encode(UPLOAD, "int4")


# ---- malformed messages -------------------------------------------------------------------------


def _rebuild(msg: bytes, edit_meta=None, edit_header=None, fix_checksum: bool = True) -> bytes:
    """Re-serialise a valid message after editing its metadata or header (checksum recomputed)."""
    (n,) = struct.unpack("<Q", msg[:8])
    header = json.loads(msg[8 : 8 + n])
    body = msg[8 + n :]
    meta = json.loads(header["__metadata__"]["paramcast"])
    if edit_meta:
        edit_meta(meta)
    header["__metadata__"]["paramcast"] = json.dumps(meta)
    if fix_checksum:
        from safetensors.torch import load

        tensors = load(msg)
        header["__metadata__"]["sha256"] = wire.message.checksum(header["__metadata__"]["paramcast"], tensors)
    if edit_header:
        edit_header(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _raises_wire_error(data: bytes, **kw) -> WireError:
    try:
        decode(data, **kw)
    except WireError as exc:
        return exc
    raise AssertionError("decode accepted a malformed message")


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=512))
def test_random_bytes(data):
    _raises_wire_error(data)


@FAST
@given(st.sampled_from(QUANTS), st.data())
def test_truncations(quant, data):
    msg = SMALL[quant]
    cut = data.draw(st.integers(0, len(msg) - 1))
    _raises_wire_error(msg[:cut])


@FAST
@given(st.sampled_from(QUANTS), st.data())
def test_bit_flips(quant, data):
    msg = bytearray(SMALL[quant])
    i = data.draw(st.integers(0, len(msg) - 1))
    msg[i] ^= 1 << data.draw(st.integers(0, 7))
    try:
        out = decode(bytes(msg))
    except WireError:
        return
    # A flip inside JSON whitespace-insensitive spots can leave an equivalent, valid message.
    assert isinstance(out, HeadParams)


_META_EDITS = [
    lambda m: m.update(schema=2),
    lambda m: m.update(schema="1"),
    lambda m: m.update(schema=True),
    lambda m: m.update(kind="model"),
    lambda m: m.update(kind="upload"),
    lambda m: m.update(kind="delta"),
    lambda m: m.pop("device_id"),
    lambda m: m.pop("shapes"),
    lambda m: m.update(extra=1),
    lambda m: m.update(device_id=7),
    lambda m: m.update(device_id="x" * 200),
    lambda m: m.update(method="fda;rm"),
    lambda m: m.update(task="a\nb"),
    lambda m: m.update(quant="int4"),
    lambda m: m.update(quant={"fp32": "fp16", "fp16": "fp32", "int8": "nf4", "nf4": "int8"}[m["quant"]]),
    lambda m: m.update(blocksize=63),
    lambda m: m.update(blocksize=None),
    lambda m: m["shapes"].update(weight=[2**20, 2**20]),
    lambda m: m["shapes"].update(weight=[20, 10, 0]),
    lambda m: m["shapes"].update(weight=[20.0, 10]),
    lambda m: m["shapes"].update(weight="20x10"),
    lambda m: m["shapes"].update(bias=[21]),
    lambda m: m["shapes"].pop("bias"),
    lambda m: m["shapes"].update(extra=[3]),
    lambda m: m.update(shapes=[]),
]


@pytest.mark.parametrize("quant", QUANTS)
@pytest.mark.parametrize("edit", range(len(_META_EDITS)))
def test_mutated_metadata(quant, edit):
    msg = _rebuild(SMALL[quant], edit_meta=_META_EDITS[edit])
    _raises_wire_error(msg)


@FAST
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
        max_leaves=10,
    )
)
def test_random_metadata_json(value):
    msg = _rebuild(SMALL["int8"], edit_meta=lambda m: (m.clear(), m.update({"x": value})))
    _raises_wire_error(msg)


def _set_dtype(name, dtype):
    def edit(header):
        header[name]["dtype"] = dtype

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        _set_dtype("weight#codes", "I8"),
        _set_dtype("weight#codes", "BOOL"),
        _set_dtype("weight#absmax_offset", "I32"),
        lambda h: h.update({"extra": dict(h["bias#codes"])}),
        lambda h: h.pop("bias#codes"),
        lambda h: h["weight#codes"].update(shape=[50, 2]),
        lambda h: h["weight#codes"].update(data_offsets=[0, 10**12]),
        lambda h: h.update(__metadata__={"paramcast": "{}"}),
        lambda h: h["__metadata__"].update(sha256=5),
    ],
)
def test_mutated_header(edit):
    _raises_wire_error(_rebuild(SMALL["nf4"], edit_header=edit))


def test_garbage_header_lengths():
    msg = SMALL["fp32"]
    _raises_wire_error(struct.pack("<Q", 2**63) + msg[8:])
    _raises_wire_error(struct.pack("<Q", 3) + b"{}}" + msg[11:])
    _raises_wire_error(b"\x02\x00\x00\x00\x00\x00\x00\x00[]")
    _raises_wire_error(b"\x04\x00\x00\x00\x00\x00\x00\x00\xff\xfe{}")
    _raises_wire_error(b"\x40\x00\x00\x00\x00\x00\x00\x00" + b"[" * 64)


@pytest.mark.parametrize("quant", QUANTS)
def test_tampered_tensor_bytes_fail_checksum(quant):
    msg = bytearray(SMALL[quant])
    msg[-1] ^= 0x10
    assert "checksum" in str(_raises_wire_error(bytes(msg)))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("quant", ["fp32", "fp16", "int8"])
def test_non_finite_values_are_refused(quant, value):
    from safetensors.torch import load, save

    tensors = load(SMALL[quant])
    key = "weight#values" if quant in ("fp32", "fp16") else "weight#absmax_scale"
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = value
    meta = json.loads(SMALL[quant][8 : 8 + struct.unpack("<Q", SMALL[quant][:8])[0]])["__metadata__"]
    meta["sha256"] = wire.message.checksum(meta["paramcast"], tensors)
    assert "NaN or Inf" in str(_raises_wire_error(save(tensors, metadata=meta)))


def test_index_out_of_range_is_refused():
    from safetensors.torch import load, save

    msg = encode(UTS)
    tensors = load(msg)
    tensors["positions"] = tensors["positions"].clone()
    tensors["positions"][0] = -5
    meta = json.loads(msg[8 : 8 + struct.unpack("<Q", msg[:8])[0]])["__metadata__"]
    meta["sha256"] = wire.message.checksum(meta["paramcast"], tensors)
    assert "positions" in str(_raises_wire_error(save(tensors, metadata=meta)))


def test_upload_text_travels_and_is_checked():
    """UTS uploads carry the kept samples' question ids as ``text`` (S, L) int64, rows indexed by samples."""
    from safetensors.torch import load, save

    text = torch.tensor([[1, 5, 9, 2], [1, 7, 2, 0], [1, 4, 4, 2]])  # 3 samples (UTS.samples uses 0..2)
    with_text = Upload(**{**IDS}, features=UTS.features, positions=UTS.positions, samples=UTS.samples, text=text)
    msg = encode(with_text)
    got = decode(msg, expect=Upload)
    assert torch.equal(got.text, text) and got.text.dtype == torch.int64
    assert wire.tensor_nbytes(with_text) == wire.tensor_nbytes(UTS) + 8 * text.numel()
    assert decode(encode(UTS)).text is None
    for bad, why in ((text.float(), "2-D int64"), (text[0], "2-D int64"), (text[:2], "indexes row 2"),
                     (text - 2, "values must lie")):
        with pytest.raises(WireError, match=why):
            encode(Upload(**IDS, features=UTS.features, positions=UTS.positions, samples=UTS.samples, text=bad))
    # a receiver checks the same rules on bytes it did not encode
    tensors = load(msg)
    tensors["text"] = tensors["text"][:2].clone()
    meta = json.loads(msg[8 : 8 + struct.unpack("<Q", msg[:8])[0]])["__metadata__"]
    meta["sha256"] = wire.message.checksum(meta["paramcast"], tensors)
    assert "indexes row 2" in str(_raises_wire_error(save(tensors, metadata=meta)))
    head_msg = load(encode(HEAD))
    head_msg["text"] = text
    meta = json.loads(encode(HEAD)[8 : 8 + struct.unpack("<Q", encode(HEAD)[:8])[0]])["__metadata__"]
    meta["sha256"] = wire.message.checksum(meta["paramcast"], head_msg)
    assert "uploads only" in str(_raises_wire_error(save(head_msg, metadata=meta)))


def test_oversized_and_non_bytes():
    assert "max_bytes" in str(_raises_wire_error(SMALL["fp32"], max_bytes=100))
    _raises_wire_error(b"\x00" * (2**20 + 1), max_bytes=2**20)
    with pytest.raises(WireError):
        decode("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["positions", "samples", "text"])
def test_index_upper_bound_is_max_index(name):
    """``positions`` / ``samples`` / ``text`` values must be < MAX_INDEX: MAX_INDEX - 1 passes, MAX_INDEX is refused
    (and nothing else in decode would refuse it: no ``text`` rides along with ``samples`` here)."""
    from safetensors.torch import load, save

    text = torch.tensor([[1, 5], [1, 7], [1, 4]])
    upload = Upload(**IDS, features=UTS.features, positions=UTS.positions, samples=UTS.samples,
                    text=text if name == "text" else None)
    msg = encode(upload)
    meta = json.loads(msg[8 : 8 + struct.unpack("<Q", msg[:8])[0]])["__metadata__"]
    for value, ok in ((wire.MAX_INDEX - 1, True), (wire.MAX_INDEX, False), (2**62, False)):
        tensors = {k: v.clone() for k, v in load(msg).items()}
        tensors[name].view(-1)[-1] = value
        meta["sha256"] = wire.message.checksum(meta["paramcast"], tensors)
        data = save(tensors, metadata=meta)
        if ok:
            assert int(getattr(decode(data), name).max()) == value
        else:
            assert f"values must lie in [0, {wire.MAX_INDEX})" in str(_raises_wire_error(data))


def test_one_error_hierarchy_for_both_codecs():
    """Both decoders refuse with a WireError; a history body's is the HistoryError below it."""
    from paramcast.wire.history import HistoryError, LabelError, decode_history

    for decode_fn in (decode, decode_history):
        with pytest.raises(WireError, match="too short to be safetensors"):
            decode_fn(b"\0" * 4)
    with pytest.raises(HistoryError):
        decode_history(b"\0" * 4)
    assert issubclass(LabelError, HistoryError) and not issubclass(WireError, HistoryError)


@pytest.mark.parametrize("shapes", [{"a": ((3, 2), torch.float32)},
                                    {"w#codes": ((9,), torch.uint8), "w#absmax": ((2,), torch.float16),
                                     "positions": ((4,), torch.int64), "b#values": ((5,), torch.float32)},
                                    {"empty": ((0, 3), torch.float32), "x": ((1,), torch.int64)}])
def test_container_writer_is_what_safetensors_writes(shapes):
    """One copy instead of safetensors' two, the same file: header JSON and data bytes as
    ``safetensors.torch.save`` makes them (its metadata key order aside), and it loads back."""
    from safetensors.torch import load, save

    from paramcast.wire._container import write

    g = torch.Generator().manual_seed(3)
    tensors = {k: (torch.randn(s, generator=g) * 100).to(dt) for k, (s, dt) in shapes.items()}
    meta = {"sha256": "ab", "paramcast": '{"x":1}'}
    ours, theirs = write(tensors, meta), save(tensors, metadata=meta)
    n, m = struct.unpack("<Q", ours[:8])[0], struct.unpack("<Q", theirs[:8])[0]
    assert n % 8 == 0 and json.loads(ours[8 : 8 + n]) == json.loads(theirs[8 : 8 + m])
    assert ours[8 + n :] == theirs[8 + m :] and len(ours) == len(theirs)
    back = load(ours)
    assert set(back) == set(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors)
