"""How alike two images are, for near-duplicates: thumbnails, the candidate search, the verification.

A coarse descriptor (block averages beside low-frequency Fourier magnitudes) finds candidates with
faiss; ``indexed_pair_scores`` verifies pairs: the centre of one grey thumbnail is searched in the
other, zoomed by 1 to 1.31, at every position (by FFT), and the best normalised cross-correlation of
the plain and of the band-passed thumbnails (the lower of the two) is the score. Each image's
transforms are computed once per batch of pairs (pairs come sorted by their first image, so a batch
holds few images). Hand-written, as no library offers a batched zoom-tolerant template match; six
zooms instead of four lifted crops' scores but not the tuning sets' results, at 1.5 times the time
(bench/duplicates.py). Used by ``duplicates``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

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
#: Side of the coarse descriptor the candidate search uses, and the weight of its Fourier magnitudes
#: beside the block averages: 3, not 1, found 96% of the tuning sets' crop pairs instead of 71-81%
#: (an off-centre crop moves the blocks; the magnitudes barely change).
COARSE, FOURIER_WEIGHT = 8, 3.0
#: Neighbours per image each search returns (6: with the weight above, as many pairs to verify as 8
#: with the weight 1), and the descriptor similarity below which a neighbour is not worth verifying.
NEIGHBOURS, CANDIDATE_MIN = 6, 0.5
#: Up to this many images the search compares every pair; above, an inverted file probing PROBES lists.
EXACT_SEARCH_UP_TO, PROBES = 20_000, 16

#: Added to each variance in the correlation: flat images (blank scans) are no one's near-duplicate by
#: noise alone (their exact copies still group).
_FLAT = (1 / 255) ** 2
#: Images decoded per batch.
_BATCH = 512


# --- features ---------------------------------------------------------------------------------------
def grey_images(arrays: np.ndarray) -> np.ndarray:
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


def descriptor(thumbs: np.ndarray) -> np.ndarray:
    """(n, d) unit vectors, near for an image and its near-duplicates: block averages of the blurred
    thumbnail (COARSE x COARSE) beside the low-frequency Fourier magnitudes (which a shift leaves as is)."""
    n = len(thumbs)
    step = THUMB // COARSE
    blurred = gaussian_filter(thumbs, sigma=(0, 2, 2), mode="nearest")
    coarse = blurred.reshape(n, COARSE, step, COARSE, step).mean(axis=(2, 4)).reshape(n, -1)
    spectrum = np.abs(sfft.rfft2(thumbs - thumbs.mean(axis=(1, 2), keepdims=True)))
    low = np.concatenate([spectrum[:, :COARSE, :COARSE], spectrum[:, -COARSE + 1 :, :COARSE]], axis=1)
    return _unit(np.hstack([_unit(coarse), FOURIER_WEIGHT * _unit(np.log1p(10 * low.reshape(n, -1)))]))


def zoomed_in(thumbs: np.ndarray, fraction: float) -> np.ndarray:
    """The centre ``fraction`` of each thumbnail resized back: what a crop of it looks like."""
    m = round(THUMB * (1 - fraction) / 2)
    return np.stack([_resize(t[m : THUMB - m, m : THUMB - m], THUMB) for t in thumbs])


def _band(thumbs: np.ndarray) -> np.ndarray:
    """The thumbnails less their smooth part: two gradients or two skies no longer look alike."""
    return thumbs - gaussian_filter(thumbs, sigma=(0, BAND, BAND), mode="nearest")


def sharp_energy(thumbs: np.ndarray) -> np.ndarray:
    """(n,) the spread of each band-passed thumbnail: near 0 for a smooth image, whose band-passed
    correlation is noise (``low_texture`` scores such pairs otherwise)."""
    return _band(thumbs).reshape(len(thumbs), -1).std(axis=1)


def thumbnails(pool, paths: Sequence[str], progress, cancel, done0: int, total: int):
    """(thumbnails (n, THUMB, THUMB), pixel hashes, the paths that loaded) of ``paths``, in batches."""
    thumbs, hashes, ok = [], [], []
    for start in range(0, len(paths), _BATCH):
        check_cancel(cancel)
        arrays, loaded = pool.arrays(list(paths[start : start + _BATCH]))
        for array, grey in zip(arrays, grey_images(arrays), strict=True):
            hashes.append(
                hashlib.blake2b(np.round(array * 255).astype(np.uint8).tobytes(), digest_size=16).digest()
            )
            thumbs.append(_resize(grey, THUMB))
        ok += loaded
        report(progress, done0 + min(start + _BATCH, len(paths)), total)
    if not thumbs:
        return np.zeros((0, THUMB, THUMB), np.float32), hashes, ok
    # A little blur: a zoomed thumbnail is softer than a crop's own, and JPEG noise goes too.
    return gaussian_filter(np.stack(thumbs), sigma=(0, BLUR, BLUR), mode="nearest"), hashes, ok


# --- verification -----------------------------------------------------------------------------------
def normalised(x: np.ndarray) -> np.ndarray:
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
_FFT_SHAPES = {side: (sfft.next_fast_len(side, real=True),) * 2 for side in ZOOMS}  # zero padding: no wrap


def _box_matrix(side: int) -> np.ndarray:
    """(valid, side) ones in a band CENTRE wide: ``B @ x @ B.T`` sums every CENTRE x CENTRE window."""
    valid = side - CENTRE + 1
    rows = np.arange(valid)[:, None]
    return ((np.arange(side) >= rows) & (np.arange(side) < rows + CENTRE)).astype(np.float64)


_BOX_MATRICES = {side: _box_matrix(side) for side in ZOOMS}


def _window_sums(x: np.ndarray) -> np.ndarray:
    """Sums of every CENTRE x CENTRE window of each (n, side, side) image (a box filter is separable)."""
    box = _BOX_MATRICES[x.shape[1]]
    return box @ x.astype(np.float64) @ box.T


def _features(thumbs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per zoom, what every pair with these images reuses: the zoomed image's spectrum, the inverse norm
    of each of its windows, and the (conjugate) spectrum of the image's own normalised centre."""
    m = (THUMB - CENTRE) // 2
    k = CENTRE * CENTRE
    centre = thumbs[:, m : m + CENTRE, m : m + CENTRE]
    centre = centre - centre.mean(axis=(1, 2), keepdims=True)
    centre = centre / np.sqrt((centre**2).sum(axis=(1, 2), keepdims=True) + k * _FLAT)
    out = []
    for side, zoom in _ZOOM_MATRICES.items():
        shape = _FFT_SHAPES[side]
        zoomed = zoom @ thumbs @ zoom.T
        sums, squares = _window_sums(zoomed), _window_sums(zoomed * zoomed)
        inv_norm = 1 / np.sqrt(np.maximum(squares - sums * sums / k, 0) + k * _FLAT)
        spectrum = sfft.rfft2(zoomed, s=shape)
        template = np.conj(sfft.rfft2(centre, s=shape))
        out.append((spectrum, inv_norm.astype(np.float32), template))
    return out


def _best_ncc(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each pair (a[i], b[i]) of rows of ``thumbs``: the best normalised cross-correlation of either
    image's centre anywhere in the other, over the zooms (the products by FFT, the windows' norms by
    box sums; each image's transforms computed once for all its pairs)."""
    used, at = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = at[: len(a)], at[len(a) :]
    best = np.full(len(a), -1.0, dtype=np.float32)
    for (spectrum, inv_norm, template), side in zip(_features(thumbs[used]), ZOOMS, strict=True):
        valid = side - CENTRE + 1
        both = np.concatenate([spectrum[ib] * template[ia], spectrum[ia] * template[ib]])  # a in b, b in a
        ncc = sfft.irfft2(both, s=_FFT_SHAPES[side])[:, :valid, :valid]
        ncc *= np.concatenate([inv_norm[ib], inv_norm[ia]])
        top = ncc.reshape(len(ncc), -1).max(axis=1)
        best = np.maximum(best, np.maximum(top[: len(a)], top[len(a) :]))
    return best


def indexed_pair_scores(thumbs: np.ndarray, pairs: np.ndarray, floor: float | None = None) -> np.ndarray:
    """Verification score of each pair ``(thumbs[i], thumbs[j])`` of ``pairs`` (m, 2): the better of
    both directions (either image may be the crop of the other), the lower of the plain and the
    band-passed images (smooth images correlate well with any other smooth image; the band-passed alone
    is noisy). ``floor``: scores below it need not be exact (a pair whose plain score is below keeps
    it: an upper bound), which halves the work on pairs that are no duplicates."""
    pairs = np.asarray(pairs).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(0, np.float32)
    plain = _best_ncc(thumbs, pairs[:, 0], pairs[:, 1])
    keep = np.arange(len(pairs)) if floor is None else np.flatnonzero(plain >= floor)
    if len(keep):  # the band-passed score only matters where the plain one passes
        used, at = np.unique(pairs[keep], return_inverse=True)
        at = at.reshape(-1, 2)
        band = _best_ncc(_band(thumbs[used]), at[:, 0], at[:, 1])
        plain[keep] = np.minimum(plain[keep], band)
    return plain


def plain_pair_scores(thumbs: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The plain (not band-passed) best correlation of each pair ``(thumbs[i], thumbs[j])`` of ``pairs``
    (m, 2), shift- and zoom-tolerant as ``indexed_pair_scores``."""
    pairs = np.asarray(pairs).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(0, np.float32)
    return _best_ncc(thumbs, pairs[:, 0], pairs[:, 1])


# --- candidates ----------------------------------------------------------------------------------------
def search_candidates(vectors: np.ndarray, queries: np.ndarray, offset: int, k: int, floor: float):
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


def check_cancel(cancel) -> None:
    """Raise ``Cancelled`` when ``cancel`` (a callable or a ``threading.Event``) says so."""
    if cancel is None:
        return
    stop = cancel.is_set() if isinstance(cancel, threading.Event) else cancel()
    if stop:
        raise Cancelled("finding duplicates was cancelled")


def report(progress, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


class Cancelled(Exception):
    """``find_groups`` was cancelled (its ``cancel`` said so) before it finished."""


def components(pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The groups (two or more indices, ascending; groups by their first) that the ``pairs`` link."""
    edges = np.array(list(pairs), dtype=np.int64).reshape(-1, 2)
    if not len(edges):
        return []
    n = int(edges.max()) + 1
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for x in np.unique(edges).tolist():
        members.setdefault(int(labels[x]), []).append(x)
    return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])
