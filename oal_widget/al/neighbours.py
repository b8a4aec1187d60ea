"""The pool's images in one feature space, for "more like this": the nearest images to one image.

Cosine similarity of centred feature vectors. A search compares one image with the whole pool: a
matrix-vector product over at most 100,000 x 32 floats (about a millisecond), then a partial sort of a
window that grows only when ``keep`` turns most of it down. An index structure pays off for all-pairs
searches (near-duplicates), not for one image at a time. Immutable once built: the trainer publishes a
new one when its feature space changes, and any thread may search the one it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


class Neighbours:
    """Args: ``paths`` and their ``features`` (n, d), one row each; ``space``: what the features are
    (said to the person, e.g. "the pixels' principal components")."""

    def __init__(self, paths: Sequence[str], features: np.ndarray, space: str = ""):
        X = np.asarray(features, dtype=np.float32).reshape(len(paths), -1)
        if len(X):
            X = X - X.mean(0)
            norms = np.linalg.norm(X, axis=1, keepdims=True)
            X = X / np.where(norms > 0, norms, 1.0)
        self.paths: tuple[str, ...] = tuple(paths)
        self.space = space
        self._X = X
        self._row = {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.paths)

    def __contains__(self, path: object) -> bool:
        return path in self._row

    def nearest(self, path: str, n: int, keep: Callable[[str], bool] = lambda p: True) -> list[str]:
        """Up to ``n`` images most like ``path`` (itself excluded), most similar first, each one that
        ``keep`` accepts; [] when ``path`` is not in the index."""
        i = self._row.get(path)
        if i is None or n <= 0:
            return []
        similarity = self._X @ self._X[i]
        similarity[i] = -np.inf
        total, window, out = len(similarity), min(len(similarity), 4 * n + 16), []
        while True:
            top = np.argpartition(-similarity, window - 1)[:window] if window < total else np.arange(total)
            ranked = top[np.argsort(-similarity[top], kind="stable")]
            out = [self.paths[j] for j in ranked if j != i and keep(self.paths[j])][:n]
            if len(out) >= n or window >= total:
                return out
            window = min(total, window * 4)
