"""A second, finer look at the pairs a small pool leaves in doubt, for near-duplicates.

In a pool of fewer than ``duplicates.FULL_CROWD`` images a pair must stand further above its crowd
(``duplicates.pool_margin``): two look-alikes stand out among a few images. A true crop or re-encode
scoring about 0.95 on 32-px thumbnails falls in the same zone. ``rescued`` looks again at those pairs
only (few: none from ``FULL_CROWD`` images on), resized to ``SIDE`` pixels (from the pool's arrays: the
gain is less blur and a finer zoom search more than resolution), where a crop of the same picture comes
close to 1 and two different handwritten digits do not. A simple
picture (one straight edge, a stroke) matches another one at many places along it, as well as any
crop would: the match must also be unique in place (the aperture problem), its peak ``UNIQUE`` above
the best match ``RADIUS`` pixels or more away. About 20 ms a pair. Settings chosen on the pairs in doubt
of photo patches, digits and MNIST (``bench/duplicates_small.py``, ``bench/duplicates.py``); the
correlation is scikit-image's ``match_template`` written with scipy (scikit-image is no runtime
dependency). No widgets, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from .similarity import check_cancel, grey_images

#: Side (pixels) of the finer look; blur and band-pass scale with it as on the 32-px thumbnails.
SIDE = 64
BLUR, BAND = SIDE / 32, 4 * SIDE / 32
#: Zooms the other image is searched at (crops down to ~76% of the side), and the centre searched for.
ZOOMS = tuple(np.linspace(1.0, 1.32, 9))
CENTRE = 48
#: A rescued pair scores at least ``FINE`` and its best match stands ``UNIQUE`` above every match
#: ``RADIUS`` pixels or more away from it.
FINE, UNIQUE, RADIUS = 0.98, 0.05, 4
#: Added to each variance: the pairs looked at have structure (they passed the coarse look), so only
#: enough to keep a flat window from dividing by zero.
_FLAT = 1e-12


def _prepared(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image at ``SIDE`` pixels, blurred, and its band-passed version."""
    im = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32), mode="F")
    x = np.asarray(im.resize((SIDE, SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0), np.float64)
    x = gaussian_filter(x, BLUR, mode="nearest")
    return x, x - gaussian_filter(x, BAND, mode="nearest")


def _ncc(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of ``template`` at every place inside ``image`` (as
    scikit-image's ``match_template``; scipy only, a runtime dependency)."""
    k = template.size
    t = template - template.mean()
    products = fftconvolve(image, t[::-1, ::-1], mode="valid")
    window = np.ones(template.shape)
    sums = fftconvolve(image, window, mode="valid")
    squares = fftconvolve(image * image, window, mode="valid")
    norm = np.sqrt(np.maximum(squares - sums * sums / k, 0) + k * _FLAT) * np.sqrt((t * t).sum() + k * _FLAT)
    return products / norm


def _zoomed(x: np.ndarray, zoom: float) -> np.ndarray:
    side = max(round(SIDE * zoom), SIDE)
    if side == SIDE:
        return x
    im = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32), mode="F")
    return np.asarray(im.resize((side, side), Image.Resampling.BILINEAR), np.float64)


def _best(a: np.ndarray, b: np.ndarray, unique: bool) -> tuple[float, float]:
    """The best correlation of either image's centre in the other, over the zooms, and how far its
    peak stands above the best match ``RADIUS`` pixels or more away (when ``unique``)."""
    m = (SIDE - CENTRE) // 2
    top, margin = -1.0, 0.0
    for x, y in ((a, b), (b, a)):
        centre = x[m : m + CENTRE, m : m + CENTRE]
        for zoom in ZOOMS:
            ncc = _ncc(_zoomed(y, zoom), centre)
            at = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
            if ncc[at] <= top:
                continue
            top = float(ncc[at])
            if unique:
                rows, cols = np.ogrid[: ncc.shape[0], : ncc.shape[1]]
                far = (rows - at[0]) ** 2 + (cols - at[1]) ** 2 >= RADIUS**2
                margin = top - float(ncc[far].max()) if far.any() else 1.0
    return top, margin


def fine_score(grey_a: np.ndarray, grey_b: np.ndarray) -> tuple[float, float]:
    """(score, uniqueness) of two grey images (h, w) in [0, 1]: the lower of the plain and the
    band-passed best correlation (as ``similarity.indexed_pair_scores``, at ``SIDE`` pixels), and how
    far the band-passed match stands above any match ``RADIUS`` pixels away."""
    plain_a, band_a = _prepared(grey_a)
    plain_b, band_b = _prepared(grey_b)
    plain, _ = _best(plain_a, plain_b, unique=False)
    band, unique = _best(band_a, band_b, unique=True)
    return min(plain, band), unique


def rescued(
    pool, order: Sequence[str], pairs: Iterable[tuple[int, int]], cancel=None
) -> set[tuple[int, int]]:
    """The ``pairs`` (indices into ``order``, paths of ``pool``) that the finer look confirms: score
    at least ``FINE``, uniqueness at least ``UNIQUE``. Images that no longer decode confirm nothing."""
    pairs = list(pairs)
    used = sorted({i for pair in pairs for i in pair})
    if not used:
        return set()
    arrays, loaded = pool.arrays([order[i] for i in used])
    by_path = dict(zip(loaded, grey_images(arrays), strict=True))
    grey = {i: by_path[order[i]] for i in used if order[i] in by_path}
    out = set()
    for i, j in pairs:
        check_cancel(cancel)
        if i in grey and j in grey:
            score, unique = fine_score(grey[i], grey[j])
            if score >= FINE and unique >= UNIQUE:
                out.add((i, j))
    return out
