"""The images of a folder: finding them, decoding them (Pillow), caching arrays, the test split.

Images are identified by their path relative to the images folder with ``/`` separators, never by
basename (two folders may hold ``img_001.png``). Scanning only lists and stats files; decoding is
lazy, so a folder of 100,000 images indexes in seconds. Knows nothing of widgets or TensorFlow.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .cache import FILLED, ArrayCache, fingerprint, remove_stale
from .modes import to_mode
from .suggest import missing_folder

#: Extensions (lower case, with dot) of the files taken as images; any case matches.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

#: Long side (pixels) small images are upscaled to for display: 8x8 digits would be invisible.
DISPLAY_MIN_SIDE = 256

SYMLINK_OUTSIDE = "symlink points outside the images folder"


class ImageError(Exception):
    """An image that cannot be used. ``str(e)`` names the file and says why."""

    def __init__(self, path: str, reason: str):
        super().__init__(path, reason)  # both in args: picklable, e.g. across processes
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot read image {self.path!r}: {self.reason}"


@dataclass(frozen=True)
class Skipped:
    """A file that looks like an image (by its extension) but cannot be used, and why."""

    path: str
    reason: str


# --- finding images -----------------------------------------------------------------------------
def _resolve_root(root) -> Path:
    given = Path(root).expanduser()
    resolved = given.resolve()
    if not resolved.exists():
        raise FileNotFoundError(missing_folder(given, resolved))
    if not resolved.is_dir():
        raise NotADirectoryError(
            f"images folder {str(given)!r} is a file, not a folder: pass the folder that holds your images"
        )
    return resolved


def _inside(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def scan(root) -> tuple[list[str], list[Skipped]]:
    """Image files under ``root``, recursively: (sorted relative paths, files skipped with a reason).

    Lists and stats only, never decodes. Hidden files and folders (``.oal``, ``.ipynb_checkpoints``,
    ``._x.jpg`` resource forks) are ignored, as are files whose extension is not in
    ``IMAGE_EXTENSIONS``. Folder symlinks are never entered (so loops cannot hang); file symlinks
    are followed only when they resolve inside ``root``. Raises ``FileNotFoundError`` when ``root``
    does not exist.
    """
    root_path = _resolve_root(root)
    root_str = str(root_path)
    paths: list[str] = []
    skipped: list[Skipped] = []
    stack = [root_str]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            rel = os.path.relpath(folder, root_str).replace(os.sep, "/")
            skipped.append(Skipped(rel, f"folder cannot be listed ({e.strerror or e})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
                continue
            if os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            rel = os.path.relpath(entry.path, root_str).replace(os.sep, "/")
            reason = _unusable(entry, root_str, rel)
            if reason is None:
                paths.append(rel)
            elif reason:
                skipped.append(Skipped(rel, reason))
    paths.sort()
    skipped.sort(key=lambda s: s.path)
    return paths, skipped


def _unusable(entry: os.DirEntry, root_str: str, rel: str) -> str | None:
    """Why a file with an image extension cannot be used; None if it can, "" to ignore it silently."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name: it could not be stored or shown
        return "file name is not valid UTF-8: rename the file"
    try:
        st = entry.stat()  # follows a file symlink
    except OSError:
        return "broken symlink or symlink loop" if entry.is_symlink() else "file vanished while scanning"
    if entry.is_symlink():
        if not os.path.isfile(entry.path):  # a symlink to a folder named like an image
            return ""
        if not _inside(os.path.realpath(entry.path), root_str):
            return SYMLINK_OUTSIDE
    elif not entry.is_file(follow_symlinks=False):
        return ""  # sockets, fifos, devices named *.png
    if st.st_size == 0:
        return "empty file (0 bytes)"
    if not os.access(entry.path, os.R_OK):
        return "permission denied: the file cannot be read (check its permissions)"
    return None


# --- decoding -----------------------------------------------------------------------------------
def _check_rel(path) -> None:
    parts = path.split("/") if isinstance(path, str) else []
    if not parts or path.startswith("/") or ".." in parts or not all(parts):
        raise ImageError(str(path), "not a path relative to the images folder ('a/b.png', no '..')")


def _open(root, path: str, draft_side: int | None = None) -> Image.Image:
    """The first frame of ``root/path``, fully decoded and turned upright (EXIF orientation).

    Every failure, whatever Pillow raises for a damaged file, becomes an ``ImageError``.
    """
    _check_rel(path)
    full = Path(root) / path
    try:
        # The whole path, not only its last part: a folder swapped for a link out after the scan.
        if not _inside(os.path.realpath(full), os.path.realpath(root)):
            raise ImageError(path, SYMLINK_OUTSIDE)
        data = full.read_bytes()  # read once: the PNG check and the decode both use these bytes
    except FileNotFoundError:
        raise ImageError(
            path, "file not found: it was moved or deleted after the folder was scanned"
        ) from None
    except PermissionError:
        raise ImageError(path, "permission denied: the file cannot be read (check its permissions)") from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder, not an image file") from None
    except OSError as e:
        raise ImageError(path, f"the file cannot be read ({e.strerror or e})") from None
    if not data:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        im = Image.open(io.BytesIO(data))
        if im.format == "PNG":
            # Pillow checks only the header CRCs when decoding; verify() checks every chunk.
            im.verify()
            im = Image.open(io.BytesIO(data))
        if draft_side and im.format == "JPEG":
            im.draft(None, (draft_side, draft_side))  # decode big JPEGs at 1/2..1/8 scale: much faster
        # Image.open stands on frame 0 of animated GIF/WebP/PNG: that first frame is the one used.
        im.load()
        return ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as e:
        raise ImageError(
            path,
            f"too many pixels, possibly a decompression bomb ({e}); "
            "raise PIL.Image.MAX_IMAGE_PIXELS if you trust this file",
        ) from None
    except Image.UnidentifiedImageError:
        raise ImageError(path, "not an image Pillow can read (unknown format or damaged header)") from None
    except Exception as e:  # damaged files make Pillow raise almost anything
        reason = str(e) or type(e).__name__
        if "truncated" in reason:
            reason = f"file is truncated ({reason})"
        else:
            reason = f"damaged or unsupported image ({type(e).__name__}: {reason})"
        raise ImageError(path, reason) from None


def _shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 2:
        shape = (*shape, 3)  # (h, w) means RGB, as in Config
    if len(shape) != 3 or shape[2] not in (1, 3) or min(shape) < 1:
        raise ValueError(
            f"input_shape={input_shape!r} is invalid: expected (height, width[, channels 1 or 3])"
        )
    return shape


def _load_uint8(root, path: str, input_shape) -> np.ndarray:
    h, w, c = _shape(input_shape)
    im = _open(root, path, draft_side=max(h, w))
    im = to_mode(im, "L" if c == 1 else "RGB", max(h, w))
    if im.size != (w, h):
        # Aspect is not kept: the model needs one fixed shape. Pillow's BILINEAR antialiases when shrinking.
        im = im.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(im, dtype=np.uint8).reshape(h, w, c)


def load_array(root, path: str, input_shape) -> np.ndarray:
    """``root/path`` as float32 ``(h, w, c)`` in [0, 1]: upright, first frame, resized, scaled ONCE by 1/255.

    Models must not rescale again. Any unreadable or damaged file raises ``ImageError``.
    """
    return _load_uint8(root, path, input_shape).astype(np.float32) / np.float32(255)


def display_png(root, path: str, max_side: int = 384) -> bytes:
    """PNG bytes of the upright RGB image for the panel: small images upscaled (NEAREST), big ones shrunk."""
    im = to_mode(_open(root, path, draft_side=max_side), "RGB", max_side)
    w, h = im.size
    long = max(w, h)
    if long > max_side:
        scale = max_side / long
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        im = im.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    elif long < DISPLAY_MIN_SIDE:
        factor = math.ceil(DISPLAY_MIN_SIDE / long)  # whole factors keep pixels square
        scale = factor if long * factor <= max_side else max_side / long
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        im = im.resize(size, Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)  # speed over size: it goes to the browser once
    return buf.getvalue()


# --- the test split -----------------------------------------------------------------------------
def split_test(
    paths: Iterable[str], fraction: float, seed: int, groups: Iterable[Iterable[str]] | None = None
) -> list[str]:
    """A seeded random draw of about ``fraction`` of ``paths`` (sorted first) as the test split.

    At least one image when there are two or more and ``fraction > 0``; never all of them, so at
    least one is left for training. Returns the drawn paths sorted. ``groups`` (near-duplicates,
    e.g. ``DuplicateGroups``): each group goes wholly to one side, the side its first path (sorted)
    was drawn for, so a group is as likely to be held out as a single image; members not in
    ``paths`` are ignored. Without groups (or with none among ``paths``) the draw is the same.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValueError(
            f"setting test_fraction={fraction!r} is invalid: expected a number in [0, 1), e.g. 0.2"
        )
    ordered = sorted(set(paths))
    n = len(ordered)
    if n < 2 or fraction == 0:
        return []
    k = min(max(1, math.floor(n * fraction + 0.5)), n - 1)
    chosen = np.random.default_rng(seed).choice(n, size=k, replace=False)
    drawn = {ordered[i] for i in chosen}
    if groups is not None:
        drawn = _whole_groups(ordered, drawn, groups)
    return sorted(drawn)


def _whole_groups(ordered: list[str], drawn: set[str], groups: Iterable[Iterable[str]]) -> set[str]:
    """``drawn`` with each group moved wholly to the side of its first member; never all, never none."""
    present = set(ordered)
    units = [sorted(set(g) & present) for g in groups]
    units = [u for u in units if len(u) > 1]
    for unit in units:
        if unit[0] in drawn:
            drawn |= set(unit)
        else:
            drawn -= set(unit)
    grouped = {p for u in units for p in u}
    singles = [[p] for p in ordered if p not in grouped]
    all_units: list[list[str]] = sorted(units + singles)
    if len(all_units) < 2:
        return set()  # one group holds every image: holding it out would leave nothing to train on
    if len(drawn) == len(ordered):  # the groups took everything: give back the largest unit
        largest: list[str] = max(all_units, key=len)
        drawn -= set(largest)
    if not drawn:  # the groups left nothing: hold out the smallest unit
        smallest: list[str] = min(all_units, key=len)
        drawn |= set(smallest)
    return drawn


# --- the pool -----------------------------------------------------------------------------------
class ImagePool:
    """The images of one folder and a thread-safe cache of their arrays.

    ``.root`` is the resolved folder, ``.paths`` the sorted relative paths found by ``scan`` (or the
    ``paths`` given: a subset of an earlier scan), ``.skipped`` the files that could not be used
    (extended when a later decode fails). A folder without images is not an error: no ``.paths``.
    """

    def __init__(self, root, input_shape, paths=None):
        self.root: Path = _resolve_root(root)
        self.input_shape: tuple[int, int, int] = _shape(input_shape)
        self.paths, self.skipped = (sorted(paths), []) if paths is not None else scan(self.root)
        # uint8 keeps the cache 4x smaller than float32; arrays are scaled on the way out, once.
        self._cache: dict[str, np.ndarray] = {}
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()
        #: The memory-mapped cache of decoded images (``use_disk_cache``), or None: arrays kept in RAM.
        self.disk_cache: ArrayCache | None = None
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def use_disk_cache(self, folder) -> ArrayCache:
        """Keep decoded images in a memory-mapped file under ``folder`` instead of RAM (bounded memory).

        The file is named after the input shape and a hash of the paths, so it is reused by the next
        session on the same folder and replaced when the folder's content changes.
        """
        h, w, c = self.input_shape
        prefix = f"images-{h}x{w}x{c}-"
        name = prefix + fingerprint(self.paths, self.input_shape)
        cache = ArrayCache(folder, name, len(self.paths), self.input_shape, "uint8")
        remove_stale(folder, prefix, keep=name)
        with self._lock:
            self._index = {p: i for i, p in enumerate(self.paths)}
            self.disk_cache = cache
            self._cache.clear()
        return cache

    def _stat(self, path: str) -> os.stat_result | None:
        try:
            return os.stat(self.root / path)
        except (OSError, ValueError):
            return None

    def _from_disk(self, path: str, index: int) -> np.ndarray:
        cache = self.disk_cache
        assert cache is not None  # only called with a disk cache
        if cache.ready([index])[0]:
            return cache.get([index])[0]
        stat = self._stat(path)
        state = cache.check(index, stat)
        if state == FILLED:
            return cache.get([index])[0]
        try:
            arr = _load_uint8(self.root, path, self.input_shape)
        except ImageError as e:
            cache.put(index, None, stat)
            self._record_failure(path, e.reason)
            raise
        cache.put(index, arr, stat)
        return arr

    def _record_failure(self, path: str, reason: str) -> None:
        with self._lock:
            if path not in self._failed:
                self._failed[path] = reason
                self.skipped.append(Skipped(path, reason))

    def _uint8(self, path: str) -> np.ndarray:
        if self.disk_cache is not None:
            index = self._index.get(path)
            failed = self._failed.get(path)
            if failed is not None:
                raise ImageError(path, failed)
            if index is not None:
                return self._from_disk(path, index)
        with self._lock:
            hit = self._cache.get(path)
            failed = self._failed.get(path)
        if hit is not None:
            return hit
        if failed is not None:  # a damaged file stays damaged for this pool: do not decode it again
            raise ImageError(path, failed)
        try:
            arr = _load_uint8(
                self.root, path, self.input_shape
            )  # outside the lock: threads decode in parallel
        except ImageError as e:
            self._record_failure(path, e.reason)
            raise
        arr.setflags(write=False)
        with self._lock:
            return self._cache.setdefault(path, arr)

    def array(self, path: str) -> np.ndarray:
        """float32 ``(h, w, c)`` in [0, 1], a fresh copy; ``ImageError`` once recorded in ``.skipped``."""
        return self._uint8(path).astype(np.float32) / np.float32(255)

    def arrays(self, paths: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Stacked float32 ``(n, h, w, c)`` of the ``paths`` that load, and those paths (failures out)."""
        out = np.empty((len(paths), *self.input_shape), dtype=np.float32)
        ok: list[str] = []
        cache = self.disk_cache
        if cache is not None and paths:
            # Fast path: slots already filled and checked in this process are gathered in one copy.
            index = np.array([self._index.get(p, -1) for p in paths], dtype=np.int64)
            known = index >= 0
            ready = np.zeros(len(paths), dtype=bool)
            ready[known] = cache.ready(index[known])
            if ready.all():
                out[:] = cache.get(index)
                out /= np.float32(255)
                return out, list(paths)
        for path in paths:
            try:
                out[len(ok)] = self._uint8(path)
            except ImageError:
                continue
            ok.append(path)
        out = out[: len(ok)]
        out /= np.float32(255)
        return out, ok

    def fill(self, paths: Sequence[str] | None = None, workers: int = 2, progress=None) -> int:
        """Decode ``paths`` (default: all) into the cache ahead of time with a few worker threads.

        ``progress(done, total)`` is called now and then (from the calling thread). Files that fail
        are recorded in ``.skipped`` as usual. Returns how many images are now cached.
        """
        import concurrent.futures

        todo = list(self.paths if paths is None else paths)
        total = len(todo)
        chunk = 256  # images per task: results are counts, so memory stays at a few chunks
        attempted = loaded = 0
        if progress is not None:
            progress(0, total)
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="oal-fill"
        ) as ex:
            starts = range(0, total, chunk)
            counts = ex.map(lambda i: len(self.arrays(todo[i : i + chunk])[1]), starts)
            for start, n in zip(starts, counts, strict=True):
                attempted = min(start + chunk, total)
                loaded += n
                if progress is not None:
                    progress(attempted, total)
        if self.disk_cache is not None:
            self.disk_cache.flush()
        return loaded
