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
- a class with no label yet cannot be predicted: the images of the regions no label covers are
  sought instead (TypiClust's uncovered clusters, Hacohen et al. 2022: k-means of the candidates and
  the labelled images into more clusters than labels; the most typical image of each cluster with no
  label), the cluster the model is least sure of first (the mean of 1 - its top probability over
  the cluster's candidates): a cluster of a class it knows is one it predicts with confidence, while
  the images of a class it has never seen are forced onto known classes with little confidence.
  Without the model's probabilities (``uncovered(uncertainty=None)``), farthest from every label
  first: a small cluster apart from the known classes is reached at once, but so is a handful of
  odd images, and a class close to a known one waits.

Pure numpy; the picks are interleaved into the ranked order, which stays a permutation.
"""

from __future__ import annotations

import numpy as np

from .coldstart import MIN_CLUSTER, kmeans, most_typical

#: Clusters beyond the labelled images when searching for a class with no label (TypiClust's budget).
UNCOVERED_EXTRA = 50
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
    returning candidate indices of regions no label covers (for classes with no label), or None.
    """
    full = FULL_DEFICIT if full is None else full
    p = np.asarray(probs, dtype=np.float64)
    n, k = p.shape if p.ndim == 2 else (0, 0)
    d = deficits(counts)
    if n == 0 or limit <= 0 or not d.any():
        return [], 0.0
    counts = np.asarray(counts)
    # Expected images of each class among all candidates: a sought class the model expects none of
    # is exhausted (every one found, or the model cannot tell it yet: the uncovered search does that).
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
    for c in wanted:
        if counts[c] == 0:
            queues[c] = list(uncovered()) if uncovered is not None else []
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


def uncovered(
    E_candidates: np.ndarray,
    E_labelled: np.ndarray,
    seed: int,
    extra: int = UNCOVERED_EXTRA,
    uncertainty=None,
) -> list[int]:
    """Indices of candidates: the most typical of each cluster holding no labelled image (k-means of
    both sets into ``len(labelled) + extra`` clusters), the cluster of the highest mean
    ``uncertainty`` (one value per candidate, e.g. 1 - the top probability) first; without it, the
    cluster farthest from the labels first."""
    E_c = np.asarray(E_candidates, dtype=np.float32)
    E_l = np.asarray(E_labelled, dtype=np.float32).reshape(-1, E_c.shape[1] if E_c.ndim == 2 else 0)
    n = len(E_c)
    k = min(len(E_l) + extra, (n + len(E_l)) // MIN_CLUSTER)
    if n < 2 * MIN_CLUSTER or k < 2:
        return []
    clusters = kmeans(np.concatenate([E_c, E_l]), k, np.random.default_rng(seed))
    covered = set(clusters[n:].tolist())
    own = clusters[:n]
    doubt = None if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    picks, first = [], []
    for c in range(k):
        members = np.flatnonzero(own == c)
        if c in covered or len(members) < MIN_CLUSTER:
            continue
        picks.append(int(members[most_typical(E_c[members])]))
        if doubt is not None:
            first.append(float(doubt[members].mean()))
        else:  # novelty: distance of the cluster's centre to the nearest label
            centre = E_c[members].mean(0)
            first.append(float(np.min(np.sum((E_l - centre) ** 2, 1))) if len(E_l) else 0.0)
    return [picks[i] for i in np.argsort(-np.asarray(first), kind="stable")]
