"""Arrays kept on disk in a memory-mapped file: decoded images (uint8) and embeddings (float32).

A pool of 100,000 images decoded to 64x64x3 takes 1.2 GB: held in a dict it grows the process
until the machine swaps. A memory-mapped file in the workdir holds them instead: each slot is
filled once (by whichever thread decodes it first), later epochs and queries read it back without
decoding, and the operating system keeps in RAM only the pages in use (they are file-backed, so it
can drop them under pressure). The file survives the session, so a restart does not decode again.

A slot is valid only for the file it was filled from: each slot records the file's size and
mtime, and the first read of a slot in a process checks them against the file (one ``stat``), so
an image edited in place is decoded again. Knows nothing of widgets or TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..workdir import CACHE_DIR  # noqa: F401 (the cache's folder in the workdir, named once)

EMPTY, FILLED, FAILED = 0, 1, 2


def fingerprint(paths: Sequence[str], *parts) -> str:
    """A short stable hash of the pool's paths and any further parts (shape, dtype, model id)."""
    h = hashlib.sha1()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    for path in paths:
        h.update(path.encode("utf-8", "surrogateescape"))
        h.update(b"\n")
    return h.hexdigest()[:16]


class ArrayCache:
    """A file-backed array ``(n, *item_shape)`` of ``dtype`` with a per-slot state (empty/filled/failed).

    Files: ``<folder>/<name>.data`` (the arrays) and ``<name>.state`` (per slot: state byte, file
    size and mtime in ns). Both are created sparse at full size, so creating one is instant and
    disk is used only as slots fill. Thread-safe: slots are written by one thread at a time, the
    state last, so a reader never sees a half-written slot as filled. Several processes may share
    a cache: they write the same bytes to the same slot.
    """

    def __init__(self, folder, name: str, n: int, item_shape: Sequence[int], dtype="uint8"):
        self.folder = Path(folder)
        self.n = int(n)
        self.item_shape = tuple(int(v) for v in item_shape)
        self.dtype = np.dtype(dtype)
        self.data_path = self.folder / f"{name}.data"
        self.state_path = self.folder / f"{name}.state"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._data = self._open(self.data_path, self.dtype, (max(self.n, 1), *self.item_shape))
            self._state = self._open(self.state_path, np.dtype("int64"), (max(self.n, 1), 3))
        except OSError as e:
            raise OSError(
                f"cannot create the image cache {self.data_path} ({e.strerror or e}): check that the "
                "workdir is writable and has free space, or pass image_cache=False"
            ) from e
        self._verified = np.zeros(max(self.n, 1), dtype=bool)  # slots checked against their file here
        # Slots are written with pwrite, not through the mapping: filling the whole cache then does not
        # make every page resident in this process (only what is read back is).
        self._fd = os.open(self.data_path, os.O_RDWR)
        self._item_bytes = int(np.prod(self.item_shape)) * self.dtype.itemsize
        self._lock = threading.Lock()

    @staticmethod
    def _open(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.memmap:
        size = int(np.prod(shape)) * dtype.itemsize
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size != size:  # new, or from another layout: start empty (sparse)
                os.ftruncate(fd, 0)
                os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return np.memmap(path, dtype=dtype, mode="r+", shape=shape)

    def filled(self) -> int:
        """Slots filled (decoded) so far."""
        return int(np.count_nonzero(self._state[: self.n, 0] == FILLED))

    def states(self, indices) -> np.ndarray:
        return self._state[np.asarray(indices, dtype=np.int64), 0]

    def ready(self, indices) -> np.ndarray:
        """Per index: filled AND already checked against its file in this process (no stat needed)."""
        indices = np.asarray(indices, dtype=np.int64)
        return (self._state[indices, 0] == FILLED) & self._verified[indices]

    def check(self, index: int, stat: os.stat_result | None) -> int:
        """The state of slot ``index`` given the file's current ``stat`` (None: file missing).

        A slot filled from a different version of the file is reported EMPTY (decode again).
        """
        row = self._state[index]
        state = int(row[0])
        if state == EMPTY or self._verified[index]:
            return state
        if stat is None or (int(row[1]), int(row[2])) != (stat.st_size, stat.st_mtime_ns):
            return EMPTY
        self._verified[index] = True
        return state

    def get(self, indices) -> np.ndarray:
        """A copy of the slots ``indices`` (fancy indexing copies); read only filled ones."""
        return self._data[np.asarray(indices, dtype=np.int64)]

    def put(self, index: int, value: np.ndarray | None, stat: os.stat_result | None) -> None:
        """Fill slot ``index`` with ``value`` (None records a failure) taken from a file with ``stat``."""
        with self._lock:
            if value is not None:
                buf = np.ascontiguousarray(value, dtype=self.dtype).reshape(self.item_shape).tobytes()
                os.pwrite(self._fd, buf, index * self._item_bytes)
            size, mtime = (stat.st_size, stat.st_mtime_ns) if stat is not None else (-1, -1)
            self._state[index, 1] = size
            self._state[index, 2] = mtime
            self._state[index, 0] = FILLED if value is not None else FAILED  # last: the slot is complete
            self._verified[index] = True

    def flush(self) -> None:
        self._state.flush()  # data went straight to the file (pwrite)

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        """Flush and let go of the mappings (further use raises)."""
        try:
            self.flush()
        finally:
            self._data = self._state = None  # type: ignore[assignment]
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None  # type: ignore[assignment]  # closed


def remove_stale(folder, prefix: str, keep: str) -> None:
    """Delete cache files ``<prefix>*`` other than ``keep``: an older index of the same folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.glob(f"{prefix}*"):
        if not path.name.startswith(keep):
            try:
                path.unlink()
            except OSError:
                pass  # in use elsewhere or read-only: harmless, it is just disk space
