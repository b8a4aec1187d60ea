"""Work the trainer does while it has nothing to train: walk the pool a short chunk at a time,
embedding every image (frozen-backbone mode) or decoding it into the disk cache, so later queries
and epochs find it ready; then the features of every image, for "more like this" (``Neighbours``).
Each chunk takes about 50 ms: a new label waits at most that long."""

from __future__ import annotations

import numpy as np

from ..al.neighbours import Neighbours
from .frozen import Prefill


class IdleWork:
    def __init__(self, pool, learner, graph):
        self.pool = pool
        self.learner = learner
        self.graph = graph
        self._prefill = None
        self._for = None  # the cache the walk fills (a replaced model may need another)
        self._indexing: Prefill | None = None
        self._index_for: object = ()  # the feature space the index was built in (() : none yet)
        self._parts: list[tuple[np.ndarray, list[str]]] = []
        self._ready: Neighbours | None = None

    def _target(self):
        if self.learner.head() is not None:
            return self.learner.frozen.embeddings
        return getattr(self.pool, "disk_cache", None)

    def _space(self):
        """The feature space ``graph.features`` uses now (a new one needs a new index)."""
        return self.learner.frozen.embeddings if self.learner.head() is not None else None

    def _prefill_pending(self) -> bool:
        target = self._target()
        return target is not None and (self._for is not target or not self._prefill.finished)

    def pending(self) -> bool:
        return self._prefill_pending() or self._index_for is not self._space()

    def step(self) -> tuple[str, int, int] | None:
        """One chunk; (what, done, total), or None when nothing is left."""
        if self._prefill_pending():
            target = self._target()
            if self._for is not target:
                if target is self.learner.frozen.embeddings:
                    self._prefill = Prefill("embedding images", self.pool.paths, target.vectors)
                else:
                    self._prefill = Prefill("caching images", self.pool.paths, self.pool.arrays)
                self._for = target
            return self._prefill.step()
        if self._index_for is not self._space():
            return self._index_step()
        return None

    def _index_step(self) -> tuple[str, int, int]:
        space = self._space()
        if self._indexing is None:
            self._parts = []
            self._indexing = Prefill("indexing images", self.pool.paths, self._features)
        work = self._indexing.step()
        if self._indexing.finished:
            parts, self._parts, self._indexing = self._parts, [], None
            features = [E for E, _ in parts if len(E)]
            paths = [p for _, loaded in parts for p in loaded]
            X = np.concatenate(features) if features else np.zeros((0, 1), np.float32)
            name = "the backbone's embeddings" if space is not None else "the pixels' principal components"
            self._ready, self._index_for = Neighbours(paths, X, name), space
        return work

    def _features(self, chunk: list[str]) -> None:
        self._parts.append(self.graph.features(chunk))

    def take_index(self) -> Neighbours | None:
        """The index built since the last call (once), else None."""
        ready, self._ready = self._ready, None
        return ready
