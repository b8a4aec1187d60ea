"""The labels: one store interface (``LabelStore``), two backends.

- ``Store`` (``sqlite.py``): the embedded default, a SQLite file in the workdir; needs nothing.
- ``PostgresStore`` (``postgres.py``): a PostgreSQL server, for a team on one data set.

``open_store(store=None, *, workdir, images_root, project, annotator)`` picks one from the settings.
Standard library + psycopg only: no widgets, no TensorFlow.
"""

from .checks import SOURCES, check_label_names, check_path, check_source
from .errors import StoreError, StoreUnavailable, UndoConflict
from .factory import open_store
from .interface import LabelStore
from .records import (
    AnnotationRecord,
    Conflict,
    LabelRecord,
    PairAgreement,
    ProjectDump,
    Standing,
    UndoResult,
    Written,
)
from .schema import SCHEMA_VERSION
from .sqlite import BUSY_TIMEOUT_S, FILENAME, SYNCHRONOUS, Store, open_existing
from .urls import is_postgres_url, mask_url


def __getattr__(name):
    if name == "PostgresStore":  # psycopg is imported only when PostgreSQL is used
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUSY_TIMEOUT_S",
    "FILENAME",
    "SCHEMA_VERSION",
    "SOURCES",
    "SYNCHRONOUS",
    "AnnotationRecord",
    "Conflict",
    "LabelRecord",
    "LabelStore",
    "PairAgreement",
    "PostgresStore",
    "ProjectDump",
    "Standing",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UndoConflict",
    "UndoResult",
    "Written",
    "check_label_names",
    "check_path",
    "check_source",
    "is_postgres_url",
    "mask_url",
    "open_existing",
    "open_store",
]
