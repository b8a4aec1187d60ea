"""Diversity: re-choose the head of an order so the next batch covers the embedding space.

A batch of the ten best-scored images is often ten copies of one confusion; k-center greedy over the
model's embeddings spreads it out (Sener & Savarese 2018).
"""

from __future__ import annotations

import numbers

import numpy as np

#: k-center greedy looks at this many times the batch size of the best-ranked candidates.
KCENTER_TOP = 10


def kcenter(order, embeddings, batch: int, top: int | None = None) -> np.ndarray:
    """The order with its first ``batch`` positions re-chosen by k-center greedy among its ``top`` first.

    Core-set style (Sener & Savarese 2018) on the model's penultimate-layer ``embeddings`` (n, d), one row
    per candidate index, restricted to the most useful candidates: the first pick is the best-ranked one,
    each next pick the top candidate farthest from every pick so far. Helps when the person labels a
    batch before the next query, so the ranking cannot react: the batch covers several confusions instead
    of ten copies of one. Always a permutation of ``order``.
    """
    order = np.asarray(order, dtype=np.intp)
    emb = np.asarray(embeddings, dtype=np.float64)
    n = len(order)
    if emb.ndim != 2 or len(emb) != n:
        raise ValueError(f"embeddings must have shape (n, d) with n = {n} candidates, got shape {emb.shape}")
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
        raise ValueError(f"batch={batch!r} is invalid: expected a whole number >= 1")
    top = min(n, KCENTER_TOP * int(batch) if top is None else int(top))
    if n <= 1 or batch <= 1 or top <= batch:
        return order
    head = order[:top]
    points = np.nan_to_num(emb[head])
    picked = [0]
    dist = np.sum((points - points[0]) ** 2, axis=1)
    for _ in range(int(batch) - 1):
        dist[picked] = -1.0
        nxt = int(np.argmax(dist))
        picked.append(nxt)
        dist = np.minimum(dist, np.sum((points - points[nxt]) ** 2, axis=1))
    chosen = np.zeros(top, dtype=bool)
    chosen[picked] = True
    return np.concatenate([head[picked], head[~chosen], order[top:]]).astype(np.intp)
