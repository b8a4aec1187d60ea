"""Labels from files into a session: a CSV of ``path,label``, an oal_widget JSON export, or a folder
sorted in class sub-folders (``reports.imports.read_labels``).

Images that already have another label keep it unless ``overwrite``; the test split stays the
workdir's own (an imported test image is a test label). When the session has no label names yet, they
become the source's labels in sorted order; otherwise a label not among them is a ``ValueError``.
Imports are written in one transaction by a second store object on the same backend (source
``imported``), so Backspace never undoes them.
"""

from __future__ import annotations

from pathlib import Path

from ..messages import Labelled


def import_labels(session, source, *, overwrite: bool = False):
    """Returns an ``imports.ImportResult`` (counts, and paths not found)."""
    from ..reports.imports import ImportResult, check_known, plan, read_labels

    found, unmatched = read_labels(source, session.images, session.pool.paths)
    result = ImportResult(source=Path(source), unmatched=unmatched)
    with session._lock:
        names = set(found.values())
        if session.needs_labels:
            session.set_labels(sorted(names), start=False)
        check_known(source, names, list(session.label_names))
        book = session._book
        items = plan(found, book, result, overwrite=overwrite)
        current = session.current
        current_was_unlabelled = current is not None and current not in book
        with session._another_store() as writer:
            writer.label_many(items, source="imported")  # committed before the mirror and trainer hear
        for path, label in items:
            book.set(path, label)
            session._bridge.forget(path)
            session._bridge.send(Labelled(path, label, book.split(path), source="imported"))
        session._bridge.flush()
        if current_was_unlabelled and current in book:
            session._order.done_with_current()
        result.label_names = list(session.label_names)
    return result
