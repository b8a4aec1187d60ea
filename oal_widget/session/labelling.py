"""The person's actions: label, accept, undo, skip, back. Each is cheap (O(1) in the pool size) and
keeps one order of events: the store commits first, then the mirror, then the trainer hears of it, then
the next image is shown.
"""

from __future__ import annotations

import time

from ..data.store import UndoConflict
from ..messages import Labelled, Unlabelled


class Labelling:
    """Args: the store, the ``LabelBook`` mirror, the ``TrainerBridge``, the ``Order``, ``names()`` (the
    label names now), ``prediction(path)``, the session's lock, its ``unreadable`` dict, a ``random.Random``
    and the ``query_every`` setting (the size of a jump when two panels collide)."""

    def __init__(self, store, book, bridge, order, *, names, state, lock, unreadable, second, sync):
        self.store, self.book, self.bridge, self.order = store, book, bridge, order
        self._names, self._state, self._lock, self._sync = names, state, lock, sync
        self._unreadable, self.second = unreadable, second

    def label(self, name: str, source: str = "person", model_labels: int | None = None) -> str | None:
        with self._lock:
            path = self.order.current
            if path is None:
                return None
            if name not in self._names():
                raise ValueError(f"label {name!r} is not one of the labels {self._names()!r}")
            # The commit comes before anything else; StoreUnavailable leaves the image on screen.
            previous = self.store.label(path, name, source=source, model_labels=model_labels)
            standing = name
            if path in self.second:  # a second opinion: kept beside the first label, which stands
                self.second.discard(path)
                standing = self.store.get(path)
            if standing != previous or path not in self.book:
                self.book.set(path, standing)
                self.bridge.forget(path)  # an older label of it still held back must never go out
                split = self.book.split(path)
                self.bridge.send(Labelled(path, standing, split, time.monotonic(), source=source))
            self.order.done_with_current()
            if self.order.current is None:
                self.bridge.flush()  # nothing left to label: do not hold labels back
            return path

    def accept(self, shown: tuple[str, str] | None = None) -> bool:
        with self._lock:
            path = self.order.current
            if path is not None and self.book.split(path) == "test":
                return False  # a test image never takes a label the person did not choose
            if shown is not None:  # what was on screen: only for the image still on screen
                if path is None or shown[0] != path or shown[1] not in self._names():
                    return False
                name = shown[1]
            else:
                predicted = self._state.prediction(path) if path is not None else None
                if predicted is None:
                    return False
                name = predicted[0]
            self.label(name, source="accepted", model_labels=self._state.predicted_at)
            return True

    def undo(self) -> str | None:
        paths = self.undo_step()
        return paths[0] if paths else None

    def undo_step(self, show_labelled: bool = True) -> list[str]:
        """Undo this session's latest step (one label or a whole page); its images come back on screen,
        the first one current. ``show_labelled=False`` (the review queue): an image that gets an older
        label back stays off the order. Returns the paths restored; ``UndoConflict`` after restoring the
        others when another annotator changed some of them since."""
        with self._lock:
            result = self.store.undo_step()
            for path in reversed(result.paths):  # shown last to first: the first ends up current
                restored = self.store.get(path)  # the label it had before, if any
                self.book.set(path, restored)
                self.bridge.forget(path)
                if restored is None:
                    self.bridge.send(Unlabelled(path), flush=True)
                else:
                    self.bridge.send(Labelled(path, restored, self.book.split(path)), flush=True)
                self._unreadable.pop(path, None)
                if restored is None or show_labelled:
                    self.order.show(path)
            if result.conflicts:
                self._sync()  # another annotator's newer label stands: take it in, then say so
                raise UndoConflict(result)
            return list(result.paths)

    # --- many at once: a grid page, a review fix ---------------------------------------------------------
    def label_page(self, items, model_labels: int | None = None) -> list[str]:
        """Store ``(path, label, source)`` items in ONE transaction (one undo step; an unknown label
        raises ``ValueError`` and stores nothing), then tell the trainer of each and move the order on.
        ``model_labels``: what the ``accepted`` ones record."""
        with self._lock:
            items = [(path, name, source) for path, name, source in items]
            self.store.label_many(items, model_labels=model_labels)
            now = time.monotonic()
            for path, name, source in items:
                self._tell(path, name, source, now)
            if self.order.current in {path for path, _, _ in items}:
                self.order.done_with_current()
            self.bridge.flush()  # a page is a batch already: none of it waits for the next one
            return [path for path, _, _ in items]

    def relabel(self, path: str, name: str, source: str = "review") -> None:
        """Give an image that is not on screen (e.g. in the review queue) a new label; the order is left
        as it is."""
        with self._lock:
            if name not in self._names():
                raise ValueError(f"label {name!r} is not one of the labels {self._names()!r}")
            self.store.label(path, name, source=source)
            self._tell(path, name, source, time.monotonic())

    def _tell(self, path: str, name: str, source: str, sent_at: float) -> None:
        """The mirror and the trainer learn of a committed label."""
        self.book.set(path, name)
        self.bridge.forget(path)  # an older label of it still held back must never go out
        self.bridge.send(Labelled(path, name, self.book.split(path), sent_at, source=source))

    def skip(self) -> str | None:
        with self._lock:
            return self.order.skip()

    def back(self) -> str | None:
        with self._lock:
            return self.order.back()

    def skip_unreadable(self, reason: str) -> str | None:
        with self._lock:
            if self.order.current is None:
                return None
            self._unreadable.setdefault(self.order.current, reason)
            return self.order.drop_current()
