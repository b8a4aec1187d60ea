"""Duplicate and near-duplicate images of a pool, as groups, and keeping them on one side of the test reserve.

A person should not label the same thing twice, and a near-duplicate of a training image in the test
reserve makes the estimate look better than the model is. ``find_groups`` finds both kinds:

- *exact*: identical pixels as the model sees them (a hash of the pool's decoded array);
- *near*: crops (down to about 80% of the side, resized back), re-encodes (JPEG, PNG), small shifts
  and brightness or contrast changes. Candidates come from a nearest-neighbour search (faiss) over a
  coarse 8x8 descriptor of each image (or over feature vectors given, e.g. a backbone's embeddings);
  each candidate pair is then verified on 32x32 grey thumbnails: the centre of one is searched in the
  other, zoomed by 1 to 1.3, at every position, and the best normalised cross-correlation must reach
  ``NEAR_THRESHOLD``. Correlation ignores brightness and contrast; the search covers crops and shifts.

Groups are the connected components of the verified pairs. ``bench/duplicates.py`` measures precision,
recall and time and says on which sets the thresholds were chosen. Everything runs in the calling
thread, in batches, with ``progress(done, total)`` and ``cancel()`` checked between batches, so a
background thread can run it and stop it. No widgets, no TensorFlow.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter

#: Side of the grey thumbnails pairs are verified on, and of the centre searched for in the other image.
THUMB, CENTRE = 32, 24
#: Sides the other thumbnail is zoomed to: zoom 1 (shifts up to 1/8 of the side) to 1.31 (crops to ~76%).
ZOOMS = (32, 35, 38, 42)
#: Gaussian blur (pixels of the thumbnail) before comparing.
BLUR = 1.0
#: Gaussian (pixels) whose blur is taken away for the band-passed comparison.
BAND = 4.0
#: The image's centre, zoomed in by these, also searches for neighbours: crops of it are found so.
QUERY_ZOOMS = (0.875, 0.8)
#: Side of the coarse descriptor the candidate search uses.
COARSE = 8
#: Neighbours per image the search returns, and the descriptor similarity below which a neighbour is
#: not worth verifying (loose: it only saves verification time).
NEIGHBOURS, CANDIDATE_MIN = 10, 0.5
#: Up to this many images the search compares every pair; above, an inverted file probing PROBES lists.
EXACT_SEARCH_UP_TO, PROBES = 20_000, 16
#: Best normalised cross-correlation a verified near-duplicate pair reaches (measured: bench/duplicates.py).
NEAR_THRESHOLD = 0.97
#: A pair scoring this much always joins a group (identical pixels score 1.0); below it an image
#: joins only its best-matching partner (``linked``).
SURE = 0.995
#: Added to each variance in the correlation: flat images (blank scans) are no one's near-duplicate by
#: noise alone (their exact copies still group).
_FLAT = (1 / 255) ** 2
_BATCH = 512
_PAIR_BATCH = 128


class Cancelled(Exception):
    """``find_groups`` was cancelled (its ``cancel`` said so) before it finished."""


@dataclass(frozen=True)
class DuplicateGroups:
    """Groups of images that are (near-)duplicates of each other: tuples of paths, each sorted.

    ``kinds[i]`` is ``"exact"`` when every member of group ``i`` has identical pixels, else ``"near"``.
    ``scores`` maps each verified pair ``(a, b)`` (a < b) to its correlation (1.0 for exact copies).
    ``seen`` keeps, per image looked at, what ``find_groups(..., previous=)`` reuses for a grown pool.
    """

    groups: tuple[tuple[str, ...], ...] = ()
    kinds: tuple[str, ...] = ()
    scores: Mapping[tuple[str, str], float] = field(default_factory=dict)
    seen: Mapping[str, tuple[np.ndarray, bytes]] = field(default_factory=dict, repr=False, compare=False)
    _of: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for i, group in enumerate(self.groups):
            for path in group:
                self._of[path] = i

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        return iter(self.groups)

    def group_of(self, path: str) -> tuple[str, ...]:
        """The group holding ``path`` (itself among them), or ``()`` when it has no duplicate."""
        i = self._of.get(path)
        return () if i is None else self.groups[i]

    def others(self, path: str) -> tuple[str, ...]:
        """The duplicates of ``path``, itself left out."""
        return tuple(p for p in self.group_of(path) if p != path)

    def index(self, path: str) -> int | None:
        """The number of the group holding ``path`` (its position in ``groups``), or None."""
        return self._of.get(path)

    @property
    def n_images(self) -> int:
        """Images that have at least one duplicate."""
        return len(self._of)


# --- features ---------------------------------------------------------------------------------------
def _grey(arrays: np.ndarray) -> np.ndarray:
    """(n, h, w) float32 grey in [0, 1] from the pool's (n, h, w, c) arrays."""
    if arrays.shape[-1] == 3:
        return arrays @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return arrays[..., 0]


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    """A float32 grey image resized to ``side`` x ``side`` (antialiased when shrinking)."""
    if image.shape == (side, side):
        return image
    im = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F")
    return np.asarray(im.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0), np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.sqrt((x**2).sum(axis=1, keepdims=True) + 1e-6), dtype=np.float32)


def _descriptor(thumbs: np.ndarray) -> np.ndarray:
    """(n, d) unit vectors, near for an image and its near-duplicates: block averages of the blurred
    thumbnail (COARSE x COARSE) beside the low-frequency Fourier magnitudes (which a shift leaves as is)."""
    n = len(thumbs)
    step = THUMB // COARSE
    blurred = gaussian_filter(thumbs, sigma=(0, 2, 2), mode="nearest")
    coarse = blurred.reshape(n, COARSE, step, COARSE, step).mean(axis=(2, 4)).reshape(n, -1)
    spectrum = np.abs(np.fft.rfft2(thumbs - thumbs.mean(axis=(1, 2), keepdims=True)))
    low = np.concatenate([spectrum[:, :COARSE, :COARSE], spectrum[:, -COARSE + 1 :, :COARSE]], axis=1)
    return _unit(np.hstack([_unit(coarse), _unit(np.log1p(10 * low.reshape(n, -1)))]))


def _zoomed_in(thumbs: np.ndarray, fraction: float) -> np.ndarray:
    """The centre ``fraction`` of each thumbnail resized back: what a crop of it looks like."""
    m = round(THUMB * (1 - fraction) / 2)
    return np.stack([_resize(t[m : THUMB - m, m : THUMB - m], THUMB) for t in thumbs])


def _band(thumbs: np.ndarray) -> np.ndarray:
    """The thumbnails less their smooth part: two gradients or two skies no longer look alike."""
    return thumbs - gaussian_filter(thumbs, sigma=(0, BAND, BAND), mode="nearest")


def _thumbnails(pool, paths: Sequence[str], progress, cancel, done0: int, total: int):
    """(thumbnails (n, THUMB, THUMB), pixel hashes, the paths that loaded) of ``paths``, in batches."""
    thumbs, hashes, ok = [], [], []
    for start in range(0, len(paths), _BATCH):
        _check(cancel)
        arrays, loaded = pool.arrays(list(paths[start : start + _BATCH]))
        for array, grey in zip(arrays, _grey(arrays), strict=True):
            hashes.append(
                hashlib.blake2b(np.round(array * 255).astype(np.uint8).tobytes(), digest_size=16).digest()
            )
            thumbs.append(_resize(grey, THUMB))
        ok += loaded
        _report(progress, done0 + min(start + _BATCH, len(paths)), total)
    if not thumbs:
        return np.zeros((0, THUMB, THUMB), np.float32), hashes, ok
    # A little blur: a zoomed thumbnail is softer than a crop's own, and JPEG noise goes too.
    return gaussian_filter(np.stack(thumbs), sigma=(0, BLUR, BLUR), mode="nearest"), hashes, ok


# --- verification -----------------------------------------------------------------------------------
def _normalised(x: np.ndarray) -> np.ndarray:
    """Rows zero-mean, scaled so that the dot product of two rows is their (regularised) correlation."""
    x = x - x.mean(axis=-1, keepdims=True)
    k = x.shape[-1]
    return x / np.sqrt((x**2).sum(axis=-1, keepdims=True) + k * _FLAT)


def _zoom_matrix(side: int) -> np.ndarray:
    """(side, THUMB) bilinear interpolation (pixel centres, as Pillow): ``M @ x @ M.T`` zooms x to side."""
    src = np.clip((np.arange(side) + 0.5) * THUMB / side - 0.5, 0, THUMB - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, THUMB - 1)
    m = np.zeros((side, THUMB), np.float32)
    m[np.arange(side), low] += 1 - (src - low)
    m[np.arange(side), high] += src - low
    return m


_ZOOM_MATRICES = {side: _zoom_matrix(side) for side in ZOOMS}
#: Spectrum of a CENTRE x CENTRE box of ones at each zoomed side: window sums by one product.
_FFT_SHAPES = {side: (sfft.next_fast_len(side, real=True),) * 2 for side in ZOOMS}  # zero padding: no wrap
_BOXES = {side: sfft.rfft2(np.ones((CENTRE, CENTRE), np.float32), s=_FFT_SHAPES[side]) for side in ZOOMS}


def _one_way(templates: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Best correlation of each template (the centre of one image) anywhere in the other, over zooms.

    Every position at once: the products by FFT, the windows' sums and squares by FFT with a box."""
    m = (THUMB - CENTRE) // 2
    k = CENTRE * CENTRE
    centre = templates[:, m : m + CENTRE, m : m + CENTRE]
    centre = centre - centre.mean(axis=(1, 2), keepdims=True)
    centre_var = (centre**2).sum(axis=(1, 2))
    best = np.full(len(templates), -1.0, dtype=np.float32)
    for side, zoom in _ZOOM_MATRICES.items():
        shape = _FFT_SHAPES[side]
        valid = side - CENTRE + 1
        zoomed = zoom @ others @ zoom.T
        spectrum, box = sfft.rfft2(zoomed, s=shape), np.conj(_BOXES[side])
        products = sfft.irfft2(spectrum * np.conj(sfft.rfft2(centre, s=shape)), s=shape)[:, :valid, :valid]
        sums = sfft.irfft2(spectrum * box, s=shape)[:, :valid, :valid]
        squares = sfft.irfft2(sfft.rfft2(zoomed * zoomed, s=shape) * box, s=shape)[:, :valid, :valid]
        window_var = np.maximum(squares - sums * sums / k, 0)
        ncc = products / np.sqrt((window_var + k * _FLAT) * (centre_var + k * _FLAT)[:, None, None])
        best = np.maximum(best, ncc.reshape(len(templates), -1).max(axis=1))
    return best


def pair_scores(thumbs_a: np.ndarray, thumbs_b: np.ndarray, floor: float | None = None) -> np.ndarray:
    """Verification score of each pair ``(thumbs_a[i], thumbs_b[i])``: the better of both directions
    (either image may be the crop of the other), the lower of the plain and the band-passed images
    (smooth images correlate well with any other smooth image; the band-passed alone is noisy).
    ``floor``: scores below it need not be exact (a pair whose plain score is below is not looked at
    again), which halves the work on pairs that are no duplicates."""
    if not len(thumbs_a):
        return np.zeros(0, np.float32)
    plain = np.maximum(_one_way(thumbs_a, thumbs_b), _one_way(thumbs_b, thumbs_a))
    if floor is not None:  # the band-passed score only matters where the plain one passes
        keep = np.flatnonzero(plain >= floor)
        if len(keep) < len(plain):
            out = plain.copy()
            out[keep] = pair_scores(thumbs_a[keep], thumbs_b[keep])
            return out
    band_a, band_b = _band(thumbs_a), _band(thumbs_b)
    return np.minimum(plain, np.maximum(_one_way(band_a, band_b), _one_way(band_b, band_a)))


# --- candidates ----------------------------------------------------------------------------------------
def _candidates(vectors: np.ndarray, queries: np.ndarray, offset: int, k: int, floor: float):
    """Pairs (i, j), i a query (index ``offset + row``) and j any vector, j != i, similarity >= floor."""
    import faiss

    d = vectors.shape[1]
    if len(vectors) > EXACT_SEARCH_UP_TO:
        # An inverted file: each query scans a few of ~sqrt(n) clusters instead of every vector.
        lists = int(4 * np.sqrt(len(vectors)))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vectors[np.random.default_rng(0).permutation(len(vectors))[: 64 * lists]])
        ivf.nprobe = PROBES
        index: faiss.Index = ivf
    else:
        index = faiss.IndexFlatIP(d)
    index.add(vectors)
    k = min(k + 1, len(vectors))
    sims, found = index.search(queries, k)
    rows = np.repeat(np.arange(len(queries)) + offset, k)
    cols, sims = found.ravel(), sims.ravel()
    keep = (cols >= 0) & (cols != rows) & (sims >= floor)
    i, j = rows[keep], cols[keep]
    pairs = np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


# --- grouping ------------------------------------------------------------------------------------------
def _components(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for x in range(n):
        members.setdefault(root(x), []).append(x)
    return [m for m in members.values() if len(m) > 1]


def _check(cancel) -> None:
    if cancel is None:
        return
    stop = cancel.is_set() if isinstance(cancel, threading.Event) else cancel()
    if stop:
        raise Cancelled("finding duplicates was cancelled")


def _report(progress, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def find_groups(
    pool,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    *,
    features: np.ndarray | None = None,
    threshold: float = NEAR_THRESHOLD,
    previous: DuplicateGroups | None = None,
    workers: int = 2,
) -> DuplicateGroups:
    """The groups of exact and near-duplicate images among ``pool.paths`` (an ``ImagePool``).

    ``progress(done, total)`` is called between batches (decoding counts as the first half of the
    work, verification as the second); ``cancel`` (a callable or a ``threading.Event``) is checked
    between batches and raises ``Cancelled``. ``features`` (n, d), one row per ``pool.paths``, replace
    the coarse descriptor for the candidate search (verification still looks at the pixels).
    ``previous``: an earlier result on the same folder; its thumbnails are reused, and when no
    ``features`` are given only pairs with a new image are searched and verified (a pool that grew).
    ``workers``: threads verifying pairs. Images that cannot be decoded are left out (the pool
    records them in ``.skipped``).
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold={threshold!r} is invalid: expected a correlation in (0, 1], e.g. 0.9")
    paths = list(pool.paths)
    if features is not None:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != len(paths):
            raise ValueError(
                f"features of shape {features.shape} do not match the pool's {len(paths)} images: "
                "pass one row per pool.paths, in that order"
            )
    known = dict(previous.seen) if previous is not None else {}
    new = [p for p in paths if p not in known]
    total = 2 * len(paths)
    thumbs_new, hashes_new, loaded = _thumbnails(pool, new, progress, cancel, 0, total)
    old = [p for p in paths if p in known]
    order = old + loaded  # old images first: the search then queries the new ones only
    if not order:
        return DuplicateGroups()
    reused = np.array([known[p][0] for p in old], dtype=np.float32).reshape(-1, THUMB, THUMB)
    thumbs = np.concatenate([reused, thumbs_new])
    hashes = [known[p][1] for p in old] + hashes_new
    _report(progress, len(paths), total)
    verified = _exact_pairs(hashes)
    if features is not None:
        row = {p: i for i, p in enumerate(paths)}
        vectors = _normalised(features[[row[p] for p in order]])
        start = 0
    else:
        vectors = _descriptor(thumbs)
        start = len(old)
        at = {p: i for i, p in enumerate(order)}
        for (a, b), s in previous.scores.items() if previous is not None else ():
            if a in at and b in at and s >= threshold:  # pairs of old images were verified before
                verified.setdefault((min(at[a], at[b]), max(at[a], at[b])), s)
    candidates = _candidates(vectors, vectors[start:], start, NEIGHBOURS, CANDIDATE_MIN)
    if features is None:
        for fraction in QUERY_ZOOMS:
            queries = _descriptor(_zoomed_in(thumbs[start:], fraction))
            more = _candidates(vectors, queries, start, NEIGHBOURS, CANDIDATE_MIN)
            candidates = np.unique(np.concatenate([candidates, more]), axis=0)
    n = len(paths)
    batches = [candidates[i : i + _PAIR_BATCH] for i in range(0, len(candidates), _PAIR_BATCH)]

    def verify(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check(cancel)
        return part, pair_scores(thumbs[part[:, 0]], thumbs[part[:, 1]], floor=threshold)

    # numpy's products and scipy's FFTs release the GIL: threads use both cores.
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="oal-duplicates") as ex:
        for done, (part, scores) in enumerate(ex.map(verify, batches), start=1):
            for (i, j), score in zip(part.tolist(), scores.tolist(), strict=True):
                if score >= threshold:
                    verified.setdefault((i, j), score)
            _report(progress, n + n * done // len(batches), total)
    _report(progress, total, total)
    seen = {p: (thumbs[i].astype(np.float16), hashes[i]) for i, p in enumerate(order)}
    return _result(order, hashes, verified, seen)


def _exact_pairs(hashes: Sequence[bytes]) -> dict[tuple[int, int], float]:
    """Each image with identical pixels paired with the first such image (score 1.0)."""
    first: dict[bytes, int] = {}
    pairs = {}
    for i, h in enumerate(hashes):
        j = first.setdefault(h, i)
        if j != i:
            pairs[(j, i)] = 1.0
    return pairs


def linked(verified: Mapping[tuple[int, int], float]) -> list[tuple[int, int]]:
    """The verified pairs that join groups: each image's best partner (and any pair scoring ``SURE``).

    Joining every pair above the threshold chains look-alikes (one handwritten 1 to the next) into
    groups of hundreds; a planted copy's best partner is its original, a distinct image's best
    partner is one look-alike at most.
    """
    best: dict[int, tuple[float, int]] = {}
    for (i, j), score in verified.items():
        for a, b in ((i, j), (j, i)):
            if score > best.get(a, (-1.0, -1))[0]:
                best[a] = (score, b)
    return [
        (i, j) for (i, j), score in verified.items() if score >= SURE or best[i][1] == j or best[j][1] == i
    ]


def _result(order, hashes, verified, seen) -> DuplicateGroups:
    groups, kinds = [], []
    for members in _components(len(order), linked(verified)):
        paths = tuple(sorted(order[i] for i in members))
        groups.append(paths)
        kinds.append("exact" if len({hashes[i] for i in members}) == 1 else "near")
    ranked = sorted(zip(groups, kinds, strict=True))
    scores = {}
    for (i, j), s in verified.items():
        a, b = sorted((order[i], order[j]))
        scores[(a, b)] = float(s)
    return DuplicateGroups(
        groups=tuple(g for g, _ in ranked), kinds=tuple(k for _, k in ranked), scores=scores, seen=seen
    )


# --- the test reserve -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReserveChanges:
    """What the test reserve must lose (``leave``) and gain (``join``) so no group straddles it."""

    leave: frozenset[str] = frozenset()
    join: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.leave or self.join)


def reserve_changes(
    test: Iterable[str], training: Iterable[str], groups: Iterable[Iterable[str]]
) -> ReserveChanges:
    """How to fix a test reserve chosen before the groups were known (a pure function).

    ``test``: the stored test reserve (labelled or not); ``training``: the images labelled for
    training (the reserve's own are ignored here). A reserve image in a group with a training image
    must leave the reserve (the model has learnt its near-duplicate: it would grade itself on what it
    has seen); otherwise the unlabelled members of a group that holds a reserve image join the
    reserve. Applying the changes and asking again gives no changes.
    """
    test_set = set(test)
    train_set = set(training) - test_set
    leave: set[str] = set()
    join: set[str] = set()
    for group in groups:
        members = set(group)
        held = members & test_set
        if not held:
            continue
        if members & train_set:
            leave |= held
        else:
            join |= members - test_set
    return ReserveChanges(frozenset(leave), frozenset(join))


def whole_groups_only(chosen: Iterable[str], groups: Iterable[Iterable[str]]) -> set[str]:
    """``chosen`` less the members of every group it holds only part of (e.g. ``simulate``'s oracle
    set after sampling it down: the rest of a cut group goes back to the pool with them)."""
    out = set(chosen)
    for group in groups:
        members = set(group)
        if members & out and not members <= out:
            out -= members
    return out
