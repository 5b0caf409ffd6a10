"""Per-clip arrays on disk, memory-mapped, and the row views that point into them.

A video-QA split has many rows (questions) per clip: MSRVTT-QA ~24, MSVD-QA ~25, EmojiClips 2. The
frames (and the frozen backbone's output, :func:`paramcast.models.features.stem_tokens`) are stored
**once per clip**, in a ``.npy`` file that is memory-mapped, never loaded; a row holds only the index
of its clip. :class:`ClipView` is what ``ClipSet.frames`` (and ``FeatureSet.tokens``) hold: it looks
like the old ``(N, T, H, W, 3)`` per-row tensor (``shape``, ``dtype``, indexing), but indexing reads
just the selected rows' clips from the file.

Why numpy ``.npy`` memmap and not safetensors' lazy ``safe_open`` slices: the store is *written in
place*, clip by clip, by parallel decoder processes, and an interrupted prepare resumes by filling
only the clips not yet marked done. A ``.npy`` file is a fixed header (shape, dtype, parsed with
``ast.literal_eval``, nothing unpickled: ``allow_pickle=False``) followed by the raw C-order array,
so clip ``i`` lives at a known byte offset and can be written with one ``pwrite`` by any process;
safetensors files are written whole from in-memory tensors (``save_file``) and cannot be filled
incrementally. Reading both is an ``mmap``; numpy's gives a zero-copy ``torch.from_numpy`` tensor.

Resident memory: pages of a file mapping that were read count in a process's RSS (and in
``getrusage``'s peak) until the kernel drops them. After every :data:`RELEASE_BYTES` gathered by
all views together, the pages of every open mapping are dropped (``madvise(MADV_DONTNEED)``; they are
clean, re-read from the page cache on the next access), so passes over several multi-GB stores
keep a bounded RSS. (A budget per view let each of the frame and backbone stores of train, val and
test keep its own 256 MB resident: the first full-size benchmark run measured that.) Writers use ``pwrite``/``write`` (no mapping), which never grows RSS.
"""

from __future__ import annotations

import mmap
import os
import weakref
from pathlib import Path

import numpy as np
import torch

__all__ = ["RELEASE_BYTES", "ClipView", "NpyWriter", "open_npy", "release_all", "take_rows"]

#: Bytes all :class:`ClipView` s together gather from their mappings before every open mapping's
#: pages are dropped again (one budget for the process, not one per view or per file).
RELEASE_BYTES = 128 << 20

_MAPPINGS: dict[int, weakref.ref] = {}           # every mapping opened by open_npy and still alive
_READ = [0]                                       # bytes gathered since the last release


def open_npy(path: str | Path) -> tuple[torch.Tensor, np.memmap]:
    """A ``.npy`` file memory-mapped: (tensor sharing the mapping, the memmap). Nothing is read yet.

    Copy-on-write mode: the tensor is writable (no torch warning) but writes never reach the file.
    """
    arr = np.load(str(path), mmap_mode="c", allow_pickle=False)
    key = id(arr)
    _MAPPINGS[key] = weakref.ref(arr, lambda _, k=key: _MAPPINGS.pop(k, None))
    return torch.from_numpy(arr), arr


def release_all() -> None:
    """Drop the resident pages of every mapping :func:`open_npy` opened (clean, re-read on access)."""
    _READ[0] = 0
    for ref in list(_MAPPINGS.values()):
        arr = ref()
        if arr is not None:
            _drop(arr)


def _drop(arr) -> None:
    m = getattr(arr, "_mmap", None)
    if m is not None and hasattr(m, "madvise"):
        m.madvise(mmap.MADV_DONTNEED)


class NpyWriter:
    """Writes a ``.npy`` file of ``shape``/``dtype`` without mapping it: rows by index (``pwrite``).

    ``NpyWriter(path, shape, dtype)`` creates the file (sparse, zero-filled) when it does not exist
    or has another header, and reopens it unchanged when it does (resume). Several processes may
    write different rows of one file at once.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype, *, create: bool = True):
        self.path = Path(path)
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        header = _npy_header(self.shape, self.dtype)
        self.offset = len(header)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        size = self.offset + self.shape[0] * self.row_bytes
        fresh = not self.path.is_file() or self.path.stat().st_size != size or _read_head(self.path, len(header)) != header
        if fresh and not create:
            raise FileNotFoundError(f"{self.path}: no store of shape {self.shape} {self.dtype} to resume")
        self.created = fresh
        if fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb") as f:
                f.write(header)
                f.truncate(size)
        self.fd = os.open(self.path, os.O_RDWR)

    def write(self, row: int, values: np.ndarray) -> None:
        """Rows ``row .. row + len(values) - 1`` (or one row when ``values`` has the row shape)."""
        data = np.ascontiguousarray(values, dtype=self.dtype)
        if data.shape == self.shape[1:]:
            data = data[None]
        if data.shape[1:] != self.shape[1:] or not 0 <= row <= self.shape[0] - len(data):
            raise ValueError(f"{self.path}: rows {row}+{len(data)} of shape {data.shape[1:]} do not fit {self.shape}")
        os.pwrite(self.fd, data.tobytes(), self.offset + row * self.row_bytes)

    def close(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(dtype),
                                               "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _read_head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


class ClipView:
    """Rows that point at clips: row ``i`` is ``store[index[i]]``. Looks like an (N, *store.shape[1:]) tensor.

    ``store``: (U, ...) tensor, usually memory-mapped (:func:`open_npy`); ``index``: (N,) int64.
    Indexing (``view[i]``, ``view[a:b]``, ``view[mask]``, ``view[idx]``, ``view[rows, t]`` ...) returns
    a tensor holding only the selected rows (read first, then the trailing indices applied);
    ``view[:, t]`` (every row, part of each clip) returns a view of the store indexed by ``t``, so
    it stays one entry per clip. :meth:`rows` returns a smaller view without reading.
    Any other tensor use (``torch.equal(view, x)``, ``view.float()``) materialises the whole view:
    meant for a batch or a device's shots, never done on a split by paramcast's own loops.
    """

    def __init__(self, store: torch.Tensor, index: torch.Tensor, mapping: np.memmap | None = None):
        self.store, self.index, self.mapping = store, index.to(torch.int64), mapping

    # -- tensor look-alike ---------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return torch.Size((int(self.index.shape[0]), *self.store.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.store.dtype

    @property
    def ndim(self) -> int:
        return self.store.ndim

    def dim(self) -> int:
        return self.store.ndim

    def size(self, d: int | None = None):
        return self.shape if d is None else self.shape[d]

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __repr__(self) -> str:
        return f"ClipView(rows={len(self)}, clips={self.store.shape[0]}, shape={tuple(self.shape)}, dtype={self.dtype})"

    def __getitem__(self, key) -> torch.Tensor | ClipView:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if first is Ellipsis:
            first, rest = slice(None), (Ellipsis, *rest)
        if rest and isinstance(first, slice) and first == slice(None):  # every row, part of each clip: still one entry per clip
            return ClipView(self.store[(slice(None), *rest)], self.index, self.mapping)
        clips = self.index[first]
        out = self.store[clips] if clips.ndim else self.store[int(clips)]   # only the selected rows are read
        self._note(out.numel() * out.element_size())
        if rest:
            out = out[(slice(None), *rest)] if clips.ndim else out[rest]
        return out

    def rows(self, index) -> ClipView:
        """The rows ``index`` (bool mask, indices or slice) as a view: nothing is read."""
        if isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            index = index.nonzero().flatten()
        view = ClipView(self.store, self.index[index].reshape(-1), self.mapping)
        return view

    def clips(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(distinct store rows used, sorted; inverse: position of each row's clip in them)."""
        return torch.unique(self.index, return_inverse=True)

    def materialize(self) -> torch.Tensor:
        """All rows as one in-memory tensor (N, ...)."""
        return self[:]

    def release(self) -> None:
        """Drop the mapping's resident pages (clean: they are re-read from the page cache when needed)."""
        _drop(self.mapping)

    def _note(self, nbytes: int) -> None:
        if self.mapping is None:
            return
        _READ[0] += nbytes
        if _READ[0] >= RELEASE_BYTES:
            release_all()

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        conv = lambda a: a.materialize() if isinstance(a, ClipView) else (  # noqa: E731
            type(a)(conv(x) for x in a) if isinstance(a, (list, tuple)) else a)
        return func(*conv(tuple(args)), **{k: conv(v) for k, v in (kwargs or {}).items()})

    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("store", "index", "mapping"):
            raise AttributeError(name)
        return getattr(self.materialize(), name)

    def __eq__(self, other):  # elementwise, like a tensor (materialises)
        return self.materialize() == (other.materialize() if isinstance(other, ClipView) else other)

    __hash__ = None


def take_rows(values, index):
    """``values[index]`` for a tensor, a :class:`ClipView` (kept a view) or None."""
    if values is None:
        return None
    return values.rows(index) if isinstance(values, ClipView) else values[index]
