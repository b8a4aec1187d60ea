"""Work the trainer does while it has nothing to train: walk the pool a short chunk at a time,
embedding every image (frozen-backbone mode) or decoding it into the disk cache, so later queries
and epochs find it ready; then learn the pool's representation (``representation``), if any. Each
chunk takes about 50-100 ms: a new label waits at most that long."""

from __future__ import annotations

from .frozen import Prefill


class IdleWork:
    def __init__(self, pool, learner, representation=None):
        self.pool = pool
        self.learner = learner
        self.representation = representation
        self._prefill = None
        self._for = None  # the cache the walk fills (a replaced model may need another)

    def _target(self):
        if self.learner.head() is not None:
            return self.learner.frozen.embeddings
        return getattr(self.pool, "disk_cache", None)

    def pending(self) -> bool:
        target = self._target()
        return (target is not None and (self._for is not target or not self._prefill.finished)) or (
            self._learning()
        )

    def _learning(self) -> bool:
        """The pool's representation is still to learn (never in frozen-backbone mode)."""
        return (
            self.representation is not None and self.learner.head() is None and self.representation.pending()
        )

    def step(self) -> tuple[str, int, int] | None:
        """One chunk; (what, done, total), or None when nothing is left."""
        target = self._target()
        if target is None or (self._for is target and self._prefill.finished):
            return self.representation.step() if self._learning() else None
        if self._for is not target:
            if target is self.learner.frozen.embeddings:
                self._prefill = Prefill("embedding images", self.pool.paths, target.vectors)
            else:
                self._prefill = Prefill("caching images", self.pool.paths, self.pool.arrays)
            self._for = target
        return self._prefill.step()
