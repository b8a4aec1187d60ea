"""The labels on disk: one SQLite file, the only source of truth (``<workdir>/annotations.sqlite``).

WAL journal with ``synchronous=NORMAL``: every ``label()`` is committed before it returns and
survives the process being killed (not a power cut). One connection per ``Store``, shared by the
threads of the process under a lock; other processes (or a second ``Store`` on the same file) wait
up to ``BUSY_TIMEOUT_S`` for each other. Standard library only: no widgets, no TensorFlow.

Tables: ``meta`` (schema version, images root, label names as JSON), ``labels`` (one row per
image: a relabel replaces, a restart never duplicates), ``test_split`` (membership, fixed once
written) and ``history`` (every change, per session, for undo).
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

FILENAME = "annotations.sqlite"
SCHEMA_VERSION = 1
#: Seconds a write waits for another process (or Store) holding the file before failing.
BUSY_TIMEOUT_S = 5.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS labels (
        path TEXT PRIMARY KEY, label TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS test_split (path TEXT PRIMARY KEY, added TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS history (
        id INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL, path TEXT NOT NULL,
        previous TEXT, label TEXT, created TEXT NOT NULL, undone INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS history_by_session ON history (session, undone, id)",
)
_UPSERT = (
    "INSERT INTO labels (path, label, created, updated) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (path) DO UPDATE SET label = excluded.label, updated = excluded.updated"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _check_path(path) -> str:
    parts = path.split("/") if isinstance(path, str) else []
    if not parts or path.startswith("/") or ".." in parts or not all(parts):
        raise ValueError(
            f"image path {path!r} is invalid: expected a path relative to the images folder "
            "with '/' separators, e.g. 'cats/img_001.png'"
        )
    return path


def check_label_names(names) -> list[str]:
    """``names`` as a list if it is a non-empty list of unique, non-blank strings; else ``ValueError``."""
    if isinstance(names, (str, bytes, Mapping)) or not isinstance(names, Iterable):
        raise ValueError(f"labels={names!r} is invalid: expected a list of names, e.g. labels=['cat', 'dog']")
    names = list(names)
    if not names:
        raise ValueError("labels=[] is invalid: give at least one name, e.g. labels=['cat', 'dog']")
    for i, name in enumerate(names, 1):
        if not isinstance(name, str):
            raise ValueError(
                f"labels: label #{i} {name!r} is a {type(name).__name__}, expected a string "
                f"(e.g. labels=['0', '1'] rather than [0, 1])"
            )
        if not name.strip():
            raise ValueError(f"labels: label #{i} {name!r} is blank: every label needs a visible name")
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"labels: {name!r} appears more than once: every label must be unique")
        seen.add(name)
    return names


class Store:
    """Labels, label names, test split and undo history of one images folder, in SQLite.

    Every method may be called from any thread. Each ``Store`` object is one *session* (a random
    id): ``undo()`` only undoes what this object did, so two notebooks on one folder stay apart.
    """

    def __init__(self, workdir, images_root=None):
        self.workdir = Path(workdir).expanduser()
        if self.workdir.exists() and not self.workdir.is_dir():
            raise NotADirectoryError(
                f"workdir {str(self.workdir)!r} is a file: pass a folder for the labels (e.g. images/.oal)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.path: Path = self.workdir / FILENAME
        self.session_id: str = uuid.uuid4().hex
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: no implicit transactions, we BEGIN/COMMIT explicitly.
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a killed process loses nothing (only a power cut may), and no fsync per label.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._create_schema()
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
        if images_root is not None:
            root = str(Path(images_root).expanduser().resolve())
            if self._meta("images_root") != root:  # folders move: keep the labels, record the new place
                with self._write() as db:
                    self._set_meta(db, "images_root", root)

    # --- plumbing -------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"the store {self.path} is closed: open a new Store")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed on exit. IMMEDIATE takes the write lock up front, so two
        processes never both read and then both fail to upgrade to writing."""
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args=()) -> list[tuple]:
        with self._lock:
            return self._db().execute(sql, args).fetchall()

    def _create_schema(self) -> None:
        with self._write() as db:
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self._set_meta(db, "schema_version", str(SCHEMA_VERSION))
            elif int(row[0]) > SCHEMA_VERSION:
                raise ValueError(
                    f"{self.path} was written by a newer oal_widget (schema {row[0]}, this one reads "
                    f"{SCHEMA_VERSION}): upgrade oal_widget"
                )

    def _meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @staticmethod
    def _names(db: sqlite3.Connection) -> list[str]:
        row = db.execute("SELECT value FROM meta WHERE key = 'label_names'").fetchone()
        return json.loads(row[0]) if row else []

    # --- settings -------------------------------------------------------------------------------
    @property
    def images_root(self) -> Path | None:
        """The images folder these labels belong to (the last one a Store was opened with)."""
        value = self._meta("images_root")
        return Path(value) if value is not None else None

    def label_names(self) -> list[str]:
        """The label names in key order ([] before ``set_label_names``)."""
        with self._lock:
            return self._names(self._db())

    def set_label_names(self, names) -> None:
        """Set the label names (order = keys 1..9). Refuses to drop a name some image is labelled with."""
        names = check_label_names(names)
        with self._write() as db:
            in_use = db.execute("SELECT label, COUNT(*) FROM labels GROUP BY label ORDER BY label").fetchall()
            for label, n in in_use:
                if label not in names:
                    raise ValueError(
                        f"labels: cannot drop {label!r}: {n} image(s) are labelled {label!r} in {self.path}; "
                        f"keep {label!r} in labels, or relabel those images first"
                    )
            self._set_meta(db, "label_names", json.dumps(names, ensure_ascii=False))

    # --- labels ---------------------------------------------------------------------------------
    def label(self, path: str, label: str) -> str | None:
        """Give ``path`` the label ``label`` (a relabel replaces); committed before returning.

        Returns the label it had before (None if it had none).
        """
        _check_path(path)
        with self._write() as db:
            names = self._names(db)
            if label not in names:
                accepted = (
                    ", ".join(repr(n) for n in names) if names else "none yet: call set_label_names first"
                )
                raise ValueError(f"label {label!r} for {path!r} is not one of the labels ({accepted})")
            row = db.execute("SELECT label FROM labels WHERE path = ?", (path,)).fetchone()
            now = _now()
            db.execute(_UPSERT, (path, label, now, now))
            self._log(db, path, row[0] if row else None, label, now)
            return row[0] if row else None

    def unlabel(self, path: str) -> str | None:
        """Remove the label of ``path`` (undoable); returns the label it had, or None."""
        _check_path(path)
        with self._write() as db:
            row = db.execute("SELECT label FROM labels WHERE path = ?", (path,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM labels WHERE path = ?", (path,))
            self._log(db, path, row[0], None, _now())
            return row[0]

    def _log(self, db, path, previous, label, now) -> None:
        db.execute(
            "INSERT INTO history (session, path, previous, label, created) VALUES (?, ?, ?, ?, ?)",
            (self.session_id, path, previous, label, now),
        )

    def undo(self) -> str | None:
        """Undo the latest change made by THIS Store object; returns its path, or None if nothing is left.

        The image gets back the label it had before (or none). A previous label that is no longer
        among the label names is not restored: the image becomes unlabelled instead.
        """
        with self._write() as db:
            row = db.execute(
                "SELECT id, path, previous FROM history WHERE session = ? AND undone = 0 "
                "ORDER BY id DESC LIMIT 1",
                (self.session_id,),
            ).fetchone()
            if row is None:
                return None
            history_id, path, previous = row
            if previous is None or previous not in self._names(db):
                db.execute("DELETE FROM labels WHERE path = ?", (path,))
            else:
                now = _now()
                db.execute(_UPSERT, (path, previous, now, now))
            db.execute("UPDATE history SET undone = 1 WHERE id = ?", (history_id,))
            return path

    def get(self, path: str) -> str | None:
        """The label of ``path``, or None."""
        rows = self._read("SELECT label FROM labels WHERE path = ?", (path,))
        return rows[0][0] if rows else None

    def labels(self) -> dict[str, str]:
        """Every label: path -> label name, sorted by path."""
        return dict(self._read("SELECT path, label FROM labels ORDER BY path"))

    def count(self) -> int:
        """Number of labelled images (train and test)."""
        return self._read("SELECT COUNT(*) FROM labels")[0][0]

    def data_version(self) -> int:
        """A number that changes when ANOTHER connection (another Store, process or notebook) commits.

        SQLite's ``PRAGMA data_version``: this Store's own writes leave it unchanged, so a session
        compares it with the value it last saw to learn, in O(1), whether someone else wrote,
        including a relabel, which leaves ``count()`` unchanged.
        """
        return self._read("PRAGMA data_version")[0][0]

    def counts(self) -> dict[str, int]:
        """Images per label name, every name included (zeros too), in label-name order."""
        with self._lock:
            names = self.label_names()
            used = dict(self._read("SELECT label, COUNT(*) FROM labels GROUP BY label"))
        out = {name: used.pop(name, 0) for name in names}
        out.update(sorted(used.items()))  # only if the file was changed by hand: show, do not hide
        return out

    # --- test split -----------------------------------------------------------------------------
    def test_paths(self) -> set[str]:
        """The paths held out for testing (labelled or not)."""
        return {row[0] for row in self._read("SELECT path FROM test_split")}

    def add_test_paths(self, paths: Iterable[str]) -> int:
        """Add paths to the test split (members stay: a restart keeps its split); returns how many are new."""
        rows = [(_check_path(p), _now()) for p in paths]
        with self._write() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO test_split (path, added) VALUES (?, ?)", rows)
            return db.total_changes - before

    # --- export ---------------------------------------------------------------------------------
    def export_csv(self, out) -> int:
        """Write ``path,label,split`` rows (split ``train`` or ``test``) sorted by path; returns rows written.

        Quoted by the csv module, UTF-8: labels with commas, quotes or newlines read back exactly.
        """
        out = Path(out).expanduser()
        if out.is_dir():
            raise ValueError(f"--out {str(out)!r} is a folder: pass a file name such as labels.csv")
        rows = sorted(
            self._read(
                "SELECT l.path, l.label, CASE WHEN t.path IS NULL THEN 'train' ELSE 'test' END "
                "FROM labels l LEFT JOIN test_split t ON t.path = l.path"
            )
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["path", "label", "split"])
                writer.writerows(rows)
            os.replace(tmp, out)  # a reader never sees half a file
        finally:
            tmp.unlink(missing_ok=True)
        return len(rows)

    # --- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the file (idempotent). Every label is already committed."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else f"{self.count()} labels"
        return f"Store({str(self.path)!r}, {state})"


def open_existing(workdir) -> Store:
    """The Store of a workdir that has been labelled; ``FileNotFoundError`` if it has none.

    An images folder is accepted too when its ``.oal`` sub-folder holds the store.
    """
    workdir = Path(workdir).expanduser()
    for folder in (workdir, workdir / ".oal"):
        if (folder / FILENAME).is_file():
            return Store(folder)
    raise FileNotFoundError(
        f"no annotations.sqlite in {workdir}: pass the .oal folder of an images folder that has been labelled"
    )
