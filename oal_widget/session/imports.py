"""Labels from files into a session: a CSV of ``path,label``, an oal_widget JSON export, or a folder
sorted in class sub-folders (``reports.imports.read_labels``).

Images that already have another label keep it unless ``overwrite``; the test split stays the
workdir's own (an imported test image is a test label). When the session has no label names yet, they
become the source's labels in sorted order; otherwise a label not among them is a ``ValueError``.
Imports are written in one transaction by a second store object on the same backend (source
``imported``), so Backspace never undoes them; the session mirrors what that write left standing.
"""

from __future__ import annotations

from pathlib import Path


def import_labels(session, source, *, overwrite: bool = False):
    """Returns an ``imports.ImportResult`` (counts, and paths not found). ``session``: its public API."""
    from ..reports.imports import ImportResult, check_known, plan, read_labels

    found, unmatched = read_labels(source, session.images, session.pool.paths)
    result = ImportResult(source=Path(source), unmatched=unmatched)
    if session.needs_labels:
        session.set_labels(sorted(set(found.values())), start=False)
    check_known(source, set(found.values()), list(session.label_names))
    items = plan(found, session.known_labels(), result, overwrite=overwrite)
    with session.another_store() as writer:
        written = writer.commit_labels(items, source="imported")  # committed before the mirror hears
    session.actions.take_written(written)
    result.label_names = list(session.label_names)
    return result
