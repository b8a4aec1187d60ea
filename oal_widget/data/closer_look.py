"""A second, finer look at the pairs of near-duplicates the coarse look leaves out, for two reasons.

- *A small pool*: in a pool of fewer than ``duplicate_scores.FULL_CROWD`` images a pair must stand
  further above its crowd (``duplicate_scores.pool_margin``): two look-alikes stand out among a few
  images. A true crop or re-encode scoring about 0.95 on 32-px thumbnails falls in the same zone.
  ``rescued`` looks again at those pairs only (few: none from ``FULL_CROWD`` images on).
- *A crowd*: a crop among look-alike textures (a brick wall, a star field) or handwritten digits scores
  about as high on the thumbnails as its look-alikes do, and is left out for its crowd.
  ``contest_winners`` looks again at such a pair and at its rivals (``duplicate_scores.contested``: the
  pairs of either image with its best look-alikes): it wins when it scores ``CROWD_FINE`` and stands
  ``CROWD_GAP`` above each rival outside its own group (``winners``: an image's two copies are not
  each other's rivals). A relative test again, as ``duplicate_scores.stands_out``, on finer scores.
  At most ``duplicate_scores.CONTESTS`` pairs per image are contested (its cost bound).

Images are resized to ``SIDE`` pixels (from the pool's arrays: the gain is less blur and a finer zoom
search more than resolution), where a crop of the same picture comes close to 1 and two different
handwritten digits do not. A simple picture (one straight edge, a stroke) matches another one at many
places along it, as well as any crop would: the match must also be unique in place (the aperture
problem), its peak ``UNIQUE`` above the best match ``RADIUS`` pixels or more away. Each image is
prepared once for all its pairs (~4 ms), each pair then costs ~1 ms; a score that cannot pass is cut
short. Settings chosen on photo patches, digits and MNIST (``bench/duplicates_small.py``,
``bench/duplicates.py``, ``bench/duplicates_missed.py``); the correlation is scikit-image's
``match_template`` written with scipy (scikit-image is no runtime dependency), by FFT. No widgets, no
TensorFlow.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

import numpy as np
from PIL import Image
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter

from .similarity import check_cancel, components, grey_images

#: Side (pixels) of the finer look; blur and band-pass scale with it as on the 32-px thumbnails.
SIDE = 64
BLUR, BAND = SIDE / 32, 4 * SIDE / 32
#: Zooms the other image is searched at (crops down to ~76% of the side), and the centre searched for.
ZOOMS = tuple(np.linspace(1.0, 1.32, 9))
CENTRE = 48
#: The FFT shape (the largest zoom's side), the largest count of valid places per side, and per zoom
#: which places are valid.
_SIDES = [max(round(SIDE * z), SIDE) for z in ZOOMS]
_SHAPE = (sfft.next_fast_len(max(_SIDES), real=True),) * 2
_VALID = max(_SIDES) - CENTRE + 1
_IN = np.stack([np.logical_and.outer(*[np.arange(_VALID) < side - CENTRE + 1] * 2) for side in _SIDES])
#: A rescued pair scores at least ``FINE`` and its best match stands ``UNIQUE`` above every match
#: ``RADIUS`` pixels or more away from it.
FINE, UNIQUE, RADIUS = 0.98, 0.05, 4
#: A contested pair (left out for its crowd of look-alikes) wins at ``CROWD_FINE`` or more, ``CROWD_GAP``
#: above each rival; from ``SURE_FINE`` on it need not be unique in place (a smooth picture's re-encode).
CROWD_FINE, CROWD_GAP, SURE_FINE = 0.98, 0.02, 0.995
#: The most images a group of passed pairs may hold for its members not to count as each other's rivals:
#: an image and two copies (``duplicate_scores.CROWD_RANK``'s assumption); a larger one is a crowd.
GROUP_MOST = 3
#: Images whose views are kept for the next pairs (~0.5 MB each), and contests a thread judges at once.
_KEPT, _SHARE = 256, 256
#: Added to each variance: the pairs looked at have structure (they passed the coarse look), so only
#: enough to keep a flat window from dividing by zero.
_FLAT = 1e-12


class _View:
    """One image (blurred, or band-passed) as every pair with it reuses it: the spectrum of its centre
    (less its mean, flipped for a convolution) and its norm, and per zoom the spectrum of the zoomed
    image and the inverse norm of each of its ``CENTRE`` x ``CENTRE`` windows (0 past the valid ones)."""

    def __init__(self, x: np.ndarray) -> None:
        m = (SIDE - CENTRE) // 2
        k = CENTRE * CENTRE
        centre = x[m : m + CENTRE, m : m + CENTRE]
        t = centre - centre.mean()
        self.norm = float(np.sqrt((t * t).sum() + k * _FLAT))
        self.template = sfft.rfft2(t[::-1, ::-1], s=_SHAPE)
        zoomed = [_zoomed(x, zoom) for zoom in ZOOMS]
        self.spectra = sfft.rfft2(np.stack([np.pad(y, (0, _SHAPE[0] - len(y))) for y in zoomed]), s=_SHAPE)
        self.inv_norms = np.zeros((len(ZOOMS), _VALID, _VALID))
        for z, y in enumerate(zoomed):
            sums, squares = _window_sums(y), _window_sums(y * y)
            valid = len(sums)
            self.inv_norms[z, :valid, :valid] = 1 / np.sqrt(
                np.maximum(squares - sums * sums / k, 0) + k * _FLAT
            )


def _window_sums(y: np.ndarray) -> np.ndarray:
    """The sum of every ``CENTRE`` x ``CENTRE`` window of ``y`` (a summed-area table)."""
    c = np.pad(y.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    k = CENTRE
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


class _Image:
    """An image at ``SIDE`` pixels, blurred; its plain and band-passed views made when first used."""

    def __init__(self, grey: np.ndarray) -> None:
        im = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32), mode="F")
        x = np.asarray(im.resize((SIDE, SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0), np.float64)
        self.x = gaussian_filter(x, BLUR, mode="nearest")

    @cached_property
    def plain(self) -> _View:
        return _View(self.x)

    @cached_property
    def band(self) -> _View:
        return _View(self.x - gaussian_filter(self.x, BAND, mode="nearest"))


def _zoomed(x: np.ndarray, zoom: float) -> np.ndarray:
    side = max(round(SIDE * zoom), SIDE)
    if side == SIDE:
        return x
    im = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32), mode="F")
    return np.asarray(im.resize((side, side), Image.Resampling.BILINEAR), np.float64)


def _best(a: _View, b: _View, unique: bool) -> tuple[float, float]:
    """The best correlation of either image's centre in the other, over the zooms (normalised
    cross-correlation as scikit-image's ``match_template``, with scipy, a runtime dependency), and how
    far its peak stands above the best match ``RADIUS`` pixels or more away (when ``unique``)."""
    top, margin = -1.0, 0.0
    for x, y in ((a, b), (b, a)):
        # Circular convolutions as large as the largest zoom: the valid part of each does not wrap.
        full = sfft.irfft2(y.spectra * x.template, s=_SHAPE)
        ncc = (
            full[:, CENTRE - 1 : CENTRE - 1 + _VALID, CENTRE - 1 : CENTRE - 1 + _VALID] * y.inv_norms / x.norm
        )
        ncc[~_IN] = -np.inf
        z, r, c = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
        if ncc[z, r, c] <= top:
            continue
        top = float(ncc[z, r, c])
        if unique:
            rows, cols = np.ogrid[:_VALID, :_VALID]
            far = ((rows - r) ** 2 + (cols - c) ** 2 >= RADIUS**2) & _IN[z]
            margin = top - float(ncc[z][far].max()) if far.any() else 1.0
    return top, margin


def _fine(a: _Image, b: _Image, floor: float = -1.0) -> tuple[float, float]:
    """``fine_score`` of two prepared images; a band-passed score under ``floor`` is returned as it
    is (an upper bound of the score), the plain one not computed."""
    band, unique = _best(a.band, b.band, unique=True)
    if band < floor:
        return band, unique
    plain, _ = _best(a.plain, b.plain, unique=False)
    return min(plain, band), unique


def fine_score(grey_a: np.ndarray, grey_b: np.ndarray) -> tuple[float, float]:
    """(score, uniqueness) of two grey images (h, w) in [0, 1]: the lower of the plain and the
    band-passed best correlation (as ``similarity.indexed_pair_scores``, at ``SIDE`` pixels), and how
    far the band-passed match stands above any match ``RADIUS`` pixels away."""
    return _fine(_Image(grey_a), _Image(grey_b))


class _Looks:
    """Each image's views, decoded from the pool when first asked for and kept for the next pairs
    (pairs come sorted by their first image); at most ``_KEPT`` images at a time."""

    def __init__(self, pool, order: Sequence[str]) -> None:
        self.pool, self.order = pool, order
        self.images: OrderedDict[int, _Image | None] = OrderedDict()

    def __call__(self, i: int) -> _Image | None:
        """Image ``i`` prepared, or None when it no longer decodes."""
        if i in self.images:
            self.images.move_to_end(i)
            return self.images[i]
        arrays, loaded = self.pool.arrays([self.order[i]])
        image = _Image(grey_images(arrays)[0]) if loaded else None
        self.images[i] = image
        if len(self.images) > _KEPT:
            self.images.popitem(last=False)
        return image

    def fine(self, i: int, j: int, floor: float = -1.0) -> tuple[float, float] | None:
        """``_fine`` of images ``i`` and ``j``, or None when either no longer decodes."""
        a, b = self(i), self(j)
        return None if a is None or b is None else _fine(a, b, floor)


def rescued(
    pool, order: Sequence[str], pairs: Iterable[tuple[int, int]], cancel=None
) -> set[tuple[int, int]]:
    """The ``pairs`` (indices into ``order``, paths of ``pool``) that the finer look confirms: score
    at least ``FINE``, uniqueness at least ``UNIQUE``. Images that no longer decode confirm nothing."""
    looks = _Looks(pool, order)
    out = set()
    for i, j in sorted(pairs):
        check_cancel(cancel)
        fine = looks.fine(i, j, FINE)
        if fine is not None and fine[0] >= FINE and fine[1] >= UNIQUE:
            out.add((i, j))
    return out


def contest_winners(
    pool,
    order: Sequence[str],
    contests: Iterable[tuple[tuple[int, int], Sequence[tuple[int, int]]]],
    cancel=None,
    workers: int = 1,
) -> set[tuple[int, int]]:
    """The contested pairs (indices into ``order``) that stand out from their rivals at the finer
    look: each ``(pair, rivals)``, the rivals the pairs of either image with its look-alikes. A pair
    passes when it scores at least ``CROWD_FINE`` (and, below ``SURE_FINE``, is ``UNIQUE`` in place),
    and wins when it stands ``CROWD_GAP`` above every rival outside its own group (``winners``).
    Images that no longer decode win nothing. ``workers``: threads (scipy's FFTs release the GIL),
    each on its own share of the pairs."""
    contests = sorted(contests)
    shares = [contests[k : k + _SHARE] for k in range(0, len(contests), _SHARE)]

    def judge(share) -> dict[tuple[int, int], list[tuple[int, int]]]:
        looks = _Looks(pool, order)
        out = {}
        for pair, rivals in share:
            check_cancel(cancel)
            fine = looks.fine(pair[0], pair[1], CROWD_FINE)
            if fine is None or fine[0] < CROWD_FINE or (fine[0] < SURE_FINE and fine[1] < UNIQUE):
                continue
            bar = fine[0] - CROWD_GAP  # a rival's upper bound under it is enough
            out[pair] = [r for r in rivals if (f := looks.fine(r[0], r[1], bar)) is not None and f[0] > bar]
        return out

    if not shares:
        return set()
    passed: dict[tuple[int, int], list[tuple[int, int]]] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="oal-closer-look") as ex:
        for part in ex.map(judge, shares):
            passed |= part
    return winners(passed)


def winners(passed: Mapping[tuple[int, int], Sequence[tuple[int, int]]]) -> set[tuple[int, int]]:
    """The pairs that win their contest, of ``passed``: each pair that passed the finer look, with the
    rivals it does not stand ``CROWD_GAP`` above. A rival in the pair's own group does not count: the
    passed pairs join images into groups, and a group of at most ``GROUP_MOST`` images (an image and
    its two copies) is one picture, whose copies score as high with each other as with the original.
    Without this, each copy of a group of three stands in the other's way."""
    group_of = {x: set(group) for group in components(passed) for x in group}
    out = set()
    for pair, close in passed.items():
        group = group_of[pair[0]]
        if not close or (len(group) <= GROUP_MOST and all(set(r) <= group for r in close)):
            out.add(pair)
    return out
