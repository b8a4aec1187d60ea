"""The embedded backend: one SQLite file in the workdir (``<workdir>/annotations.sqlite``); needs nothing.

WAL journal. ``SYNCHRONOUS`` decides what a commit survives: ``FULL`` (the default) survives a power cut
too, at one fsync per label; ``NORMAL`` survives the process being killed, not a power cut
(``bench/store_commit.py`` and ``bench/responsiveness.py`` measure both; the README has the figures).
One connection per ``Store``, shared by the threads of the process under a lock; other processes (or a
second ``Store`` on the same file) wait up to ``BUSY_TIMEOUT_S`` for each other, then
``StoreUnavailable``. Not for a network file system (SQLite's own documentation warns against it): a team
uses the PostgreSQL backend.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ...workdir import STORE_FILE
from .base import Tx
from .checks import utc_now
from .errors import StoreUnavailable
from .interface import LabelStore
from .migrate import migrate
from .schema import SCHEMA_VERSION, ddl

FILENAME = STORE_FILE
#: ``PRAGMA synchronous`` of every Store: ``"NORMAL"`` or ``"FULL"`` (see the module docstring).
SYNCHRONOUS = "FULL"
#: Seconds a write waits for another process (or Store) holding the file before failing.
BUSY_TIMEOUT_S = 5.0
TYPES = {"ID": "INTEGER PRIMARY KEY AUTOINCREMENT", "INT": "INTEGER", "TIME": "TEXT", "REF": ""}


#: The oldest SQLite the store's SQL runs on: ``INSERT ... ON CONFLICT DO UPDATE`` came in 3.24 (2018).
MIN_SQLITE = (3, 24, 0)


def check_sqlite_version(found: tuple[int, int, int] | None = None) -> None:
    """Refuse, with what to do, an SQLite library too old for the store (before anything is written)."""
    found = found or sqlite3.sqlite_version_info
    if tuple(found) < MIN_SQLITE:
        raise RuntimeError(
            f"the SQLite library of this Python is {'.'.join(map(str, found))}; the label store needs "
            f"{'.'.join(map(str, MIN_SQLITE))} or newer: use a newer Python (3.11 from python.org or "
            "conda ships a recent SQLite), or store='postgresql://...' for the PostgreSQL backend"
        )


def _same(sql: str) -> str:
    return sql  # SQLite speaks the shared ``?`` style as it is


class Store(LabelStore):
    """The labels of one images folder in a SQLite file (the embedded default).

    The file is created on first use and an older one (schema 1) is migrated in place, nothing lost.
    The file's project is its only one (named after the images folder) unless ``project`` says
    otherwise; ``create=False`` refuses a project the file does not hold. ``synchronous``: None
    takes ``SYNCHRONOUS``.
    """

    single_project_file = True

    def __init__(
        self, workdir, images_root=None, *, project=None, annotator=None, synchronous=None, create=True
    ):
        self._init_core(annotator)
        self.workdir = Path(workdir).expanduser()
        if self.workdir.exists() and not self.workdir.is_dir():
            raise NotADirectoryError(
                f"workdir {str(self.workdir)!r} is a file: pass a folder for the labels (e.g. images/.oal)"
            )
        self.synchronous = (synchronous or SYNCHRONOUS).upper()
        if self.synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous={synchronous!r} is invalid: expected 'NORMAL' or 'FULL'")
        check_sqlite_version()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.path: Path = self.workdir / FILENAME
        self._conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: no implicit transactions, we BEGIN/COMMIT explicitly.
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._transaction(self._create_schema, write=True, project=False)
            self._open_project(images_root, project, create=create)
        except sqlite3.DatabaseError as e:
            self.close()
            raise ValueError(
                f"{self.path} cannot be used as the annotations database ({e}): check that "
                f"{str(self.workdir)!r} is writable; move the file away if it is not oal_widget's; "
                "or pass another workdir"
            ) from e
        except BaseException:
            self.close()
            raise

    # --- the backend's part -------------------------------------------------------------------
    def _create_schema(self, tx: Tx) -> None:
        tables = {r[0] for r in tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            row = tx.one("SELECT value FROM meta WHERE key = 'schema_version'")
            version = int(row[0]) if row else SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                raise ValueError(
                    f"{self.path} was written by a newer oal_widget (schema {version}, this one reads "
                    f"{SCHEMA_VERSION}): upgrade oal_widget"
                )
            if version < SCHEMA_VERSION:
                migrate(tx, version, TYPES, self._fallback_project_name())
                return
        for statement in ddl(TYPES):
            tx.run(statement)
        tx.run(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def _fallback_project_name(self) -> str:
        return self._default_project_name()

    def _default_project_name(self) -> str:
        # <images>/.oal is the default workdir: the project is named after the images folder.
        folder = self.path.parent.resolve()
        return folder.parent.name if folder.name == ".oal" else folder.name

    def _transaction(self, fn, *, write: bool, bump: bool = False, project=True):
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as e:
                failed = self._failed(e)
                if failed is None:
                    raise
                raise failed from e
            try:
                tx = Tx(db.cursor(), _same, self._project if project else None, utc_now)
                if write and project:
                    if bump:  # no RETURNING: SQLite before 3.35 (Debian 11, Ubuntu 20.04) lacks it
                        tx.run("UPDATE projects SET version = version + 1 WHERE id = ?", (tx.project,))
                    tx.version, names = tx.row(
                        "SELECT version, label_names FROM projects WHERE id = ?", (tx.project,)
                    )
                    tx.names = json.loads(names)
                result = fn(tx)
                db.execute("COMMIT")
            except BaseException as e:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                failed = self._failed(e) if isinstance(e, sqlite3.OperationalError) else None
                if failed is None:
                    raise
                raise failed from e
            if write and bump and project:
                self._own_bumps += 1
            return result

    def _failed(self, e: sqlite3.OperationalError) -> StoreUnavailable | None:
        """The StoreUnavailable for a file that is busy, or that cannot be written once open (disk
        full, read-only); None for anything else (a damaged file while opening says so itself)."""
        if "locked" in str(e) or "busy" in str(e):
            error = StoreUnavailable(
                f"{self.path} is locked by another process for over {BUSY_TIMEOUT_S:g} s ({e}): nothing "
                "was saved; try again, and check that no other program keeps the file busy"
            )
        elif self._project is not None:
            error = StoreUnavailable(
                f"{self.path} could not be written ({e}): nothing was saved; check the free disk space "
                "and that the file is writable, then try again"
            )
        else:
            return None
        return error

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"the store {self.path} is closed: open a new Store")
        return self._conn

    @property
    def closed(self) -> bool:
        return self._conn is None

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def open_existing(workdir, *, project=None, annotator=None) -> Store:
    """The Store of a workdir that has been labelled; ``FileNotFoundError`` if it has none.

    An images folder is accepted too when its ``.oal`` sub-folder holds the store.
    """
    workdir = Path(workdir).expanduser()
    for folder in (workdir, workdir / ".oal"):
        if (folder / FILENAME).is_file():
            return Store(folder, project=project, annotator=annotator, create=project is None)
    raise FileNotFoundError(
        f"no annotations.sqlite in {workdir}: pass the .oal folder of an images folder that has been labelled"
    )
