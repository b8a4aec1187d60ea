"""Near-duplicates in the pool, found once in a background thread after start (``data.duplicates``).

What they change is decided by the mirror (``Mirror.to_join`` and ``take_near``: near-duplicates never
sit on both sides of the test split), the order (images that joined the split move to the test lane)
and the trainer (``Reserve``: never trained on). The rules act on verified pairs, not whole groups.
Until the groups are found nothing changes; a failure is logged and said in ``error``, and labelling
goes on without them.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import replace

from ..data.duplicates import Cancelled, DuplicateGroups, find_groups

log = logging.getLogger(__name__)
#: At interpreter exit (a kernel shut down, a script's end) a search still running is cancelled and
#: waited for this long: a daemon thread torn down inside faiss' or scikit-learn's C++ aborts the process
#: ("terminate called without an active exception") instead of letting it exit.
EXIT_STOP_S = 10.0
_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for watch in list(_LIVE):
        watch.stop()
    for watch in list(_LIVE):
        watch.join(EXIT_STOP_S)


class DuplicateWatch:
    """Args: the ``ImagePool``, the session's store, ``Mirror``, ``Order`` and lock,
    ``closed()``; ``progress(done, total)``."""

    def __init__(self, pool, store, mirror, order, lock, closed: Callable[[], bool], progress=None):
        self.pool, self._progress = pool, progress
        self._store, self._mirror, self._order = store, mirror, order
        self._lock, self._closed = lock, closed
        self.groups: DuplicateGroups | None = None
        self.error: str | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="oal-duplicates", daemon=True)
        _LIVE.add(self)

    def start(self) -> None:
        if self.pool.paths:
            self._thread.start()

    def stop(self) -> None:
        self._cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """True once the search is over (found, failed or cancelled), or was never started."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            groups = find_groups(self.pool, self._progress, self._cancel)
            if self._cancel.is_set():
                return
            self.groups = replace(groups, seen={})  # its thumbnails: ~2 KB an image, not kept
            self._take(groups)
        except Cancelled:
            return
        except RuntimeError as e:
            if "interpreter shutdown" in str(e):  # concurrent.futures refuses work once Python is exiting
                return
            self._failed(e)
        except Exception as e:  # labelling goes on without them
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        log.exception("finding near-duplicates failed")
        self.error = f"finding near-duplicates failed ({type(e).__name__}: {e}); labelling goes on"

    def export(self, out):
        """``duplicates.csv`` at ``out``: every group found, with each image's label and split
        (``reports.exports.export_duplicates``); ``RuntimeError`` while the search has not finished."""
        from ..reports.exports import export_duplicates

        if self.groups is None:
            raise RuntimeError(self.error or "near-duplicates are still being looked for: export them later")
        return export_duplicates(self.groups, out, self._store)

    def _take(self, groups) -> None:
        """The store's test split takes the unlabelled images of a group with a test image and no training
        label; then the order, the trainer (never trains on them) and the mirror (shadowed test labels)."""
        with self._lock:
            if self._closed():
                return
            near = near_pairs(groups)
            joined = self._mirror.to_join(near)
            if joined:  # the store leaves out any a teammate labelled since this session read
                joined = self._store.join_test_split(joined)
                self._order.join_test(self._mirror.join_test(joined))
            self._mirror.take_near(near)
            self._mirror.flush()


def near_pairs(groups) -> dict[str, tuple[str, ...]]:
    """path -> the images verified as its near-duplicates: the verified pairs of ``groups``
    (``DuplicateGroups.scores``); groups given as plain tuples count as verified whole."""
    near: dict[str, set[str]] = {}
    scores = getattr(groups, "scores", None)  # every pair verified; those its groups joined count
    if scores:
        pairs = [
            (a, b) for a, b in scores if groups.index(a) is not None and groups.index(a) == groups.index(b)
        ]
    else:
        pairs = [(a, b) for g in groups for a in g for b in g if a < b]
    for a, b in pairs:
        near.setdefault(a, set()).add(b)
        near.setdefault(b, set()).add(a)
    return {p: tuple(sorted(o)) for p, o in near.items()}
