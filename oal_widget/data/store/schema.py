"""The tables, written once for both backends (a type map per backend fills in ``{ID}``, ``{INT}``...).

One database may hold several projects; every row carries its ``project_id``.
- ``projects``: name, images root, label names (JSON), ``version`` (bumped by every change of labels,
  names or test split: it is ``data_version()``, the step id of the change and the ``rev`` it writes).
- ``annotations``: each annotator's label of each image (double labelling keeps both).
- ``settlements``: a decision that stands whoever labelled first (``settle()``, ``review``, ``imported``).
- ``labels``: the standing label, derived from the two above in the same transaction (see ``marks.py``).
- ``test_split``, ``history`` (every change per session and step, for undo), ``claims`` (leases).
"""

from __future__ import annotations

SCHEMA_VERSION = 2

_MARK = (
    "label TEXT NOT NULL, annotator TEXT, source TEXT, model_labels INTEGER, session TEXT, "
    "created {TIME} NOT NULL, updated {TIME} NOT NULL, rev {INT} NOT NULL, first_rev {INT} NOT NULL"
)
TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS projects (id {ID}, name TEXT NOT NULL UNIQUE, images_root TEXT,
        label_names TEXT NOT NULL DEFAULT '[]', version {INT} NOT NULL DEFAULT 0, created {TIME} NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS labels (project_id {INT} NOT NULL {REF}, path TEXT NOT NULL,
        label TEXT NOT NULL, annotator TEXT, source TEXT, model_labels INTEGER, created {TIME} NOT NULL,
        updated {TIME} NOT NULL, settled INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (project_id, path))""",
    """CREATE TABLE IF NOT EXISTS annotations (project_id {INT} NOT NULL {REF}, path TEXT NOT NULL, """
    + _MARK
    + ", PRIMARY KEY (project_id, path, annotator))",
    "CREATE TABLE IF NOT EXISTS settlements (project_id {INT} NOT NULL {REF}, path TEXT NOT NULL, "
    + _MARK
    + ", PRIMARY KEY (project_id, path))",
    """CREATE TABLE IF NOT EXISTS test_split (project_id {INT} NOT NULL {REF}, path TEXT NOT NULL,
        added {TIME} NOT NULL, PRIMARY KEY (project_id, path))""",
    """CREATE TABLE IF NOT EXISTS history (id {ID}, project_id {INT} NOT NULL {REF}, session TEXT NOT NULL,
        step {INT} NOT NULL, path TEXT NOT NULL, previous TEXT, label TEXT, annotator TEXT, source TEXT,
        model_labels INTEGER, created {TIME} NOT NULL, undone INTEGER NOT NULL DEFAULT 0, marks TEXT)""",
    """CREATE TABLE IF NOT EXISTS claims (project_id {INT} NOT NULL {REF}, path TEXT NOT NULL,
        session TEXT NOT NULL, annotator TEXT, expires {TIME} NOT NULL, PRIMARY KEY (project_id, path))""",
    "CREATE INDEX IF NOT EXISTS history_by_step ON history (project_id, session, undone, step)",
    "CREATE INDEX IF NOT EXISTS claims_by_session ON claims (project_id, session)",
)

#: Columns of an annotation or settlement row (a "mark"), in table order after the key. ``rev``: the
#: project version that last wrote it; ``first_rev``: the one that created it (orders "first").
MARK_COLUMNS = (
    "label", "annotator", "source", "model_labels", "session", "created", "updated", "rev", "first_rev",
)  # fmt: skip
LABEL_COLUMNS = ("label", "annotator", "source", "model_labels", "created", "updated", "settled")
HISTORY_COLUMNS = (
    "session", "step", "path", "previous", "label", "annotator", "source", "model_labels", "created",
    "undone", "marks",
)  # fmt: skip


def ddl(types: dict[str, str]) -> list[str]:
    """The statements creating every table, with the backend's types (``ID``, ``INT``, ``TIME``, ``REF``)."""
    return [" ".join(statement.format(**types).split()) for statement in TABLES]
