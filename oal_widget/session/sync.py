"""Labels written by other sessions on the same store (another panel, another process, a teammate), and
images they added to the test split.

Cheap when nobody else wrote: the store's ``data_version`` changes only when ANOTHER store object
commits. What changed goes through ``Mirror.take``, like this session's own writes.
"""

from __future__ import annotations

from ..data.store import Standing


class Sync:
    """Args: the store, the ``Mirror``, the ``Order``, the ``Leases``, the session's lock, ``wanted(path)``
    (the session's rule: still to label and not held by another), ``closed()`` and ``version``: the
    store's ``data_version()`` read BEFORE the labels the session started from (a commit in between is
    seen by the first refresh)."""

    def __init__(self, store, mirror, order, leases, *, lock, wanted, closed, version: int):
        self.store, self.mirror, self.order, self.leases = store, mirror, order, leases
        self._lock, self._wanted, self._closed = lock, wanted, closed
        self._version = version

    def refresh(self) -> bool:
        """Take the other sessions' labels, relabels and undos in; True when any changed. Images another
        session held and let go of come back into the order; the image on screen is claimed again if it
        came to be labelled again, or left if another session took it (a lease lost) or it is no longer
        asked for (a test image shadowed by a near-duplicate's training label)."""
        if self._closed():
            return False
        returned = self.leases.returned()
        with self._lock:
            for path in returned:
                if self.mirror.in_pool(path) and self._wanted(path):
                    self.order.reinstate(path)
        changed = self._take_changes()
        with self._lock:
            current, mirror = self.order.current, self.mirror
            to_label = current is not None and (current not in mirror.book or mirror.blind(current))
            if to_label and mirror.shadowed(current):
                # A test image on screen (to label, or blind) whose near-duplicate has a training label since
                # it came up (the search found the pair, or a page labelled it): its label grades nothing.
                self.order.drop_current()
            self.order.recheck()
        return changed

    def _take_changes(self) -> bool:
        version = self.store.data_version()  # before the read: a commit during it shows next time
        with self._lock:
            if version == self._version:
                return False
            # Read under the lock: a label() of this session from another thread between the read and the
            # merge would otherwise look like a label the other session removed.
            labels = self.store.labels()
            self._version = version
            mirror = self.mirror
            # Another session's test split grew (near-duplicates of a test image it found): here too.
            self.order.join_test(mirror.join_test(self.store.test_paths() - mirror.book.test))
            current = self.order.current
            current_was_open = current is not None and mirror.wanted(current)
            known = mirror.labels()
            blind = set(self.store.double_label_candidates(mirror.share)) if mirror.share else set()
            # A label changed, or a second opinion was given (or asked) with the label unchanged: this
            # annotator's other panel gave it, or an undo took it back.
            changed = [
                p for p, label in labels.items()
                if known.get(p) != label or mirror.blind(p) != (p in blind and mirror.in_pool(p))
            ]  # fmt: skip
            gone = [p for p in known if p not in labels]
            # A teammate's accepted or grid label was chosen by a prediction: it must not grade the model.
            sources = self.store.sources(changed)
            for path in changed:
                mirror.take(path, Standing(labels[path], sources.get(path), mine=path not in blind))
            for path in gone:
                mirror.take(path, Standing(None))
            mirror.flush()
            if current_was_open and not mirror.wanted(current):
                # The other session labelled the image on screen: show the next one instead (an image the
                # person stepped back to keeps showing, to be relabelled).
                self.order.done_with_current()
        return True
