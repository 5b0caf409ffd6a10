"""Every reader end to end on tiny files in its published format: rows, vocabularies, decoded frames, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from formats_media import COLOURS

from paramcast.data.base import IGNORE
from paramcast.data.formats import DATASETS, DatasetLayoutError, load_dataset, read_annotations


def _colour(frames: torch.Tensor) -> np.ndarray:
    """Centre pixel of each frame, (..., 3) int."""
    return frames[..., frames.shape[-3] // 2, frames.shape[-2] // 2, :].numpy().astype(int)


def _check_conventions(clips, vocab, t, size):
    n = len(clips)
    assert clips.frames.shape == (n, t, size, size, 3) and clips.frames.dtype == torch.uint8
    assert (clips.question[:, 0] == 1).all()                                  # [CLS]
    assert clips.candidates.shape == (n, 5) and clips.mc_label.shape == (n,)
    assert vocab.words[:4] == ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
    assert int(clips.device.max()) < len(vocab.devices) and int(clips.category.max()) < len(vocab.categories)
    assert int(clips.qtype.max()) < len(vocab.qtypes)


def test_registry_names():
    assert set(DATASETS) == {"msrvtt-qa", "msvd-qa", "tgif-frameqa", "msrvtt-retrieval", "vqav2", "aokvqa",
                             "coco-captions", "nocaps"}
    assert [DATASETS[k].answer_vocab for k in ("msrvtt-qa", "msvd-qa", "tgif-frameqa")] == [1500, 1000, 1540]
    with pytest.raises(KeyError, match="available"):
        load_dataset("kinetics", ".")


def test_msrvtt_qa(msrvtt_root):
    clips, vocab = load_dataset("msrvtt-qa", msrvtt_root, split="test", frames=4, size=16, answer_vocab=3)
    _check_conventions(clips, vocab, 4, 16)
    assert vocab.answers == ["dog", "dance", "man"]                            # top-3 of training answers
    assert clips.answer.tolist() == [IGNORE, 2]                                # "run" is not a training answer
    assert clips.answer_text == ["run", "man"]
    assert clips.meta["questions"] == ["what is the dog doing?", "who dances?"]
    assert vocab.qtypes[clips.qtype[0]] == "what" and vocab.qtypes[clips.qtype[1]] == "who"
    assert vocab.categories[clips.category[0]] == "3"                          # category_id of video1
    # row 0 is video1 (colours shifted by one segment), row 1 is video0
    assert np.abs(_colour(clips.frames[0]) - np.roll(COLOURS, -1, axis=0)).max() <= 8
    assert np.abs(_colour(clips.frames[1]) - COLOURS).max() <= 8
    train, vocab_train = load_dataset("msrvtt-qa", msrvtt_root, frames=2, size=8)
    assert len(train) == 5 and vocab_train.words == vocab.words               # one vocabulary for every split


def test_msvd_qa_maps_video_ids_through_youtube_mapping(msvd_root):
    ann = read_annotations("msvd-qa", msvd_root, split="val")
    assert [p.name for p in ann.media] == ["abc_1_9.avi", "-4wsuPCjDBc_5_15.avi"]
    clips, vocab = load_dataset("msvd-qa", msvd_root, split="val", frames=4, size=16)
    _check_conventions(clips, vocab, 4, 16)
    assert np.abs(_colour(clips.frames[0]) - np.roll(COLOURS, -1, axis=0)).max() <= 8


def test_tgif_frameqa(tgif_root):
    clips, vocab = load_dataset("tgif-frameqa", tgif_root, split="test", frames=4, size=16)
    _check_conventions(clips, vocab, 4, 16)
    assert vocab.qtypes[clips.qtype[0]] == "location" and clips.answer.tolist() == [IGNORE]
    assert set(vocab.answers) == {"black", "two", "guitar"}
    assert np.abs(_colour(clips.frames[0]) - np.roll(COLOURS, -2, axis=0)).max() <= 8
    with pytest.raises(ValueError, match="split 'val'"):
        read_annotations("tgif-frameqa", tgif_root, split="val")


def test_msrvtt_retrieval(msrvtt_root):
    ann = read_annotations("msrvtt-retrieval", msrvtt_root, split="train")
    assert ann.rows.meta["captions"] == ["a man is dancing", "a man dances on stage", "a cat sleeps"]  # 1k-A excluded
    clips, vocab = load_dataset("msrvtt-retrieval", msrvtt_root, split="test", frames=4, size=16)
    _check_conventions(clips, vocab, 4, 16)
    assert len(clips) == 1 and clips.answer.tolist() == [IGNORE]
    assert clips.caption[0, 0] == 1 and (clips.caption[0] == 3).any()          # "outside" is not a training word
    assert ann.rows.meta["clips"] == ["video0", "video2"]


def test_vqav2(vqav2_root):
    clips, vocab = load_dataset("vqav2", vqav2_root, split="val", size=16)
    _check_conventions(clips, vocab, 1, 16)
    assert clips.answer_text == ["3"] and clips.answer.tolist() == [IGNORE]     # "3" never answered in training
    assert clips.meta["direct_answers"][0].count("2") == 4
    assert vocab.categories[clips.category[0]] == "number"
    assert np.abs(_colour(clips.frames[0, 0]) - [0, 128, 255]).max() <= 4
    train, _ = load_dataset("vqav2", vqav2_root, split="train", size=8)
    assert [vocab.answers[a] for a in train.answer] == ["red", "no"]



def test_vqav2_leaves_a_passed_vocabulary_unchanged(vqav2_root):
    """Reading val with the training split's vocabulary adds val's unseen types to a copy, not to it."""
    from paramcast.data.formats.imageqa import read_vqav2

    train_vocab = read_vqav2(vqav2_root, "train").vocab
    before = (list(train_vocab.categories), list(train_vocab.qtypes))
    val = read_vqav2(vqav2_root, "val", vocab=train_vocab)
    assert (train_vocab.categories, train_vocab.qtypes) == before
    assert val.vocab.categories[:len(before[0])] == before[0] and val.vocab.qtypes[:len(before[1])] == before[1]


def test_aokvqa_multiple_choice_and_direct_answers(aokvqa_root):
    val, vocab = load_dataset("aokvqa", aokvqa_root, split="val", size=16)
    _check_conventions(val, vocab, 1, 16)
    assert val.candidates[0, 4] == IGNORE                                      # 4 choices, 5th column unused
    choices = [vocab.answers[c] for c in val.candidates[0, :4]]
    assert choices == ["bus", "cab", "plane", "horse"] and int(val.mc_label[0]) == 1
    assert vocab.answers[:2] == ["cab", "taxi"] and val.answer_text == ["bus"]
    assert vocab.categories[val.category[0]] == "difficult"
    test, _ = load_dataset("aokvqa", aokvqa_root, split="test", size=8)
    assert test.mc_label.tolist() == [IGNORE] and test.answer.tolist() == [IGNORE]
    assert (test.candidates[0, :4] >= 0).all()                                 # every choice has a class


def test_coco_and_nocaps_keep_every_reference(coco_root, nocaps_root):
    coco, vocab = load_dataset("coco-captions", coco_root, split="val", size=16)
    _check_conventions(coco, vocab, 1, 16)
    assert coco.meta["references"] == [["A cat number 3 sits. 0", "A cat number 3 sits. 1"]]
    nocaps, nvocab = load_dataset("nocaps", nocaps_root, split="val", size=16, vocab=vocab)
    _check_conventions(nocaps, nvocab, 1, 16)
    assert nvocab.devices == ["in-domain", "near-domain", "out-domain"]
    assert nocaps.device.tolist() == [0, 1, 2] and nocaps.category.tolist() == [0, 1, 2]
    assert len(nocaps.meta["references"][2]) == 10 and nocaps.meta["vocab_source"] == "given"
    assert nvocab.words == vocab.words                                         # encoded with COCO's words


def test_lazy_annotations_decode_on_demand_and_cache(msrvtt_root, tmp_path):
    (msrvtt_root / "videos" / "all" / "video1.mp4").rename(tmp_path / "video1.mp4")
    ann = read_annotations("msrvtt-qa", msrvtt_root, split="train")            # no video is opened
    assert len(ann) == 5 and ann.rows.frames.shape[1] == 0
    with pytest.raises(DatasetLayoutError, match="video1.mp4"):
        ann.decode(frames=2, size=8)
    only0 = ann.subset(ann.rows.clip_id == 0)                                   # rows of video0 only
    cache = tmp_path / "cache"
    clips = only0.decode(frames=4, size=16, cache_dir=cache)
    assert len(clips) == 2 and len(list(cache.glob("*.clips.npy"))) == 1
    assert torch.equal(torch.from_numpy(ann.clip_frames(0, 4, 16)), clips.frames[0])
    (msrvtt_root / "videos" / "all" / "video0.mp4").unlink()                    # the cache is enough now
    again = only0.decode(frames=4, size=16, cache_dir=cache)
    assert torch.equal(again.frames, clips.frames)


@pytest.mark.parametrize("name,missing", [("msrvtt-qa", "train_qa.json"), ("msvd-qa", "youtube_mapping.txt"),
                                          ("tgif-frameqa", "Train_frameqa_question.tsv"),
                                          ("msrvtt-retrieval", "MSRVTT_data.json"),
                                          ("vqav2", "v2_OpenEnded_mscoco_train2014_questions.json"),
                                          ("aokvqa", "aokvqa_v1p0_train.json"),
                                          ("coco-captions", "annotations/captions_train2017.json"),
                                          ("nocaps", "nocaps_val_4500_captions.json")])
def test_wrong_layout_names_the_missing_file(tmp_path, name, missing):
    split = "val" if name == "nocaps" else "train"
    with pytest.raises(DatasetLayoutError, match=missing.replace(".", r"\.")) as e:
        read_annotations(name, tmp_path, split=split)
    assert "docs/datasets.md" in str(e.value) and isinstance(e.value, FileNotFoundError)


def test_wrong_file_content_is_a_layout_error(tmp_path):
    (tmp_path / "train_qa.json").write_text('{"not": "a list"}')
    with pytest.raises(DatasetLayoutError, match="JSON list"):
        read_annotations("msrvtt-qa", tmp_path)
