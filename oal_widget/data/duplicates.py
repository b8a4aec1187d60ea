"""Duplicate and near-duplicate images of a pool, as groups, and keeping them on one side of the test reserve.

A person should not label the same thing twice, and a near-duplicate of a training image in the test
reserve makes the estimate look better than the model is. ``find_groups`` finds both kinds:

- *exact*: identical pixels as the model sees them (a hash of the pool's decoded array);
- *near*: crops (down to about 80% of the side, resized back), re-encodes (JPEG, PNG), small shifts
  and brightness or contrast changes. Candidates come from a nearest-neighbour search (faiss) over a
  coarse descriptor of each image (or over feature vectors given, e.g. a backbone's embeddings); each
  candidate pair is then verified on grey thumbnails (``similarity.indexed_pair_scores``: shift- and
  zoom-tolerant correlation, blind to brightness and contrast) and must pass ``stands_out``.

``stands_out`` is a relative test (in the spirit of Lowe's ratio test): a pair's score must reach
``NEAR_THRESHOLD`` and stand above each image's ``CROWD_RANK``-th best score by a margin. A true
near-duplicate stands far above the image's other neighbours; a look-alike (a handwritten 1 among
hundreds) has many neighbours at about the same score. In a small pool the crowd is thin: its third best
says little about how close a look-alike comes, so the margin grows as the pool shrinks
(``pool_margin``); a pair left out by that growth alone gets a finer look (``closer_look.rescued``: less
blur and finer zooms, where a crop of the same picture comes close to 1 and two look-alikes do not; on
one thread after progress reads done, ~20 ms a pair, and only in pools under ``FULL_CROWD``). Groups
then join each image to its best verified partner (``linked``: a threshold alone chains look-alikes).
``bench/duplicates.py`` measures precision, recall and time and says on which sets the settings were
chosen (``bench/duplicates_small.py``: small pools). Verification runs in batches on ``workers``
threads, with ``progress(done, total)`` reported and ``cancel`` checked between batches, so a background
thread can run it and stop it. No widgets, no TensorFlow. The test reserve: ``split_test(..., groups=)``
in ``pool`` draws whole groups; ``reserve_changes`` fixes a reserve drawn before the groups were known.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .closer_look import rescued
from .similarity import (
    CANDIDATE_MIN,
    NEIGHBOURS,
    QUERY_ZOOMS,
    THUMB,
    Cancelled,
    check_cancel,
    descriptor,
    indexed_pair_scores,
    normalised,
    report,
    search_candidates,
    thumbnails,
    zoomed_in,
)

__all__ = [
    "NEAR_THRESHOLD", "Cancelled", "DuplicateGroups", "ReserveChanges", "find_groups", "linked",
    "ScoredPairs", "grouped", "in_doubt", "pool_margin", "reserve_changes", "score_pairs", "select_pairs",
    "stands_out", "whole_groups_only",
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
_PAIR_BATCH = 512


@dataclass(frozen=True)
class DuplicateGroups:
    """Groups of images that are (near-)duplicates of each other: tuples of paths, each sorted.

    ``kinds[i]`` is ``"exact"`` when every member of group ``i`` has identical pixels, else ``"near"``.
    ``scores`` maps each verified pair ``(a, b)`` (a < b) to its correlation (1.0 for exact copies).
    ``seen`` keeps, per image looked at, what ``find_groups(..., previous=)`` reuses for a grown pool
    (its thumbnail, pixel hash and best ``CROWD_RANK`` scores).
    """

    groups: tuple[tuple[str, ...], ...] = ()
    kinds: tuple[str, ...] = ()
    scores: Mapping[tuple[str, str], float] = field(default_factory=dict)
    seen: Mapping[str, tuple[np.ndarray, bytes, tuple[float, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )
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
    records them in ``.skipped``). With ``previous``, the old images' rejected pairs are not looked
    at again: a pool that grew past ``FULL_CROWD`` keeps a small pool's verdict on them.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold={threshold!r} is invalid: expected a correlation in (0, 1], e.g. 0.9")
    scored = score_pairs(
        pool, progress, cancel, features=features, threshold=threshold, previous=previous, workers=workers
    )
    if not scored.order:
        return DuplicateGroups()
    verified, top = select_pairs(scored.pairs, threshold, scored.best, scored.start)
    doubtful = in_doubt(scored.pairs, threshold, top, verified)
    verified |= {pair: scored.pairs[pair] for pair in rescued(pool, scored.order, doubtful, cancel)}
    seen = {
        p: (scored.thumbs[i].astype(np.float16), scored.hashes[i], top[i]) for i, p in enumerate(scored.order)
    }
    return _result(scored.order, scored.hashes, verified, seen)


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


def grouped(n: int, verified: Mapping[tuple[int, int], float]) -> list[list[int]]:
    """The groups (indices, two or more) of ``n`` images that the ``verified`` pairs' links join."""
    return _components(n, linked(verified))


def _result(order, hashes, verified, seen) -> DuplicateGroups:
    groups, kinds = [], []
    for members in grouped(len(order), verified):
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
