"""Tiny on-disk datasets in each published format, written into tmp_path (no download, < 1 s each)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("av")

from formats_media import write_clip, write_image, write_json  # noqa: E402

QA_TRAIN = [("what is the man doing?", "dance", 0), ("what is in the video?", "dog", 1),
            ("who is singing?", "man", 0), ("what animal runs?", "dog", 1), ("how many cats?", "two", 1)]
QA_TEST = [("what is the dog doing?", "run", 1), ("who dances?", "man", 0)]


@pytest.fixture
def msrvtt_root(tmp_path: Path) -> Path:
    root = tmp_path / "msrvtt"
    for split, rows in (("train", QA_TRAIN), ("val", QA_TEST), ("test", QA_TEST)):
        write_json(root / f"{split}_qa.json", [{"question": q, "answer": a, "video_id": v, "category_id": v * 3,
                                                "id": i} for i, (q, a, v) in enumerate(rows)])
    for v in (0, 1):
        write_clip(root / "videos" / "all" / f"video{v}.mp4", shift=v)
    write_json(root / "MSRVTT_data.json", {
        "info": {}, "videos": [{"video_id": f"video{v}", "category": v * 3, "split": "train", "id": v}
                               for v in range(3)],
        "sentences": [{"caption": c, "video_id": v, "sen_id": i} for i, (c, v) in enumerate(
            [("a man is dancing", "video0"), ("a man dances on stage", "video0"), ("a dog runs", "video1"),
             ("a cat sleeps", "video2")])]})
    with open(root / "MSRVTT_JSFUSION_test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "vid_key", "video_id", "sentence"])
        w.writerow(["ret0", "msr1", "video1", "a dog is running outside"])
    return root


@pytest.fixture
def msvd_root(tmp_path: Path) -> Path:
    root = tmp_path / "msvd"
    for split, rows in (("train", QA_TRAIN), ("val", QA_TEST), ("test", QA_TEST)):
        write_json(root / f"{split}_qa.json", [{"answer": a, "id": i, "question": q, "video_id": v + 1}
                                               for i, (q, a, v) in enumerate(rows)])
    (root / "youtube_mapping.txt").write_text("-4wsuPCjDBc_5_15 vid1\nabc_1_9 vid2\n")
    write_clip(root / "videos" / "-4wsuPCjDBc_5_15.avi", codec="mpeg4")
    write_clip(root / "videos" / "abc_1_9.avi", codec="mpeg4", shift=1)
    return root


@pytest.fixture
def tgif_root(tmp_path: Path) -> Path:
    root = tmp_path / "tgif"
    header = ["gif_name", "question", "answer", "type", "vid_id", "key", "description"]
    rows = {"Train": [("tumblr_a", "what is the color of the shirt ?", "black", 2),
                      ("tumblr_b", "how many dogs are running ?", "two", 1),
                      ("tumblr_a", "what is the man holding ?", "guitar", 0)],
            "Test": [("tumblr_b", "where is the dog running . ?", "park", 3)]}
    root.mkdir()
    for split, rs in rows.items():
        with open(root / f"{split}_frameqa_question.tsv", "w", newline="") as f:
            w = csv.writer(f, delimiter="\t")
            w.writerow(header)
            for i, (g, q, a, t) in enumerate(rs):
                w.writerow([g, q, a, t, f"FRAMEQA{i}", i, "a caption ."])
    write_clip(root / "gifs" / "tumblr_a.gif", codec="gif")
    write_clip(root / "gifs" / "tumblr_b.gif", codec="gif", shift=2)
    return root


@pytest.fixture
def vqav2_root(tmp_path: Path) -> Path:
    root = tmp_path / "vqav2"
    data = {"train": [(1, 10, "what color is the bus?", "what color is the", "other", ["red"] * 7 + ["blue"] * 3),
                      (2, 20, "is it raining?", "is it", "yes/no", ["no"] * 10)],
            "val": [(3, 30, "how many people?", "how many", "number", ["2"] * 4 + ["3"] * 6)]}
    for split, rows in data.items():
        write_json(root / f"v2_OpenEnded_mscoco_{split}2014_questions.json",
                   {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": f"{split}2014",
                    "questions": [{"image_id": im, "question": q, "question_id": qid} for qid, im, q, *_ in rows]})
        write_json(root / f"v2_mscoco_{split}2014_annotations.json", {"annotations": [
            {"question_id": qid, "image_id": im, "question_type": qt, "answer_type": at,
             "multiple_choice_answer": max(set(ans), key=ans.count),
             "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1} for j, a in enumerate(ans)]}
            for qid, im, _, qt, at, ans in rows]})
        for _, im, *_ in rows:
            write_image(root / f"{split}2014" / f"COCO_{split}2014_{im:012d}.jpg")
    return root


@pytest.fixture
def aokvqa_root(tmp_path: Path) -> Path:
    root = tmp_path / "aokvqa"
    ex = {"split": "train", "image_id": 299207, "question_id": "22MexNkBPpdZGX6sxbxVBH",
          "question": "What is the man by the bags awaiting?", "choices": ["skateboarder", "train", "delivery", "cab"],
          "correct_choice_idx": 3, "direct_answers": ["cab"] * 6 + ["taxi"] * 4, "difficult_direct_answer": False,
          "rationales": ["a cab is the only possible answer."]}
    val = dict(ex, split="val", question_id="v1", image_id=5, choices=["bus", "cab", "plane", "horse"],
               correct_choice_idx=1, difficult_direct_answer=True, direct_answers=["bus"] * 10)
    test = {k: v for k, v in val.items() if k not in ("correct_choice_idx", "direct_answers", "rationales")}
    test.update(split="test", question_id="t1", choices=["boat", "cab", "car", "tram"])
    for split, rows in (("train", [ex]), ("val", [val]), ("test", [test])):
        write_json(root / f"aokvqa_v1p0_{split}.json", rows)
        for r in rows:
            write_image(root / f"{split}2017" / f"{r['image_id']:012d}.jpg")
    return root


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    for split, ids in (("train", (1, 2)), ("val", (3,))):
        write_json(root / "annotations" / f"captions_{split}2017.json", {
            "images": [{"id": i, "file_name": f"{i:012d}.jpg", "height": 30, "width": 40} for i in ids],
            "annotations": [{"image_id": i, "id": 10 * i + k, "caption": f"A cat number {i} sits. {k}"}
                            for i in ids for k in range(2)]})
        for i in ids:
            write_image(root / f"{split}2017" / f"{i:012d}.jpg")
    return root


@pytest.fixture
def nocaps_root(tmp_path: Path) -> Path:
    root = tmp_path / "nocaps"
    images = [{"id": k, "file_name": f"{k:016x}.jpg", "open_images_id": f"{k:016x}", "height": 30, "width": 40,
               "domain": d} for k, d in enumerate(["in-domain", "near-domain", "out-domain"])]
    write_json(root / "nocaps_val_4500_captions.json", {
        "licenses": [], "info": {}, "images": images,
        "annotations": [{"image_id": im["id"], "id": 10 * im["id"] + j, "caption": f"a {im['domain']} thing {j}"}
                        for im in images for j in range(10)]})
    for im in images:
        write_image(root / "validation" / im["file_name"])
    return root
