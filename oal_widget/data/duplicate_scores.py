"""Scoring and selecting the candidate pairs of near-duplicates: which pairs are alike enough to group.

``score_pairs`` decodes the pool to grey thumbnails, finds candidate pairs with a nearest-neighbour
search (faiss) over a coarse descriptor of each image (or over feature vectors given) and verifies each
on the thumbnails (``similarity.indexed_pair_scores``: shift- and zoom-tolerant correlation, blind to
brightness and contrast). ``select_pairs`` keeps the pairs that reach ``NEAR_THRESHOLD`` and
``stands_out``: a relative test (in the spirit of Lowe's ratio test), a pair's score must stand above
each image's ``CROWD_RANK``-th best score by a margin. A true near-duplicate stands far above the image's
other neighbours; a look-alike (a handwritten 1 among hundreds) has many neighbours at about the same
score. In a small pool the crowd is thin: its third best says little about how close a look-alike comes,
so the margin grows as the pool shrinks (``pool_margin``); ``in_doubt`` names the pairs left out by that
growth alone, for ``closer_look.rescued``. Used by ``duplicates`` (which groups the pairs kept); the
benches replay ``select_pairs`` on ``score_pairs``' scores with other settings. No widgets, no TensorFlow.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .low_texture import rescored
from .similarity import (
    CANDIDATE_MIN,
    NEIGHBOURS,
    QUERY_ZOOMS,
    THUMB,
    check_cancel,
    descriptor,
    indexed_pair_scores,
    normalised,
    report,
    search_candidates,
    thumbnails,
    zoomed_in,
)

if TYPE_CHECKING:
    from .duplicates import DuplicateGroups

__all__ = [
    "CLEAR", "CLEAR_MARGIN", "CONTESTS", "CROWD_RANK", "FULL_CROWD", "MARGIN", "NEAR_THRESHOLD", "RIVALS",
    "SURE", "THIN_MARGIN", "ScoredPairs", "contested", "in_doubt", "pool_margin", "score_pairs",
    "select_pairs", "stands_out",
]  # fmt: skip

#: Lowest correlation a near-duplicate pair reaches (chosen on the tuning sets: bench/duplicates.py).
NEAR_THRESHOLD = 0.88
#: The neighbour whose score a pair must stand above: the third best, as an image may have two planted
#: near-duplicates (an image with more copies still groups: exact copies score 1.0, ``SURE``).
CROWD_RANK = 3
#: How far above that neighbour a pair must stand: ``MARGIN`` below ``CLEAR``, ``CLEAR_MARGIN`` from
#: ``CLEAR`` on, nothing from ``SURE`` on (identical pixels score 1.0).
MARGIN, CLEAR, CLEAR_MARGIN, SURE = 0.07, 0.97, 0.02, 0.995
#: A thin crowd: in a pool of fewer than ``FULL_CROWD`` images ``MARGIN`` grows by ``THIN_MARGIN`` per
#: tenfold fewer (0.17 at 200 images, 0.21 at 80). The third best of a few images says little about how
#: close a look-alike comes: two handwritten 2s among 24 digits stand 0.07 above their third-best
#: neighbour, among 1,797 they would not. With it, small pools of the tuning sets group unplanted images
#: within one pair per pool size of a bar at ``CLEAR``; chosen so (bench/duplicates_small.py).
FULL_CROWD, THIN_MARGIN = 2000, 0.1
#: Rivals per image of a contested pair (``contested``): its best look-alikes, compared at the closer look.
RIVALS = 2
#: Contested pairs per image at most (and ``CONTESTS_MIN`` in all at least), the closer look's cost
#: bound: MNIST5k would contest 0.35 per image (its 650 most promising are), 100,000 mosaics of MNIST
#: digits and animals 0.09 (~70 s on a loaded machine).
CONTESTS, CONTESTS_MIN = 0.1, 200
_PAIR_BATCH = 512


@dataclass(frozen=True)
class ScoredPairs:
    """What ``score_pairs`` found: the images (``order``), their pixel hashes and thumbnails, the
    candidate pairs' scores (``pairs``: (i, j), i < j, into ``order``; exact below ``threshold`` only
    where the plain correlation passed it), each image's best scores from before (``best``) and the
    first new image (``start``: pairs of two older images count in ``best`` already)."""

    order: list[str]
    hashes: list[bytes]
    thumbs: np.ndarray
    pairs: dict[tuple[int, int], float]
    best: list[list[float]]
    start: int


def score_pairs(
    pool,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    *,
    features: np.ndarray | None = None,
    threshold: float = NEAR_THRESHOLD,
    previous: DuplicateGroups | None = None,
    workers: int = 2,
) -> ScoredPairs:
    """The candidate pairs of ``find_groups`` (same arguments) and their scores, before any is kept
    (``bench/duplicates.py --sweep`` replays ``select_pairs`` on them)."""
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
    thumbs_new, hashes_new, loaded = thumbnails(pool, new, progress, cancel, 0, total)
    old = [p for p in paths if p in known]
    order = old + loaded  # old images first: the search then queries the new ones only
    if not order:
        return ScoredPairs([], [], np.zeros((0, THUMB, THUMB), np.float32), {}, [], 0)
    reused = np.array([known[p][0] for p in old], dtype=np.float32).reshape(-1, THUMB, THUMB)
    thumbs = np.concatenate([reused, thumbs_new])
    hashes = [known[p][1] for p in old] + hashes_new
    report(progress, len(paths), total)
    scored = _exact_pairs(hashes)
    best: list[list[float]] = [list(known[p][2]) for p in old] + [[] for _ in loaded]
    if features is not None:
        row = {p: i for i, p in enumerate(paths)}
        vectors = normalised(features[[row[p] for p in order]])
        start = 0
        best = [[] for _ in order]  # every pair is searched again
    else:
        vectors = descriptor(thumbs)
        start = len(old)
        at = {p: i for i, p in enumerate(order)}
        for (a, b), s in previous.scores.items() if previous is not None else ():
            if a in at and b in at:  # pairs of old images were verified (and passed) before
                scored.setdefault((min(at[a], at[b]), max(at[a], at[b])), s)
    candidates = search_candidates(vectors, vectors[start:], start, NEIGHBOURS, CANDIDATE_MIN)
    if features is None:
        for fraction in QUERY_ZOOMS:
            queries = descriptor(zoomed_in(thumbs[start:], fraction))
            more = search_candidates(vectors, queries, start, NEIGHBOURS, CANDIDATE_MIN)
            candidates = np.unique(np.concatenate([candidates, more]), axis=0)
    n = len(paths)
    batches = [candidates[i : i + _PAIR_BATCH] for i in range(0, len(candidates), _PAIR_BATCH)]

    def verify(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_cancel(cancel)
        return part, indexed_pair_scores(thumbs, part, floor=threshold)

    # numpy's products and scipy's FFTs release the GIL: threads use both cores.
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="oal-duplicates") as ex:
        for done, (part, scores) in enumerate(ex.map(verify, batches), start=1):
            for (i, j), score in zip(part.tolist(), scores.tolist(), strict=True):
                scored.setdefault((i, j), score)
            report(progress, n + n * done // len(batches), total)
    scored |= rescored(pool, order, thumbs, scored, hashes, cancel)  # smooth colour images: their colour
    report(progress, total, total)
    return ScoredPairs(order, hashes, thumbs, scored, best, start)


def select_pairs(
    scored: Mapping[tuple[int, int], float],
    threshold: float,
    best: list[list[float]],
    start: int = 0,
    margin: float | None = None,
    clear_margin: float | None = None,
    thin_margin: float | None = None,
) -> tuple[dict[tuple[int, int], float], list[tuple[float, ...]]]:
    """The scored pairs (i < j) that are near-duplicates, and each image's best ``CROWD_RANK`` scores.

    ``best[i]``: scores image i had before (a grown pool), one entry per image of the pool; pairs with
    j < ``start`` are in them already. A pair is kept when it reaches ``threshold`` and ``stands_out``
    above the higher of its two images' ``CROWD_RANK``-th best scores, by ``pool_margin(len(best))``
    below ``CLEAR``. ``margin``, ``thin_margin``: as ``pool_margin``'s (benches replay other values)."""
    below_clear = pool_margin(len(best), margin, thin_margin)
    best = [list(b) for b in best]
    for (i, j), score in scored.items():
        if j >= start:
            best[i].append(score)
            best[j].append(score)
    top = [tuple(sorted(b, reverse=True)[:CROWD_RANK]) for b in best]
    crowd = _crowd(top)
    verified = {
        (i, j): s
        for (i, j), s in scored.items()
        if s >= threshold and stands_out(s, max(crowd[i], crowd[j]), below_clear, clear_margin)
    }
    return verified, top


def in_doubt(
    scored: Mapping[tuple[int, int], float],
    threshold: float,
    top: Sequence[tuple[float, ...]],
    verified: Mapping[tuple[int, int], float],
) -> list[tuple[int, int]]:
    """The pairs ``select_pairs`` left out only for a small pool (they reach ``threshold`` and stand
    ``MARGIN`` above their crowd, not ``pool_margin``): ``closer_look.rescued`` looks at them again.
    ``top``: ``select_pairs``' best scores per image. None from ``FULL_CROWD`` images on."""
    if len(top) >= FULL_CROWD:  # the margin has not grown: nothing is in doubt
        return []
    crowd = _crowd(top)
    return [
        (i, j)
        for (i, j), s in scored.items()
        if s >= threshold and (i, j) not in verified and stands_out(s, max(crowd[i], crowd[j]))
    ]


def contested(
    scored: Mapping[tuple[int, int], float],
    threshold: float,
    verified: Mapping[tuple[int, int], float],
    hashes: Sequence[bytes],
    top: Sequence[tuple[float, ...]],
) -> list[tuple[tuple[int, int], list[tuple[int, int]]]]:
    """The pairs left out for their crowd that could still join a group, each with its rivals, for
    ``closer_look.contest_winners``: a pair reaching ``threshold``, not ``verified``, the best partner
    of one of its images (``linked`` joins no other). Its rivals: the pairs of either image with its
    ``RIVALS`` best other neighbours, less either image's own copies (its pixels, or verified with it):
    those are the same picture again, not look-alikes. ``top``: ``select_pairs``' best scores per image.
    At most ``CONTESTS`` per image (``CONTESTS_MIN`` in all at least), those standing highest above their
    crowd first: a pool of look-alikes contests many, and each costs a few ms."""
    neighbours: dict[int, list[tuple[float, int]]] = {}
    for (i, j), s in scored.items():
        neighbours.setdefault(i, []).append((s, j))
        neighbours.setdefault(j, []).append((s, i))
    for found in neighbours.values():
        found.sort(reverse=True)
    best = {i: found[0][1] for i, found in neighbours.items()}
    crowd = _crowd(top)

    def copy(c: int, x: int) -> bool:  # the same picture as image x again, not a look-alike
        return hashes[c] == hashes[x] or (min(c, x), max(c, x)) in verified

    pairs = sorted(
        (
            (i, j)
            for (i, j), s in scored.items()
            if s >= threshold and (i, j) not in verified and (best[i] == j or best[j] == i)
        ),
        key=lambda p: max(crowd[p[0]], crowd[p[1]]) - scored[p],
    )[: max(CONTESTS_MIN, int(CONTESTS * len(top)))]
    out = []
    for i, j in pairs:
        rivals = []
        for a, b in ((i, j), (j, i)):
            others = [c for _, c in neighbours[a] if c != b and not (copy(c, a) or copy(c, b))]
            rivals += [(min(a, c), max(a, c)) for c in others[:RIVALS]]
        out.append(((i, j), rivals))
    return out


def _crowd(top: Sequence[tuple[float, ...]]) -> list[float]:
    """Each image's ``CROWD_RANK``-th best score (-1 for an image with fewer scored neighbours)."""
    return [t[-1] if len(t) == CROWD_RANK else -1.0 for t in top]


def pool_margin(n: int, margin: float | None = None, thin_margin: float | None = None) -> float:
    """How far above its crowd a pair scoring below ``CLEAR`` must stand in a pool of ``n`` images:
    ``margin`` (``MARGIN``) from ``FULL_CROWD`` images on, ``thin_margin`` (``THIN_MARGIN``) more per
    tenfold fewer."""
    base = MARGIN if margin is None else margin
    per_tenfold = THIN_MARGIN if thin_margin is None else thin_margin
    return base + per_tenfold * max(0.0, math.log10(FULL_CROWD / max(n, 1)))


def stands_out(
    score: float, crowd: float, margin: float | None = None, clear_margin: float | None = None
) -> bool:
    """Whether a pair scoring ``score`` stands far enough above ``crowd`` (the higher of its two images'
    ``CROWD_RANK``-th best scores) to be a near-duplicate rather than one look-alike among many:
    ``margin`` (default ``MARGIN``) below ``CLEAR``, ``clear_margin`` (``CLEAR_MARGIN``) from it on."""
    if score >= SURE:
        return True
    if score >= CLEAR:
        return score - crowd >= (CLEAR_MARGIN if clear_margin is None else clear_margin)
    return score - crowd >= (MARGIN if margin is None else margin)


def _exact_pairs(hashes: Sequence[bytes]) -> dict[tuple[int, int], float]:
    """Each image with identical pixels paired with the first such image (score 1.0)."""
    first: dict[bytes, int] = {}
    pairs = {}
    for i, h in enumerate(hashes):
        j = first.setdefault(h, i)
        if j != i:
            pairs[(j, i)] = 1.0
    return pairs
