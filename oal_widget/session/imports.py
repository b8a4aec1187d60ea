"""Labels from files into a session: a CSV of ``path,label``, an oal_widget JSON export, or a folder
sorted in class sub-folders (``reports.exports.read_labels``).

Images that already have another label keep it unless ``overwrite``; the test split stays the
workdir's own (an imported test image is a test label). When the session has no label names yet, they
become the source's labels in sorted order; otherwise a label not among them is a ``ValueError``.
Imports are written by a separate store session, so Backspace never undoes them one by one.
"""

from __future__ import annotations

from pathlib import Path

from ..data.store import Store
from ..messages import Labelled


def import_labels(session, source, *, overwrite: bool = False):
    """Returns an ``exports.ImportResult`` (counts, and paths not found)."""
    from ..reports import exports

    found, unmatched = exports.read_labels(source, session.images, session.pool.paths)
    result = exports.ImportResult(source=Path(source), unmatched=unmatched)
    with session._lock:
        names = set(found.values())
        if session.needs_labels:
            session.set_labels(sorted(names), start=False)
        unknown = sorted(names - set(session.label_names))
        if unknown:
            raise ValueError(
                f"{source} has the label(s) {unknown!r}, which are not among the labels "
                f"{session.label_names!r}: add them at the END of labels=[...], or fix the file"
            )
        current = session.current
        current_was_unlabelled = current is not None and session.label_of(current) is None
        with Store(session.workdir) as writer:
            for path, label in found.items():
                old = session.label_of(path)
                if old == label:
                    result.unchanged += 1
                    continue
                if old is not None and not overwrite:
                    result.kept.append(path)
                    continue
                writer.label(path, label)  # committed before the mirror and the trainer hear of it
                session._book.set(path, label)
                session._bridge.forget(path)
                session._bridge.send(Labelled(path, label, session._book.split(path)))
                if old is None:
                    result.added += 1
                else:
                    result.changed += 1
        session._bridge.flush()
        if current_was_unlabelled and session.label_of(current) is not None:
            session._order.done_with_current()
        result.label_names = list(session.label_names)
    return result
