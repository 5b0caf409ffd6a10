"""The pretrained parts that install with the project: weights, tokenizer, backbone cache, no network."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from paramcast.data.base import ClipSet
from paramcast.data.store import ClipView
from paramcast.models.encoder import AllInOneEncoder, EncoderConfig
from paramcast.models.features import feature_set, stem_tokens
from paramcast.models.pretrained import lite0, minilm_embeddings, minilm_tokenizer

HERE = Path(__file__).parent
# Words of EmojiClips questions, captions and sprite names (real emoji names included).
WORDS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "what", "is", "moving", "left", "which", "way", "does", "the",
         "grinning", "cat", "face", "with", "tears", "of", "joy", "smiling", "umbrella", "rain", "drops",
         "how", "many", "things", "are", "there", "?", "appears", "disappears", "scene", "urban", "zzyzx"]


def test_lite0_loads_every_key_and_reproduces_the_reference_output():
    import sys

    sys.path.insert(0, str(HERE))
    from make_lite0_reference import backbone_output

    model = lite0(32)                               # strict=True inside: a missing or extra key raises
    ref = load_file(str(HERE / "data" / "lite0_reference.safetensors"))["output"]
    out = backbone_output(model)
    assert out.shape == ref.shape == (2, 112, 2, 2)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    # and it is not a trivially constant map: the two inputs give different features
    assert (out[0] - out[1]).abs().max() > 0.1


def test_wordpiece_round_trip_on_emojiclips_words():
    tok = minilm_tokenizer()
    for w in WORDS[4:]:
        ids = tok(w, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == w, w
    assert tok("what is the grinning cat doing?")["input_ids"][0] == tok.cls_token_id
    enc = AllInOneEncoder(EncoderConfig(vocab_size=len(WORDS), image_size=32), words=WORDS)
    # the encoder's table maps each dataset word to the tokenizer's own pieces
    used = sorted({0, *(i for w in WORDS[4:] for i in tok(w, add_special_tokens=False)["input_ids"][:4]),
                   tok.cls_token_id, tok.sep_token_id, tok.unk_token_id})
    for r, w in enumerate(WORDS):
        pieces = [used[i] for i in enc.text.table[r].tolist() if i]
        expect = ([tok.convert_tokens_to_ids(w)] if w.startswith("[") and w != "[PAD]" else
                  [] if w == "[PAD]" else tok(w, add_special_tokens=False)["input_ids"][:4])
        assert pieces == expect, w
    # MiniLM's pretrained rows, not random ones: cat is closer to dog-like words than to "umbrella"
    emb = enc.text.embeddings.word_embeddings.weight
    row = {w: used.index(tok(w, add_special_tokens=False)["input_ids"][0]) for w in ("cat", "face", "umbrella")}
    full = torch.nn.functional.normalize(emb, dim=-1)
    assert float(full[row["cat"]] @ full[row["umbrella"]]) < 0.9


def _clips(n=6, T=3, size=32) -> ClipSet:
    g = torch.Generator().manual_seed(0)
    q = torch.tensor([[1, 4, 5, 6, 7, 28, 0]] * n)
    clip = torch.arange(n) // 2                                   # 2 questions per clip share its frames
    frames = torch.randint(0, 256, (n, T, size, size, 3), generator=g, dtype=torch.uint8)[clip]
    return ClipSet(frames=frames, question=q,
                   answer=torch.zeros(n, dtype=torch.long), answer_text=["a"] * n,
                   candidates=torch.zeros(n, 5, dtype=torch.long), mc_label=torch.zeros(n, dtype=torch.long),
                   caption=q.clone(), device=torch.arange(n) % 2, category=torch.zeros(n, dtype=torch.long),
                   qtype=torch.zeros(n, dtype=torch.long), clip_id=clip)


def test_backbone_and_feature_caches_hit_with_identical_bytes(tmp_path):
    enc = AllInOneEncoder(EncoderConfig(vocab_size=len(WORDS), image_size=32), words=WORDS).eval()
    clips = _clips()
    first = stem_tokens(enc, clips, key="t", root=tmp_path)
    files = list((tmp_path / "stem").iterdir())
    assert len(files) == 1
    # one entry per clip on disk (3 clips, memory-mapped), one row per question in the view (6 rows)
    assert files[0].suffix == ".npy" and np.load(files[0], mmap_mode="r").shape[0] == 3 and first.shape[0] == 6
    assert isinstance(first, ClipView) and first.mapping is not None
    torch.testing.assert_close(first[0], first[1], rtol=0, atol=0)
    mtime = files[0].stat().st_mtime_ns
    again = stem_tokens(enc, clips, key="t", root=tmp_path)
    assert files[0].stat().st_mtime_ns == mtime and torch.equal(first, again)
    # features from the cached stem equal features from raw frames
    with torch.no_grad():
        direct = enc(clips.frames, clips.question)
    a = feature_set(enc, clips, key="t", root=tmp_path)
    b = feature_set(enc, clips, key="t", root=tmp_path)
    assert a.features.numpy().tobytes() == b.features.numpy().tobytes()
    torch.testing.assert_close(a.features, direct, atol=2e-3, rtol=0)   # float16 stem cache vs float32
    # a split saved and memory-mapped (frames stored once per clip) gives the same bytes, uncached too
    clips.save(tmp_path / "split.safetensors")
    mapped = ClipSet.load(tmp_path / "split.safetensors")
    assert isinstance(mapped.frames, ClipView)
    assert torch.equal(stem_tokens(enc, mapped)[:], first[:])
    assert feature_set(enc, mapped).features.numpy().tobytes() == a.features.numpy().tobytes()


def test_pretrained_encoder_builds_without_any_network(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    enc = AllInOneEncoder(EncoderConfig(vocab_size=len(WORDS), image_size=32), words=WORDS)
    with torch.no_grad():
        out = enc(_clips().frames[:2], _clips().question[:2])
    assert out.shape == (2, 3, 192) and torch.isfinite(out).all()


def test_missing_words_for_minilm_is_a_clear_error():
    with pytest.raises(ValueError, match="words="):
        AllInOneEncoder(EncoderConfig(vocab_size=len(WORDS), image_size=32))


def test_with_words_embeds_new_words_and_keeps_every_old_encoding(tmp_path):
    """The MC candidates' own words ("yes", "three"): new ids after the dataset's, old texts unchanged."""
    torch.manual_seed(0)
    enc = AllInOneEncoder(EncoderConfig(vocab_size=len(WORDS), image_size=32), words=WORDS).eval()
    grown = enc.with_words(["yes", "no", "three"])
    assert grown.config.vocab_size == len(WORDS) + 3 and enc.config.vocab_size == len(WORDS)
    frames, q = _clips().frames[:2], _clips().question[:2]
    with torch.no_grad():
        torch.testing.assert_close(grown(frames, q), enc(frames, q), rtol=0, atol=0)
        texts = q[:1].repeat(3, 1)
        texts[:, 1] = torch.arange(len(WORDS), len(WORDS) + 3)           # [CLS] yes/no/three ...
        out = grown(frames[:1].repeat(3, 1, 1, 1, 1), texts).mean(1)
    assert torch.cdist(out, out).triu(1)[torch.triu(torch.ones(3, 3), 1) > 0].min() > 1e-3  # told apart
    ref, _ = minilm_embeddings()
    yes = minilm_tokenizer()("yes", add_special_tokens=False)["input_ids"][0]
    row = grown.text.table[len(WORDS), 0]
    torch.testing.assert_close(grown.text.embeddings.word_embeddings.weight[row], ref.word_embeddings.weight[yes])
    grown.save(tmp_path)                                                   # the config carries the new shapes
    again = AllInOneEncoder.load(tmp_path, device="cpu").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(frames[:1].repeat(3, 1, 1, 1, 1), texts).mean(1), out)
