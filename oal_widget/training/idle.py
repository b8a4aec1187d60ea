"""Work the trainer does while it has nothing to train: walk the pool a short chunk at a time,
embedding every image (frozen-backbone mode) or decoding it into the disk cache, so later queries
and epochs find it ready. Each chunk takes about 50 ms: a new label waits at most that long."""

from __future__ import annotations

from .frozen import Prefill


class IdleWork:
    def __init__(self, pool, learner):
        self.pool = pool
        self.learner = learner
        self._prefill = None
        self._for = None  # the cache the walk fills (a replaced model may need another)

    def _target(self):
        if self.learner.head() is not None:
            return self.learner.frozen.embeddings
        return getattr(self.pool, "disk_cache", None)

    def pending(self) -> bool:
        target = self._target()
        return target is not None and (self._for is not target or not self._prefill.finished)

    def step(self) -> tuple[str, int, int] | None:
        """One chunk; (what, done, total), or None when nothing is left."""
        target = self._target()
        if target is None:
            return None
        if self._for is not target:
            if target is self.learner.frozen.embeddings:
                self._prefill = Prefill("embedding images", self.pool.paths, target.vectors)
            else:
                self._prefill = Prefill("caching images", self.pool.paths, self.pool.arrays)
            self._for = target
        return None if self._prefill.finished else self._prefill.step()
