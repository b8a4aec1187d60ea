"""The SQLite backend only: the file, its journal, migration of schema 1 files, durability settings,
a busy file, processes killed mid-write. The behaviour shared with PostgreSQL is in test_store.py."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys

import pytest

from oal_widget.data.store import FILENAME, Store, StoreUnavailable, open_existing
from oal_widget.data.store import sqlite as sqlite_backend


def run_python(code: str, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def test_the_file_is_in_the_workdir_in_wal_mode(tmp_path):
    with Store(tmp_path / ".oal", images_root=tmp_path) as s:
        s.set_label_names(["a"])
        s.label("x.png", "a")
        assert s.path == tmp_path / ".oal" / FILENAME and s.path.is_file()
        assert s.project == tmp_path.name  # <images>/.oal: named after the images folder
    with sqlite3.connect(tmp_path / ".oal" / FILENAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)


def test_no_stray_files_left(tmp_path):
    with Store(tmp_path / "wd") as s:
        s.set_label_names(["a"])
        s.label("x.png", "a")
    assert {p.name for p in (tmp_path / "wd").iterdir()} <= {FILENAME, f"{FILENAME}-wal", f"{FILENAME}-shm"}


def test_not_a_database_names_the_file(tmp_path):
    (tmp_path / FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(
        ValueError, match=f"{FILENAME} cannot be used as the annotations database.*move the file away"
    ):
        Store(tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile"):
        Store(tmp_path / "afile")


def test_newer_schema_is_refused(tmp_path):
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / FILENAME) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ValueError, match="newer oal_widget.*upgrade"):
        Store(tmp_path)


def test_the_files_only_project_is_used_whatever_the_folder_is_called_now(tmp_path):
    with Store(tmp_path / ".oal", images_root=tmp_path / "old_name") as s:
        s.set_label_names(["a"])
        s.label("x.png", "a")
    with Store(tmp_path / ".oal", images_root=tmp_path / "renamed") as s:
        assert s.project == "old_name" and s.labels() == {"x.png": "a"}
    with Store(tmp_path / ".oal", project="second") as s:
        assert s.labels() == {}
    with pytest.raises(ValueError, match="several projects.*'old_name', 'second'.*project=NAME"):
        Store(tmp_path / ".oal")
    with pytest.raises(FileNotFoundError, match="no project 'nope'"):
        open_existing(tmp_path, project="nope")


def test_open_existing(tmp_path):
    with Store(tmp_path / ".oal") as s:
        s.set_label_names(["cat"])
        s.label("a.png", "cat")
    with open_existing(tmp_path / ".oal") as s:
        assert s.labels() == {"a.png": "cat"}
    with open_existing(tmp_path) as s:  # the images folder: its .oal holds the store
        assert s.labels() == {"a.png": "cat"}
    with pytest.raises(FileNotFoundError, match="no annotations.sqlite in .*empty: pass the .oal folder"):
        open_existing(tmp_path / "empty")


# --- durability settings and a busy file ---------------------------------------------------------
def _synchronous(store: Store) -> int:
    return store._conn.execute("PRAGMA synchronous").fetchone()[0]


def test_synchronous_is_one_setting(tmp_path, monkeypatch):
    with Store(tmp_path / "a") as s:
        assert s.synchronous == sqlite_backend.SYNCHRONOUS == "FULL" and _synchronous(s) == 2
    with Store(tmp_path / "b", synchronous="NORMAL") as s:
        assert _synchronous(s) == 1
    monkeypatch.setattr(sqlite_backend, "SYNCHRONOUS", "NORMAL")  # flipping the default is one constant
    with Store(tmp_path / "c") as s:
        assert _synchronous(s) == 1
    with pytest.raises(ValueError, match="synchronous='SOMETIMES' is invalid"):
        Store(tmp_path / "d", synchronous="SOMETIMES")


def test_a_file_locked_by_another_process_raises_store_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_backend, "BUSY_TIMEOUT_S", 0.2)
    with Store(tmp_path) as s:
        s.set_label_names(["a"])
        other = sqlite3.connect(tmp_path / FILENAME, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the file
        try:
            with pytest.raises(
                StoreUnavailable, match=f"{FILENAME} is locked by another process.*nothing was saved"
            ):
                s.label("x.png", "a")
        finally:
            other.execute("ROLLBACK")
            other.close()
        s.label("x.png", "a")  # free again: works
        assert s.labels() == {"x.png": "a"}


def test_a_file_that_cannot_be_written_mid_session_raises_store_unavailable(tmp_path):
    with Store(tmp_path) as s:
        s.set_label_names(["a"])
        s._conn.execute("PRAGMA query_only=1")  # as if the disk were full or the file read-only now
        with pytest.raises(StoreUnavailable, match=f"{FILENAME} could not be written.*nothing was saved"):
            s.label("x.png", "a")
        s._conn.execute("PRAGMA query_only=0")
        s.label("x.png", "a")
        assert s.labels() == {"x.png": "a"}


# --- schema 1 files (existing workdirs) -----------------------------------------------------------
V1_SCHEMA = (  # verbatim from oal_widget 0.1's store.py (schema 1)
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS labels (
        path TEXT PRIMARY KEY, label TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS test_split (path TEXT PRIMARY KEY, added TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS history (
        id INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL, path TEXT NOT NULL,
        previous TEXT, label TEXT, created TEXT NOT NULL, undone INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS history_by_session ON history (session, undone, id)",
)
V1_NAMES = ["cat", "dog, really", "ü 🐱"]
V1_LABELS = {"a/1.png": "cat", "b/2, x.png": "dog, really", "c/ü.png": "ü 🐱", "d/4.png": "cat"}


def write_v1(workdir, images_root) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(workdir / FILENAME) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for statement in V1_SCHEMA:
            db.execute(statement)
        db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("schema_version", "1"),
                ("images_root", str(images_root)),
                ("label_names", json.dumps(V1_NAMES)),
            ],
        )
        for i, (path, label) in enumerate(V1_LABELS.items()):
            t = f"2026-11-0{i + 1}T10:00:00.000+00:00"
            db.execute("INSERT INTO labels VALUES (?, ?, ?, ?)", (path, label, t, t))
            db.execute(
                "INSERT INTO history (session, path, previous, label, created) VALUES ('old', ?, NULL, ?, ?)",
                (path, label, t),
            )
        db.execute("INSERT INTO test_split VALUES ('d/4.png', '2026-11-01T09:00:00.000+00:00')")
        db.execute("INSERT INTO test_split VALUES ('e/unlabelled.png', '2026-11-01T09:00:00.000+00:00')")


def test_a_schema_1_file_is_migrated_without_losing_anything(tmp_path):
    images = tmp_path / "pets"
    write_v1(tmp_path / ".oal", images)
    with Store(tmp_path / ".oal", images_root=images, annotator="alice") as s:
        assert s.labels() == dict(sorted(V1_LABELS.items()))
        assert s.label_names() == V1_NAMES
        assert s.test_paths() == {"d/4.png", "e/unlabelled.png"}
        assert s.images_root == images.resolve() and s.project == "pets"
        assert s.counts() == {"cat": 2, "dog, really": 1, "ü 🐱": 1}
        first = s.record("a/1.png")
        assert (first.created, first.annotator, first.source) == ("2026-11-01T10:00:00.000+00:00", None, None)
        assert s.counts_by_source()["unknown"] == 4
        assert s.undo() is None  # the old session's history is not ours
        # A label of unknown origin is replaced by the next label of that image, whoever gives it.
        assert s.label("a/1.png", "ü 🐱") == "cat"
        assert s.record("a/1.png").annotator == "alice" and s.get("a/1.png") == "ü 🐱"
        assert s.undo() == "a/1.png" and s.get("a/1.png") == "cat"  # and undo brings it back
    with sqlite3.connect(tmp_path / ".oal" / FILENAME) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
        assert db.execute("SELECT COUNT(*) FROM history WHERE session = 'old'").fetchone() == (4,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert not {t for t in tables if t.endswith("_v1")}


def test_a_migration_that_fails_leaves_the_schema_1_file_as_it_was(tmp_path, monkeypatch):
    write_v1(tmp_path, tmp_path / "pets")
    before = _dump(tmp_path / FILENAME)
    from oal_widget.data.store import migrate

    def broken(statement_types):
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setattr(migrate, "ddl", broken)
    with pytest.raises(ValueError, match="cannot be used as the annotations database"):
        Store(tmp_path)
    assert _dump(tmp_path / FILENAME) == before
    monkeypatch.undo()
    with Store(tmp_path) as s:  # the next start migrates
        assert s.labels() == dict(sorted(V1_LABELS.items()))


def _dump(path) -> list[str]:
    with sqlite3.connect(path) as db:
        return list(db.iterdump())


# --- killed processes ------------------------------------------------------------------------------
KILLED_CHILD = """
import os, signal, sys
from oal_widget.data.store import Store
s = Store(sys.argv[1])
s.set_label_names(["a", "b, c", "ü"])
n = int(sys.argv[2])
for i in range(n):
    s.label(f"img/{i:03d}.png", ["a", "b, c", "ü"][i % 3])
s.add_test_paths(["img/000.png"])
s.label("img/001.png", "a")  # a relabel as the very last write
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_labels_survive_sigkill_right_after_label_returns(tmp_path):
    n = 40
    done = run_python(KILLED_CHILD, tmp_path, n)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert (tmp_path / f"{FILENAME}-wal").exists()  # the labels were in the WAL, never checkpointed
    with Store(tmp_path) as s:
        labels = s.labels()
        assert len(labels) == n
        expected = {f"img/{i:03d}.png": ["a", "b, c", "ü"][i % 3] for i in range(n)}
        expected["img/001.png"] = "a"
        assert labels == expected
        assert s.test_paths() == {"img/000.png"}
    with sqlite3.connect(tmp_path / FILENAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --- older SQLite libraries ------------------------------------------------------------------------------
class _NoReturning:
    """A connection (and its cursors) that refuses ``RETURNING``, as SQLite before 3.35 does."""

    def __init__(self, conn):
        self._conn = conn

    def _check(self, sql: str) -> None:
        if "RETURNING" in sql.upper():
            raise sqlite3.OperationalError('near "RETURNING": syntax error')

    def execute(self, sql, *args):
        self._check(sql)
        return self._conn.execute(sql, *args)

    def cursor(self):
        outer, cursor = self, self._conn.cursor()

        class Cursor:
            def __getattr__(self, name):
                return getattr(cursor, name)

            def execute(self, sql, *args):
                outer._check(sql)
                return cursor.execute(sql, *args)

            def executemany(self, sql, rows):
                outer._check(sql)
                return cursor.executemany(sql, rows)

        return Cursor()

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_the_store_works_on_sqlite_without_returning(tmp_path, monkeypatch):
    real = sqlite3.connect
    monkeypatch.setattr(sqlite_backend.sqlite3, "connect", lambda *a, **kw: _NoReturning(real(*a, **kw)))
    with Store(tmp_path, annotator="alice") as store:
        store.set_label_names(["cat", "dog"])
        store.label("a.png", "cat")
        store.label_many([("b.png", "dog"), ("c.png", "cat")])
        assert store.undo() == "b.png"
        assert store.claim(["d.png"], lease_s=60) == ["d.png"]
        assert store.labels() == {"a.png": "cat"}


def test_an_sqlite_library_too_old_is_refused_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_backend.sqlite3, "sqlite_version_info", (3, 22, 0))
    with pytest.raises(RuntimeError, match=r"SQLite library of this Python is 3\.22\.0.*3\.24\.0 or newer"):
        Store(tmp_path / "work")
    assert not (tmp_path / "work").exists(), "refused before anything is written"
    monkeypatch.setattr(sqlite_backend.sqlite3, "sqlite_version_info", (3, 31, 1))  # Ubuntu 20.04's
    with Store(tmp_path / "work") as store:
        assert store.count() == 0
