"""The person's actions: label, accept, undo, skip, back, a page, a relabel, a settlement, an import.

Each is cheap (O(1) in the pool size, a page O(page)) and keeps one order of events: the store commits
first and says what stands; the mirror takes exactly that (``Mirror.take``: it tells the trainer); then
the next image is shown. No action decides by itself which label stands.
"""

from __future__ import annotations

import logging

from ..data.store import StoreUnavailable, UndoConflict, Written

log = logging.getLogger(__name__)


class Actions:
    """Args: the store, the ``Mirror``, the ``Order``, ``names()`` (the label names now), the trainer's
    ``state`` (predictions), the session's lock, its ``unreadable`` dict, ``sync()`` (take in other
    sessions' labels), ``closed()`` (a retired session, a newer panel took over, does nothing) and
    ``give_back(paths)`` (their claims go back: a skip)."""

    def __init__(self, store, mirror, order, *, names, state, lock, unreadable, sync, closed, give_back):
        self.store, self.mirror, self.order = store, mirror, order
        self._names, self._state, self._lock, self._sync = names, state, lock, sync
        self._unreadable, self._closed, self._give_back = unreadable, closed, give_back

    def _refuse_if_closed(self) -> None:
        if self._closed():
            raise RuntimeError(
                "this session is closed (a newer panel on the same folder took over, or close() was "
                "called): use the newer panel, or start a new session"
            )

    def _check(self, name: str) -> None:
        if name not in self._names():
            raise ValueError(f"label {name!r} is not one of the labels {self._names()!r}")

    def label(self, name: str, source: str = "person", model_labels: int | None = None) -> str | None:
        with self._lock:
            path = self.order.current
            if path is None or self._closed():
                return None
            self._check(name)
            # The commit comes before anything else; StoreUnavailable leaves the image on screen.
            written = self.store.commit_labels([(path, name, source)], model_labels=model_labels)
            self.mirror.take_all(written.after)
            self._next()
            return path

    def _take(self, written: Written, now: bool = True) -> None:
        """The mirror takes what stands after a write not made from the image on screen (a page, a review
        fix, a settlement, an import); the image on screen, if it is no longer to label here (labelled by
        the write, or a test image its near-duplicate's new training label shadowed), gives way."""
        current = self.order.current
        was_open = current is not None and self.mirror.wanted(current)
        self.mirror.take_all(written.after, now=now)
        self.mirror.flush()  # none of it waits for more labels
        if current is not None and (was_open or current in written.after) and not self.mirror.wanted(current):
            self._next()

    def _next(self) -> None:
        """The labelled image leaves the screen. The label is saved whatever happens here: a store that
        fails now must not make it look unsaved (the claims say what they do about it)."""
        try:
            self.order.done_with_current()
        except StoreUnavailable:  # the order is as it was: the next key tries again
            log.warning("the next image could not be claimed: the store is unavailable", exc_info=True)
        if self.order.current is None:
            self.mirror.flush()  # nothing left to label: do not hold labels back

    def accept(self, shown: tuple[str, str] | None = None) -> bool:
        with self._lock:
            path = self.order.current
            if self._closed() or path is None or self.mirror.split(path) == "test" or self.mirror.blind(path):
                return False  # a test image or a second opinion never takes a label the person did not choose
            predicted, at = self._state.prediction_with_at(path)
            if shown is not None:  # what was on screen: only for the image still on screen
                if path is None or shown[0] != path or shown[1] not in self._names():
                    return False
                name = shown[1]
                if predicted is None or predicted[0] != name:
                    at = None  # a newer query changed it since: which model suggested it is not known
            else:
                if predicted is None:
                    return False
                name = predicted[0]
            self.label(name, source="accepted", model_labels=at)
            return True

    def undo(self) -> str | None:
        paths = self.undo_step()
        return paths[0] if paths else None

    def undo_step(self, show_labelled: bool = True, step: int | None = None) -> list[str]:
        """Undo this session's latest step (one label or a whole page), or the step ``step``; its images
        come back on screen, the first one current. ``show_labelled=False`` (the review queue): an image
        that gets an older label back stays off the order. Returns the paths restored; ``UndoConflict``
        after restoring the others when another annotator changed some of them since."""
        with self._lock:
            if self._closed():
                return []
            result = self.store.undo_step(step)
            self.mirror.take_all(result.after)
            self.mirror.flush()  # an undo is not held back
            for path in reversed(result.paths):  # shown last to first: the first ends up current
                self._unreadable.pop(path, None)
                if self.mirror.wanted(path) or show_labelled:
                    self.order.show(path)
            if result.conflicts:
                self._sync()  # another annotator's newer label stands: take it in, then say so
                raise UndoConflict(result)
            return list(result.paths)

    def label_page(self, items, model_labels: int | None = None) -> list[str]:
        """Store ``(path, label, source[, model_labels])`` items in ONE transaction (one undo step; an
        unknown label raises ``ValueError`` and stores nothing), then the mirror and the trainer take what
        stands and the order moves on. ``model_labels``: what ``accepted`` items without their own record."""
        with self._lock:
            if self._closed():
                return []
            items = [tuple(item) for item in items]  # (path, label, source[, model_labels])
            written = self.store.commit_labels(items, model_labels=model_labels)
            self._take(written)
            return [item[0] for item in items]

    def relabel(self, path: str, name: str, source: str = "review") -> Written:
        """Give an image that is not on screen (e.g. in the review queue) a new label; the order is left
        as it is. Returns the write (its ``step`` undoes exactly it)."""
        with self._lock:
            self._refuse_if_closed()
            self._check(name)
            written = self.store.commit_labels([(path, name, source)])
            self._take(written)
            return written

    def settle(self, path: str, name: str) -> Written:
        """Decide a conflict between annotators: ``name`` stands for ``path`` (the trainer learns it)."""
        with self._lock:
            self._refuse_if_closed()
            written = self.store.commit_settle(path, name)
            self._take(written)
            return written

    def take_written(self, written: Written) -> None:
        """A write made by another store object of this session (an import): mirror what stands."""
        with self._lock:
            self._refuse_if_closed()
            self._take(written, now=False)

    def skip(self) -> str | None:
        """The image goes to the end of the order; its claim is given back meanwhile."""
        with self._lock:
            path = None if self._closed() else self.order.skip()
            if path is not None:
                self._give_back([path])
            return path

    def back(self) -> str | None:
        with self._lock:
            return None if self._closed() else self.order.back()

    def skip_unreadable(self, reason: str) -> str | None:
        with self._lock:
            if self.order.current is None or self._closed():
                return None
            self._unreadable.setdefault(self.order.current, reason)
            path = self.order.drop_current()
            if path is not None:
                self._give_back([path])  # a teammate's copy of the file may open (their claim is free)
            return path
