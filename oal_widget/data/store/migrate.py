"""Schema migrations of the SQLite file, in place and in the caller's transaction (all or nothing).

Schema 1 (one project per file, no provenance) -> 2: the tables gain ``project_id``; each label
becomes an annotation by an unknown annotator (``''``: labelled before provenance was recorded; the
next label of that image by anyone replaces it); names and images root move to ``projects``;
history rows are kept (each its own step).
"""

from __future__ import annotations

from pathlib import Path

from .base import Tx
from .schema import ddl


def migrate(tx: Tx, version: int, types: dict[str, str], fallback_name: str) -> None:
    if version == 1:
        _v1_to_v2(tx, types, fallback_name)
    tx.run("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def _v1_to_v2(tx: Tx, types: dict[str, str], fallback_name: str) -> None:
    meta = dict(tx.all("SELECT key, value FROM meta"))
    for table in ("labels", "test_split", "history"):
        tx.run(f"ALTER TABLE {table} RENAME TO {table}_v1")
    tx.run("DROP INDEX IF EXISTS history_by_session")
    for statement in ddl(types):
        tx.run(statement)
    root = meta.get("images_root")
    (last,) = tx.row("SELECT COALESCE(MAX(id), 0) FROM history_v1")
    tx.run(
        "INSERT INTO projects (id, name, images_root, label_names, version, created) "
        "VALUES (1, ?, ?, ?, ?, ?)",
        (Path(root).name if root else fallback_name, root, meta.get("label_names", "[]"), last, tx.stamp),
    )
    tx.run(
        "INSERT INTO annotations (project_id, path, label, annotator, source, model_labels, session, "
        "created, updated, rev, first_rev) "
        "SELECT 1, path, label, '', NULL, NULL, NULL, created, updated, 0, 0 FROM labels_v1"
    )
    tx.run(
        "INSERT INTO labels (project_id, path, label, annotator, source, model_labels, created, updated, "
        "settled) SELECT 1, path, label, NULL, NULL, NULL, created, updated, 0 FROM labels_v1"
    )
    tx.run("INSERT INTO test_split (project_id, path, added) SELECT 1, path, added FROM test_split_v1")
    tx.run(
        "INSERT INTO history (id, project_id, session, step, path, previous, label, created, undone) "
        "SELECT id, 1, session, id, path, previous, label, created, undone FROM history_v1"
    )
    for table in ("labels", "test_split", "history"):
        tx.run(f"DROP TABLE {table}_v1")
    tx.run("DELETE FROM meta WHERE key IN ('images_root', 'label_names')")
