"""Duplicate and near-duplicate images of a pool, as groups, and keeping them on one side of the test reserve.

A person should not label the same thing twice, and a near-duplicate of a training image in the test
reserve makes the estimate look better than the model is. ``find_groups`` finds both kinds:

- *exact*: identical pixels as the model sees them (a hash of the pool's decoded array);
- *near*: crops (down to about 80% of the side, resized back), re-encodes (JPEG, PNG), small shifts
  and brightness or contrast changes: candidate pairs scored and selected by ``duplicate_scores``
  (``score_pairs``, ``select_pairs``: a threshold and a margin above each image's crowd of look-alikes,
  grown in small pools; a smooth colour image's pairs scored on its colour, ``low_texture``).
  A pair left out by that growth alone gets a finer look (``closer_look.rescued``:
  less blur and finer zooms, where a crop of the same picture comes close to 1 and two look-alikes do not;
  on one thread after progress reads done, ~10 ms a pair, and only in pools under ``FULL_CROWD``); so
  does a pair left out for its crowd of look-alikes, beside its rivals (``closer_look.contest_winners``,
  at most ``CONTESTS`` pairs per image, on ``workers`` threads). Groups
then join each image to its best verified partner (``linked``: a threshold alone chains look-alikes).
``bench/duplicates.py`` measures precision, recall and time and says on which sets the settings were
chosen (``bench/duplicates_small.py``: small pools). Verification runs in batches on ``workers``
threads, with ``progress(done, total)`` reported and ``cancel`` checked between batches, so a background
thread can run it and stop it. No widgets, no TensorFlow. The test reserve: ``split_test(..., groups=)``
in ``pool`` draws whole groups; ``reserve_changes`` fixes a reserve drawn before the groups were known.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .closer_look import contest_winners, rescued
from .duplicate_scores import (
    CLEAR,
    CLEAR_MARGIN,
    CROWD_RANK,
    FULL_CROWD,
    MARGIN,
    NEAR_THRESHOLD,
    SURE,
    THIN_MARGIN,
    ScoredPairs,
    contested,
    in_doubt,
    pool_margin,
    score_pairs,
    select_pairs,
    stands_out,
)
from .similarity import Cancelled, components

# The scoring names stay importable from here, where the product and the benches import them.
__all__ = [
    "CLEAR", "CLEAR_MARGIN", "CROWD_RANK", "FULL_CROWD", "MARGIN", "NEAR_THRESHOLD", "SURE", "THIN_MARGIN",
    "Cancelled", "DuplicateGroups", "ReserveChanges", "ScoredPairs", "find_groups", "grouped", "in_doubt",
    "linked", "pool_margin", "reserve_changes", "score_pairs", "select_pairs", "stands_out",
    "whole_groups_only",
]  # fmt: skip


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
    contests = contested(scored.pairs, threshold, verified, scored.hashes, top)
    won = contest_winners(pool, scored.order, contests, cancel, workers)
    verified |= {pair: scored.pairs[pair] for pair in won}
    seen = {
        p: (scored.thumbs[i].astype(np.float16), scored.hashes[i], top[i]) for i, p in enumerate(scored.order)
    }
    return _result(scored.order, scored.hashes, verified, seen)


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


def grouped(verified: Mapping[tuple[int, int], float]) -> list[list[int]]:
    """The groups (indices, two or more) that the ``verified`` pairs' links join."""
    return components(linked(verified))


def _result(order, hashes, verified, seen) -> DuplicateGroups:
    groups, kinds = [], []
    for members in grouped(verified):
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
