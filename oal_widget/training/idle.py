"""Work the trainer does while it has nothing to train, a short chunk at a time: walk the pool embedding
every image (frozen-backbone mode) or decoding it into the disk cache, so later queries and epochs find
it ready; learn the pool's representation (``representation``), if any; then compute every image's
features for "more like this" (``Neighbours``), again whenever that space changes. Each chunk takes
about 50-100 ms: a new label waits at most that long."""

from __future__ import annotations

import numpy as np

from ..al.neighbours import Neighbours
from .frozen import Prefill

#: What the "more like this" index's features are, by ``IdleWork._space`` ("": a backbone's embeddings).
SPACE_NAMES = {
    "pixels": "the pixels' principal components",
    "learned": "the pool's learned codes",
    "": "the backbone's embeddings",
}


class IdleWork:
    def __init__(self, pool, learner, graph):
        self.pool = pool
        self.learner = learner
        self.graph = graph
        self.representation = graph.representation
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

    def _prefill_pending(self) -> bool:
        target = self._target()
        return target is not None and (self._for is not target or not self._prefill.finished)

    def _learning(self) -> bool:
        """The pool's representation is still to learn (never in frozen-backbone mode)."""
        return (
            self.representation is not None and self.learner.head() is None and self.representation.pending()
        )

    def _space(self):
        """The space "more like this" searches: the backbone's embeddings in frozen-backbone mode, else the
        best one that needs no label (``graph.pixel_features``); a new space needs a new index."""
        if self.learner.head() is not None:
            return self.learner.frozen.embeddings
        return "learned" if self.graph.learned_ready() else "pixels"

    def pending(self) -> bool:
        return self._prefill_pending() or self._learning() or self._index_for != self._space()

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
        if self._learning():
            return self.representation.step()
        if self._index_for != self._space():
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
            name = SPACE_NAMES[space if isinstance(space, str) else ""]
            self._ready, self._index_for = Neighbours(paths, X, name), space
        return work

    def _features(self, chunk: list[str]) -> None:
        frozen = self.learner.head() is not None
        self._parts.append(self.graph.features(chunk) if frozen else self.graph.pixel_features(chunk))

    def take_index(self) -> Neighbours | None:
        """The index built since the last call (once), else None."""
        ready, self._ready = self._ready, None
        return ready
