"""Class-aware ordering: a class with few labels is sought, so a rare class is found early.

Uncertainty sampling asks about the boundaries the model already knows; a class it has seen once (or
never) hardly shows in its uncertainty, and random order finds a class of 1% once per hundred labels.
So part of the order *seeks* the short classes:

- a class's **deficit** is how far its training labels fall below ``RARE_TARGET`` times the mean per
  class (0: at or above it); for a class with no label it is 1 until ``UNSEEN_PER_CLASS`` labels per
  class, then falls as 1 / labels (a class the person named may be absent from the pool: it cannot
  claim the order for ever). The target is relative, not a fixed floor of labels (15 found fewer of a
  rare class on animals: every class an early model under-predicts is then short too and takes turns
  from the rare one), and above the mean: at the mean a rare class is held to the pace at which the
  mean grows (a label per ten), though it is the class a person hunts and the one the model knows
  worst. Only a class the model thinks rare is sought (below), so a balanced pool's classes are left
  to the strategy wherever they stand against the target;
- a class with labels is sought only while the model thinks it rare (it predicts it for under
  ``RARE_BELOW`` of an even share of the candidates: counted by the most probable class, as an early
  model's probabilities are spread too thin for their sum to tell) and not exhausted (the sum of its
  probabilities is at least one image): on a balanced pool a class lagging by chance is left to the
  strategy, which serves accuracy best;
- it is sought by its most probable images (for a class the model barely knows these lie on its
  boundary with the rest: the uncertainty between that class and the others);
- the turns go to the sought class with the fewest training labels first (``_turn``): shared in
  proportion to the deficits, every class an early model under-predicts took turns from an unseen
  one, and with the target above the mean so would every class near the mean;
- the sought share of the order is ``share`` while the largest deficit is at least ``FULL_DEFICIT``,
  then ``share`` times deficit / ``FULL_DEFICIT``: it falls as the classes fill, but only near the
  target (a share proportional to the whole deficit lets a rare class settle at about 5/6 of the
  target, gaining labels only as the mean runs ahead of it);
- a class with no label yet cannot be predicted: the images farthest from every label are sought
  instead (``farthest_first``: k-center greedy from the labelled images, in the cold start's space).
  Such a class is a minority in every cluster of the pixels, so the most typical image of each
  cluster no label covers (TypiClust's uncovered clusters) is another class's image, whichever
  cluster comes first; but no label lies near the unseen class's images. Screened offline
  (``bench/rare_screen.py``, 20 pools each of MNIST 5k and digits): the rare class's first label
  after 46 and 35 labels against 61 and 43 for the uncovered clusters the model is least sure of;
  distance over local density (a rare class as a small tight group) found it later.

Pure numpy; the picks are interleaved into the ranked order, which stays a permutation.
"""

from __future__ import annotations

import numpy as np

#: A class the model expects fewer than this many images of among the candidates is not sought.
EXHAUSTED = 1.0
#: A class the model thinks rare is sought until it has this many times the mean training labels per
#: class (1: the mean). Chosen on the tuning sets (MNIST 5k and digits, one class at 1%).
RARE_TARGET = 2.0
#: A class with no label has the full deficit until this many training labels per class on average.
UNSEEN_PER_CLASS = 10
#: A class with labels is sought only while the model expects under this share of an even split.
RARE_BELOW = 0.5
#: The sought share is full while the largest deficit is at least this, then falls with it to 0.
FULL_DEFICIT = 0.25
#: Candidate-label distances computed at once by ``farthest_first`` (about 32 MB as float64).
DISTANCE_BLOCK = 4_000_000


def deficits(counts, target: float = RARE_TARGET) -> np.ndarray:
    """Per class in [0, 1]: 1 - labels / (``target`` x the mean labels per class), 0 at or above it; a
    class with no label: 1 until ``UNSEEN_PER_CLASS`` labels per class on average, then falling as
    1 / labels."""
    counts = np.asarray(counts, dtype=np.float64)
    mean = counts.mean() if len(counts) else 0.0
    if mean <= 0:
        return np.zeros(len(counts))
    d = np.clip(1.0 - counts / (target * mean), 0.0, 1.0)
    d[counts == 0] = min(1.0, UNSEEN_PER_CLASS / mean)
    return d


def seek_picks(
    probs: np.ndarray,
    counts,
    n_candidates: int,
    limit: int,
    uncovered=None,
    full: float | None = None,
) -> tuple[list, float]:
    """(candidate indices to seek, in order; the share of the order to give them, as a share of
    ``seek_share``: 1 while the largest deficit is at least ``full`` (``FULL_DEFICIT``), then falling
    with it to 0).

    ``probs`` (n, k) of the scored candidates, ``counts`` training labels per class, ``n_candidates``
    all candidates (the scored ones are a sample), ``limit`` picks at most. ``uncovered`` is a callable
    returning candidate indices far from every label (``farthest_first``: for classes with no label),
    or None.
    """
    full = FULL_DEFICIT if full is None else full
    p = np.asarray(probs, dtype=np.float64)
    n, k = p.shape if p.ndim == 2 else (0, 0)
    d = deficits(counts)
    if n == 0 or limit <= 0 or not d.any():
        return [], 0.0
    counts = np.asarray(counts)
    # Expected images of each class among all candidates: a sought class the model expects none of
    # is exhausted (every one found, or the model cannot tell it yet: the search far from every label
    # does that).
    expected = p.sum(0) * (n_candidates / n)
    rare = np.bincount(np.argmax(p, 1), minlength=k) * (n_candidates / n) < RARE_BELOW * n_candidates / k
    wanted = [
        c
        for c in np.argsort(-d, kind="stable")
        if d[c] > 0 and (counts[c] == 0 or (rare[c] and expected[c] >= EXHAUSTED))
    ]
    if not wanted:
        return [], 0.0
    queues: dict[int, list[int]] = {}
    far: list[int] | None = None  # the same for every class with no label: computed once
    for c in wanted:
        if counts[c] == 0:
            if far is None:
                far = list(uncovered()) if uncovered is not None else []
            queues[c] = far
        else:
            queues[c] = np.argsort(-p[:, c], kind="stable")[:limit].tolist()
    picks: list[int] = []
    taken: set[int] = set()
    for c in sorted(wanted, key=lambda c: (_turn(int(counts[c]), float(d[c])), -d[c])):
        for i in queues[c]:
            if len(picks) >= limit:
                break
            if i not in taken:
                taken.add(i)
                picks.append(i)
    return picks, min(1.0, float(d[wanted].max()) / full)


def _turn(labels: int, deficit: float) -> float:
    """Fewest training labels first: the seek turns go to the shortest class, not shared among every
    class an early model under-predicts (those took most turns from an unseen class), nor among the
    classes at the mean once a rare one is sought beyond it. A class with no label whose deficit has
    begun to fall (it may be absent from the pool) goes last."""
    return float(labels) if labels > 0 or deficit >= 1.0 else np.inf


def interleave(ranked: list, picks: list, share: float) -> list:
    """``ranked`` (a permutation) with ``picks`` (items of it) moved in at the rate ``share``: position
    i holds a pick when floor((i + 1) * share) > floor(i * share). Still a permutation."""
    if not picks or share <= 0:
        return list(ranked)
    moved = set(picks)
    rest = (x for x in ranked if x not in moved)
    queue = iter(picks)
    out: list = []
    i = 0
    while len(out) < len(ranked):
        source = queue if int((i + 1) * share) > int(i * share) else rest
        item = next(source, None)
        if item is None:  # one side ran out: the other fills the rest
            out.extend(rest if source is queue else queue)
            break
        out.append(item)
        i += 1
    return out


def farthest_first(E_candidates: np.ndarray, E_labelled: np.ndarray, n: int) -> list[int]:
    """Indices of at most ``n`` candidates by k-center greedy from the labelled images (Sener &
    Savarese 2018): each the candidate farthest from every labelled image and every earlier pick.

    An unseen class is a minority in every cluster of the pixels, so a cluster's most typical image is
    another class's; but no label lies near its images, and farthest-first reaches one of them
    (screened with ``bench/rare_screen.py``). An earlier pick stands for its neighbourhood, so a
    handful of odd images takes one pick, not all of them."""
    E_c = np.asarray(E_candidates, dtype=np.float64)
    if E_c.ndim != 2 or not len(E_c) or n <= 0:
        return []
    E_l = np.asarray(E_labelled, dtype=np.float64).reshape(-1, E_c.shape[1])
    sq = np.sum(E_c**2, 1)
    d = np.full(len(E_c), np.inf)
    step = max(1, DISTANCE_BLOCK // len(E_c))  # labels at a time: bounded memory on a whole pool
    for j in range(0, len(E_l), step):
        block = E_l[j : j + step]
        d = np.minimum(d, (sq[:, None] - 2 * E_c @ block.T + np.sum(block**2, 1)[None]).min(1))
    d = np.maximum(d, 0)
    picks: list[int] = []
    for _ in range(min(n, len(E_c))):
        i = int(np.argmax(d))
        if d[i] <= 0:  # every candidate sits on a label or a pick
            break
        picks.append(i)
        d = np.minimum(d, np.maximum(sq - 2 * E_c @ E_c[i] + sq[i], 0))
    return picks
