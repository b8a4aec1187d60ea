"""Labels written by another session on the same workdir (another panel, another process).

Cheap when nobody else wrote: SQLite's ``data_version`` changes only when ANOTHER connection commits.
"""

from __future__ import annotations

from ..messages import Labelled, Unlabelled


def refresh(session) -> bool:
    """Take the other sessions' labels, relabels and undos into ``session``; True when any changed.
    Images another session held and let go of come back into the order."""
    with session._lock:
        for path in session._claims.returned():
            if path in session._book.pool and session._wanted(path):
                session._order.reinstate(path)
    version = session.store.data_version()  # before the read: a commit during it shows next time
    with session._lock:
        if version == session._data_version:
            return False
        # Read under the lock: a label() of this session from another thread between the read and the
        # merge would otherwise look like a label the other session removed.
        labels = dict(session.store.labels())
        session._data_version = version
        book, bridge, order = session._book, session._bridge, session._order
        current = order.current
        current_was_new = current is not None and current not in book
        changed = [p for p, label in labels.items() if book.get(p) != label]
        # A teammate's accepted or grid label was chosen by a prediction: it must not grade the model.
        sources = session.store.sources(changed)
        for path in changed:
            book.set(path, labels[path])
            if labels[path] in session.label_names:
                bridge.forget(path)
                bridge.send(
                    Labelled(path, labels[path], book.split(path), source=sources.get(path) or "person")
                )
        for path in [p for p in book.labels if p not in labels]:
            book.set(path, None)
            bridge.forget(path)
            bridge.send(Unlabelled(path), flush=True)  # as undo(): not held back
            if path in book.pool:
                order.reinstate(path)
        from .second import second_opinions

        for path in second_opinions(session.store, session.config.double_label, book.pool):
            if path not in session._second and path != current:  # newly labelled by another annotator
                session._second.add(path)
                order.reinstate(path)
        if current_was_new and current in book:
            # The other session labelled the image about to be shown: show the next one instead (an
            # image the person stepped back to keeps showing, to be relabelled).
            order.done_with_current()
    return True
