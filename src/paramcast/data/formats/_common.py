"""What every reader shares: layout errors, tokenising, vocabularies, and lazy :class:`Annotations`.

A reader parses a dataset's published annotation files into :class:`Annotations`: every tensor of a
:class:`~paramcast.data.base.ClipSet` except the frames, plus the path of each clip's media file.
Frames are decoded only by :meth:`Annotations.decode` (once per clip, in parallel, into a
memory-mapped clip store that can be cached and resumed), so a reader can list a 240k-question split
without touching a video.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from paramcast.data.base import IGNORE, ClipSet, Vocab
from paramcast.data.store import ClipView, NpyWriter, open_npy

__all__ = ["Annotations", "DatasetLayoutError", "SPECIALS", "build_answer_vocab", "build_word_vocab", "find_file",
           "encode_text", "tokenize"]

#: The four special words at the start of every word vocabulary (ids 0..3).
SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]")
PAD, CLS, SEP, UNK = range(4)


class DatasetLayoutError(FileNotFoundError):
    """A dataset root lacks a file the reader needs; the message names it and the expected layout."""


def require_file(root: Path, dataset: str, *candidates: str) -> Path:
    """The first of ``candidates`` (relative to ``root``) that exists, else a :class:`DatasetLayoutError`."""
    for c in candidates:
        if (root / c).is_file():
            return root / c
    tried = ", ".join(str(root / c) for c in candidates)
    raise DatasetLayoutError(f"{dataset}: missing {candidates[0]!r} under {root} (looked for: {tried}). "
                             f"See docs/datasets.md for the expected layout of a {dataset} root.")


def find_dir(root: Path, *candidates: str) -> Path:
    """The first existing directory among ``candidates``; the first one when none exists yet.

    Media directories are only checked when frames are decoded, so annotations can be read alone.
    """
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    return root / candidates[0]


def find_file(directory: Path, stem: str, *exts: str) -> Path:
    """The first existing ``directory/stem<ext>`` among ``exts``; the first one when none exists (the
    decoder then names it in its error)."""
    for ext in exts:
        if (directory / f"{stem}{ext}").is_file():
            return directory / f"{stem}{ext}"
    return directory / f"{stem}{exts[0]}"


def read_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --- text ------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-case, split words from punctuation ("what's this?" -> what ' s this ?)."""
    return _TOKEN.findall(text.lower())


def build_word_vocab(texts: Iterable[str], max_words: int | None = None) -> list[str]:
    """SPECIALS then the words of ``texts``, most frequent first, at most ``max_words`` in all."""
    counts = Counter(w for t in texts for w in tokenize(t))
    keep = None if max_words is None else max(0, max_words - len(SPECIALS))
    return list(SPECIALS) + [w for w, _ in counts.most_common(keep) if w not in SPECIALS]


def build_answer_vocab(answers: Iterable[str], top: int) -> list[str]:
    """The ``top`` most frequent training answers, most frequent first (All-in-One's answer classes).

    Ties keep first-seen order, so the vocabulary is a function of the annotation file alone.
    Answers outside it become :data:`~paramcast.data.base.IGNORE` (see :func:`answer_ids`).
    """
    if top < 1:
        raise ValueError(f"answer vocabulary size {top}: use >= 1")
    return [a for a, _ in Counter(answers).most_common(top)]


def normalise_answer(text: str) -> str:
    return " ".join(str(text).lower().split())


def answer_ids(answers: Sequence[str], vocab: Sequence[str]) -> torch.Tensor:
    """(N,) int64 class of each answer, IGNORE for answers outside ``vocab``."""
    index = {a: i for i, a in enumerate(vocab)}
    return torch.tensor([index.get(a, IGNORE) for a in answers], dtype=torch.int64)


def encode_text(texts: Sequence[str], words: Sequence[str], length: int) -> torch.Tensor:
    """(N, length) int64: [CLS] word ids [SEP], truncated to ``length``, padded with [PAD] = 0."""
    if length < 2:
        raise ValueError(f"text length {length}: use >= 2 ([CLS] and [SEP])")
    index = {w: i for i, w in enumerate(words)}
    out = torch.zeros(len(texts), length, dtype=torch.int64)
    for r, t in enumerate(texts):
        ids = [CLS] + [index.get(w, UNK) for w in tokenize(t)][: length - 2] + [SEP]
        out[r, : len(ids)] = torch.tensor(ids)
    return out


def first_word_qtype(question: str) -> str:
    """Question type by its wh-word (the usual MSRVTT-QA / MSVD-QA breakdown)."""
    words = tokenize(question)
    for w in words[:3]:
        if w in ("what", "who", "how", "when", "where", "why", "which"):
            return w
    return "other"


def index_of(values: Sequence[str], names: list[str]) -> torch.Tensor:
    """(N,) int64 index of each value in ``names``, IGNORE for a value outside it (e.g. a test-split
    category that a reused training vocabulary lacks; :func:`unseen_labels` counts them)."""
    pos = {n: i for i, n in enumerate(names)}
    return torch.tensor([pos.get(v, IGNORE) for v in values], dtype=torch.int64)


def unseen_labels(dataset: str, split: str, answers: tuple[Sequence[str], Sequence[str]],
                  **labels: tuple[Sequence[str], Sequence[str]]) -> dict:
    """What :func:`answer_ids` / :func:`index_of` mapped to IGNORE, as ``meta["unseen"]``.

    ``answers`` and each of ``labels`` are ``(values of the rows, names of the vocabulary)``. The
    report is ``{"rows": N, "answers": rows whose answer is outside the answer classes, <label>:
    {value: rows}}``, over every row the reader read (a later ``subset`` / ``limit`` keeps it). Answers outside the top-V are the documented All-in-One convention (they
    count as wrong in unfiltered accuracy), so they are only counted; a label outside the
    vocabulary (a val/test category or question type the reused training vocabulary has never
    seen) is also named on stderr, because it has no breakdown to go to.
    """
    known = set(answers[1])
    report: dict = {"rows": len(answers[0]), "answers": sum(a not in known for a in answers[0])}
    for name, (values, names) in labels.items():
        known = set(names)
        report[name] = dict(sorted(Counter(v for v in values if v not in known).items()))
    odd = {k: v for k, v in report.items() if isinstance(v, dict) and v}
    if odd:
        import sys

        print(f"{dataset} {split}: labels outside the vocabulary became IGNORE (-1): "
              + "; ".join(f"{k} {', '.join(f'{v!r} x{n}' for v, n in list(c.items())[:10])}" for k, c in odd.items())
              + f" ({report['answers']} of {report['rows']} answers are outside the answer classes)", file=sys.stderr)
    return report


# --- lazy annotations ------------------------------------------------------------------------
@dataclass
class Annotations:
    """One split's rows without frames; ``media[clip_id]`` is the file holding each clip.

    ``rows`` is a ClipSet whose ``frames`` is an empty (N, 0, 0, 0, 3) placeholder until
    :meth:`decode` fills it. ``kind`` is "video" (sampled to T frames) or "image" (T = 1).
    """

    rows: ClipSet
    vocab: Vocab
    media: list[Path]
    kind: str
    layout: str          # one line on where media files belong, quoted when one is missing

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, index: torch.Tensor) -> Annotations:
        """Rows ``index`` (mask or indices), e.g. to decode only part of a large split."""
        return replace(self, rows=self.rows.subset(index))

    def clip_frames(self, clip_id: int, frames: int = 8, size: int = 64) -> np.ndarray:
        """Frames of one clip, decoded now: (T, H, W, 3) uint8 (T = 1 for images)."""
        self._check_media(clip_id)
        return _read_media(self.media[clip_id], self.kind, frames, size)

    def _check_media(self, clip_id: int) -> None:
        path = self.media[clip_id]
        if not path.is_file():
            raise DatasetLayoutError(f"{self.rows.meta.get('dataset', 'dataset')}: media file {path} is missing "
                                     f"({self.layout}; see docs/datasets.md)")

    def decode(self, frames: int = 8, size: int = 64, cache_dir: str | Path | None = None, *,
               workers: int | None = None, progress: bool = False) -> ClipSet:
        """The ClipSet with frames: each distinct clip decoded once into a memory-mapped clip store.

        Clips are decoded by ``workers`` processes (default: one per CPU core, at most 8) straight
        into ``<cache_dir>/<dataset>-<split>-<T>x<size>-<hash of the clip list>.clips.npy`` (a
        temporary file when ``cache_dir`` is None), with a progress bar when ``progress``. A
        ``.state.npy`` beside it marks every clip done (1), failed (2) or pending (0) as it goes:
        an interrupted decode resumes with the pending clips and ends with the same bytes; a
        ``.done.json`` written last marks the store complete and lists the skipped clips.

        A media file that is missing raises :class:`DatasetLayoutError` (the root is laid out
        wrongly); one that exists but cannot be decoded (corrupt, truncated, no video stream) is
        skipped: its rows are dropped and it is reported by id in ``meta["skipped"]``
        (``{"clip": original id, "path": ..., "error": ...}``) and on stderr.
        """
        t = frames if self.kind == "video" else 1
        clips = torch.unique(self.rows.clip_id)                                  # (U,)
        m = self.rows.meta
        key = hashlib.sha256(" ".join(str(self.media[c]) for c in clips.tolist()).encode()).hexdigest()[:12]
        stem = f"{m.get('dataset', 'data')}-{m.get('split', 'split')}-{t}x{size}-{key}"
        temp = cache_dir is None
        directory = Path(tempfile.mkdtemp(prefix="paramcast-clips-")) if temp else Path(cache_dir)
        store_path = directory / f"{stem}.clips.npy"
        jobs = [(pos, str(self.media[c]), self.kind, t, size) for pos, c in enumerate(clips.tolist())]
        report = _decode_store(store_path, jobs, (len(jobs), t, size, size, 3), workers, progress,
                               check=lambda pos: self._check_media(int(clips[pos])), label=f"decode {m.get('dataset', '')} {m.get('split', '')}".strip())
        store, mapping = open_npy(store_path)
        if temp:  # the mapping keeps the data; nothing is left behind
            for f in directory.iterdir():
                f.unlink()
            directory.rmdir()
        failed = torch.tensor(sorted(int(e["pos"]) for e in report["skipped"]), dtype=torch.int64)
        row_to_clip = torch.searchsorted(clips, self.rows.clip_id)              # (N,) into clips
        names = m.get("clips")
        skipped = [{"clip": names[int(clips[e["pos"]])] if names else int(clips[e["pos"]]), "path": e["path"],
                    "error": e["error"]} for e in report["skipped"]]
        keep = ~torch.isin(row_to_clip, failed)
        rows = self.rows.subset(keep) if failed.numel() else self.rows
        if skipped:
            import sys

            print(f"{m.get('dataset', 'dataset')} {m.get('split', '')}: skipped {len(skipped)} undecodable "
                  f"video(s) ({int((~keep).sum())} rows): " + ", ".join(str(e["clip"]) for e in skipped[:10])
                  + (" ..." if len(skipped) > 10 else ""), file=sys.stderr)
        view = ClipView(store, row_to_clip[keep], mapping)
        return replace(rows, frames=view, meta={**rows.meta, "skipped": skipped})


def _read_media(path: Path, kind: str, frames: int, size: int) -> np.ndarray:
    from paramcast.data.video import read_image, read_video

    return read_video(path, frames, size) if kind == "video" else read_image(path, size)


_WRITER: dict = {}  # per decoding process: the open store writer


def _decode_one(job: tuple) -> tuple[int, str | None]:
    """Decode one clip into the store (opened once per process); (position, error or None)."""
    pos, path, kind, t, size, store_path, shape = job
    if _WRITER.get("path") != store_path:
        _WRITER.update(path=store_path, writer=NpyWriter(store_path, shape, np.uint8, create=False))
    try:
        frames = _read_media(Path(path), kind, t, size)
    except Exception as e:  # noqa: BLE001 - any failure to decode one file skips that file, reported by id
        return pos, f"{type(e).__name__}: {e}"
    _WRITER["writer"].write(pos, frames)
    return pos, None


def _decode_store(store_path: Path, jobs: list[tuple], shape: tuple[int, ...], workers: int | None,
                  progress: bool, check, label: str) -> dict:
    """Fill ``store_path`` with every job's clip (resuming a partial store); the completion report.

    ``check(pos)`` raises when a pending clip's file is missing (before anything is decoded)."""
    done_path = store_path.with_name(store_path.name.removesuffix(".clips.npy") + ".done.json")
    if done_path.is_file() and store_path.is_file():
        return json.loads(done_path.read_text())
    state_path = store_path.with_name(store_path.name.removesuffix(".clips.npy") + ".state.npy")
    errors_path = store_path.with_name(store_path.name.removesuffix(".clips.npy") + ".errors.json")
    with NpyWriter(store_path, shape, np.uint8) as store:               # create, or keep a partial one
        if store.created:                                               # a new store: nothing is done yet
            state_path.unlink(missing_ok=True)
            errors_path.unlink(missing_ok=True)
    with NpyWriter(state_path, (len(jobs),), np.uint8) as state:
        status = np.fromfile(state_path, dtype=np.uint8, offset=state.offset, count=len(jobs))
        errors = {int(k): v for k, v in json.loads(errors_path.read_text()).items()} if errors_path.is_file() else {}
        todo = [(*j, str(store_path), shape) for j in jobs if status[j[0]] == 0]
        for j in todo:
            check(j[0])
        workers = min(workers or min(8, os.cpu_count() or 1), max(1, len(todo)))
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      disable=not progress) as bar:
            task = bar.add_task(label, total=len(jobs), completed=len(jobs) - len(todo))
            pool = mp.get_context("fork").Pool(workers) if workers > 1 and "fork" in mp.get_all_start_methods() else None
            try:
                results = pool.imap_unordered(_decode_one, todo, chunksize=8) if pool else map(_decode_one, todo)
                for pos, err in results:
                    if err is not None:
                        errors[pos] = err
                        errors_path.write_text(json.dumps({str(k): errors[k] for k in sorted(errors)}))
                    state.write(pos, np.uint8(1 if err is None else 2))
                    bar.advance(task)
            finally:
                if pool is not None:
                    pool.terminate()
                    pool.join()
                if "writer" in _WRITER:   # decoded in this process
                    _WRITER["writer"].close()
                _WRITER.clear()
    path_of = {j[0]: j[1] for j in jobs}
    report = {"clips": len(jobs), "skipped": [{"pos": p, "path": path_of[p], "error": errors[p]} for p in sorted(errors)]}
    done_path.write_text(json.dumps(report, indent=1))
    return report


def make_rows(*, question: torch.Tensor, answer: torch.Tensor, answer_text: list[str],
              caption: torch.Tensor, clip_id: Sequence[int], category: torch.Tensor, qtype: torch.Tensor,
              device: torch.Tensor | None = None, candidates: torch.Tensor | None = None,
              mc_label: torch.Tensor | None = None, meta: dict) -> ClipSet:
    """A frameless ClipSet; absent multiple-choice fields are IGNORE, absent devices are device 0."""
    n = len(answer_text)
    return ClipSet(
        frames=torch.zeros(n, 0, 0, 0, 3, dtype=torch.uint8),
        question=question, answer=answer, answer_text=answer_text,
        candidates=candidates if candidates is not None else torch.full((n, 5), IGNORE, dtype=torch.int64),
        mc_label=mc_label if mc_label is not None else torch.full((n,), IGNORE, dtype=torch.int64),
        caption=caption,
        device=device if device is not None else torch.zeros(n, dtype=torch.int64),
        category=category, qtype=qtype,
        clip_id=torch.as_tensor(list(clip_id), dtype=torch.int64).reshape(n),
        meta=meta)


def empty_text(n: int) -> torch.Tensor:
    """(n, 2) [CLS] [SEP]: the text field of a task that has none (e.g. the question of a caption set)."""
    out = torch.zeros(n, 2, dtype=torch.int64)
    out[:, 0], out[:, 1] = CLS, SEP
    return out


def clip_index(keys: Sequence[str]) -> tuple[list[int], list[str]]:
    """Dense clip ids for row keys (first-seen order) and the distinct keys, one per clip."""
    ids: dict[str, int] = {}
    out = [ids.setdefault(k, len(ids)) for k in keys]
    return out, list(ids)
