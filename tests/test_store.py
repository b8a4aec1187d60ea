"""store.py: the SQLite store: labels, names, test split, undo, export, CLI, processes. No TensorFlow."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from oal_widget.data.store import FILENAME, Store, open_existing

NAMES = ["cat", "dog", "bird"]
NASTY = ["a, b", 'say "hi"', "multi\nline", "colon: yes", "ünïcödé 🐱", "  spaced  ", "semi;colon", "=1+1"]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / ".oal", images_root=tmp_path) as s:
        s.set_label_names(NAMES)
        yield s


def run_python(code: str, *args, timeout=60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this venv (another process on the same file)."""
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def history_rows(store: Store) -> list[tuple]:
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT session, path, previous, label, undone FROM history ORDER BY id").fetchall()


# --- basics -------------------------------------------------------------------------------------
def test_round_trip_and_file_settings(tmp_path, store):
    assert store.path == tmp_path / ".oal" / FILENAME and store.path.is_file()
    assert store.label_names() == NAMES
    assert store.images_root == tmp_path.resolve()
    assert store.labels() == {} and store.count() == 0
    assert store.counts() == {"cat": 0, "dog": 0, "bird": 0}
    store.label("b/2.png", "dog")
    store.label("a/1.png", "cat")
    store.label("c/3.png", "dog")
    assert store.get("a/1.png") == "cat" and store.get("nope.png") is None
    assert store.labels() == {"a/1.png": "cat", "b/2.png": "dog", "c/3.png": "dog"}
    assert list(store.labels()) == ["a/1.png", "b/2.png", "c/3.png"]
    assert store.counts() == {"cat": 1, "dog": 2, "bird": 0}
    assert list(store.counts()) == NAMES  # label-name order, zeros included
    assert store.count() == 3
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_relabel_replaces_and_restart_never_duplicates(tmp_path, store):
    # pitfall 8: restarts appended the same labels again.
    store.label("x.png", "cat")
    store.label("x.png", "dog")
    assert store.count() == 1 and store.labels() == {"x.png": "dog"}
    store.close()
    for _ in range(3):
        with Store(tmp_path / ".oal", images_root=tmp_path) as again:
            assert again.label_names() == NAMES  # names persist
            again.label("x.png", "dog")
            again.label("y.png", "bird")
            assert again.count() == 2
    with Store(tmp_path / ".oal") as last:
        assert last.labels() == {"x.png": "dog", "y.png": "bird"}
        assert last.counts() == {"cat": 0, "dog": 1, "bird": 1}


def test_unicode_and_nasty_label_names(tmp_path):
    with Store(tmp_path) as s:
        s.set_label_names(NASTY)
        for i, name in enumerate(NASTY):
            s.label(f"img/{i}, name: ü.png", name)
    with Store(tmp_path) as s:
        assert s.label_names() == NASTY
        assert s.labels() == {f"img/{i}, name: ü.png": name for i, name in enumerate(NASTY)}
        assert s.counts() == dict.fromkeys(NASTY, 1)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "at least one"),
        ("cat", "list of names"),
        (None, "list of names"),
        ({"cat": 1}, "list of names"),
        (["cat", "cat"], "'cat' appears more than once"),
        (["cat", ""], "blank"),
        (["cat", "   "], "blank"),
        ([0, 1], "string"),
        (["cat", None], "string"),
    ],
)
def test_invalid_label_names_are_refused_and_nothing_changes(store, names, message):
    with pytest.raises(ValueError, match=message) as info:
        store.set_label_names(names)
    assert "labels" in str(info.value)
    assert store.label_names() == NAMES


def test_dropping_a_used_label_is_refused_but_reorder_and_add_work(store):
    store.label("a.png", "dog")
    with pytest.raises(ValueError, match="cannot drop 'dog'.*1 image"):
        store.set_label_names(["cat", "bird"])
    assert store.label_names() == NAMES
    store.set_label_names(["bird", "dog", "cat", "fish"])  # reorder and add: fine
    assert list(store.counts()) == ["bird", "dog", "cat", "fish"]
    store.set_label_names(["dog"])  # unused names may go
    assert store.label_names() == ["dog"] and store.labels() == {"a.png": "dog"}


def test_label_must_be_a_known_name_and_path_relative(tmp_path, store):
    with pytest.raises(
        ValueError, match=r"label 'horse' for 'a.png' is not one of the labels \('cat', 'dog'"
    ):
        store.label("a.png", "horse")
    for bad in ["/abs/a.png", "../a.png", "a/../../b.png", "", "a//b.png", None]:
        with pytest.raises(ValueError, match="image path .* is invalid"):
            store.label(bad, "cat")
    assert store.count() == 0 and history_rows(store) == []
    with Store(tmp_path / "fresh") as fresh:
        with pytest.raises(ValueError, match="set_label_names first"):
            fresh.label("a.png", "cat")


def test_images_root_is_updated_when_the_folder_moved(tmp_path, store):
    store.label("a.png", "cat")
    store.close()
    moved = tmp_path / "moved"
    moved.mkdir()
    with Store(tmp_path / ".oal", images_root=moved) as s:
        assert s.images_root == moved.resolve()
        assert s.labels() == {"a.png": "cat"}  # labels survive the move
    with Store(tmp_path / ".oal") as s:  # no root given: the recorded one stays
        assert s.images_root == moved.resolve()


def test_test_split_membership_is_fixed_once_written(tmp_path, store):
    assert store.add_test_paths(["t/1.png", "t/2.png"]) == 2
    assert store.add_test_paths(["t/2.png", "t/3.png"]) == 1
    assert store.test_paths() == {"t/1.png", "t/2.png", "t/3.png"}
    store.close()
    with Store(tmp_path / ".oal") as again:
        assert again.test_paths() == {"t/1.png", "t/2.png", "t/3.png"}
        with pytest.raises(ValueError, match="image path"):
            again.add_test_paths(["ok.png", "/abs.png"])
        assert "ok.png" not in again.test_paths()  # all or nothing


def test_unlabel(store):
    store.label("a.png", "cat")
    assert store.unlabel("a.png") == "cat"
    assert store.unlabel("a.png") is None
    assert store.labels() == {}
    assert store.undo() == "a.png"  # undo the unlabel
    assert store.labels() == {"a.png": "cat"}


def test_closed_store_says_so(tmp_path):
    s = Store(tmp_path)
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        s.labels()
    assert "closed" in repr(s)


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


# --- undo ---------------------------------------------------------------------------------------
def test_undo_restores_previous_label_then_nothing(store):
    assert store.undo() is None
    store.label("a.png", "cat")
    store.label("a.png", "dog")
    store.label("b.png", "bird")
    assert store.undo() == "b.png" and store.get("b.png") is None
    assert store.undo() == "a.png" and store.get("a.png") == "cat"  # the relabel undone
    assert store.undo() == "a.png" and store.get("a.png") is None
    assert store.undo() is None
    assert store.labels() == {}
    assert [row[-1] for row in history_rows(store)] == [1, 1, 1]


def test_two_sessions_undo_only_their_own(tmp_path, store):
    other = Store(tmp_path / ".oal")
    try:
        store.label("mine.png", "cat")
        other.label("theirs.png", "dog")
        store.label("mine2.png", "bird")
        assert other.undo() == "theirs.png"
        assert store.labels() == {"mine.png": "cat", "mine2.png": "bird"}
        assert other.undo() is None
        assert store.undo() == "mine2.png"
        assert store.undo() == "mine.png"
        assert store.labels() == {}
    finally:
        other.close()


def test_a_restarted_session_cannot_undo_the_old_one(tmp_path, store):
    store.label("a.png", "cat")
    store.close()
    with Store(tmp_path / ".oal") as again:
        assert again.undo() is None
        assert again.labels() == {"a.png": "cat"}


def test_undo_never_restores_a_label_name_that_was_dropped(store):
    store.label("a.png", "bird")
    store.label("a.png", "cat")
    store.set_label_names(["cat", "dog"])  # 'bird' is no longer used: may go
    assert store.undo() == "a.png"
    assert store.get("a.png") is None  # unlabelled, not 'bird'
    assert set(store.labels().values()) <= set(store.label_names())


def test_label_is_thread_safe(store):
    errors = []

    def worker(k):
        try:
            for i in range(25):
                store.label(f"t{k}/{i}.png", NAMES[i % 3])
                store.get(f"t{k}/{i}.png")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert store.count() == 100 and len(history_rows(store)) == 100


# --- export -------------------------------------------------------------------------------------
def test_export_csv_round_trips_nasty_labels_and_paths(tmp_path):
    with Store(tmp_path / ".oal") as s:
        s.set_label_names(NASTY)
        expected = []
        for i, name in enumerate(NASTY):
            path = f'dir, {i}/"q" ü 🐱 {i}.png'
            s.label(path, name)
            expected.append([path, name, "test" if i % 3 == 0 else "train"])
        s.add_test_paths([row[0] for row in expected if row[2] == "test"] + ["unlabelled/test.png"])
        out = tmp_path / "exports" / "labels.csv"
        assert s.export_csv(out) == len(NASTY)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "label", "split"]
    assert rows[1:] == sorted(expected)
    assert not any(p.name.endswith(".tmp") for p in out.parent.iterdir())


def test_export_to_a_folder_is_refused(tmp_path, store):
    with pytest.raises(ValueError, match="is a folder.*labels.csv"):
        store.export_csv(tmp_path)


def test_cli_export(tmp_path, store):
    store.label("a/1.png", "cat")
    store.label("b/2.png", "dog")
    store.add_test_paths(["b/2.png"])
    out = tmp_path / "out.csv"
    cli = [sys.executable, "-m", "oal_widget", "export"]
    done = subprocess.run([*cli, str(tmp_path / ".oal"), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote 2 labels" in done.stdout
    assert out.read_text(encoding="utf-8").splitlines() == [
        "path,label,split",
        "a/1.png,cat,train",
        "b/2.png,dog,test",
    ]
    # The images folder itself is accepted too (its .oal holds the store).
    done = subprocess.run([*cli, str(tmp_path), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and "wrote 2 labels" in done.stdout
    missing = tmp_path / "never_labelled"
    done = subprocess.run([*cli, str(missing), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2
    assert f"no annotations.sqlite in {missing}: pass the .oal folder" in done.stderr
    assert not missing.exists()  # a failed export creates nothing


def test_open_existing(tmp_path, store):
    store.label("a.png", "cat")
    with open_existing(tmp_path / ".oal") as s:
        assert s.labels() == {"a.png": "cat"}
    with pytest.raises(FileNotFoundError, match="no annotations.sqlite in .*empty: pass the .oal folder"):
        open_existing(tmp_path / "empty")


# --- processes ----------------------------------------------------------------------------------
READER = """
import json, sys
from oal_widget.data.store import Store
with Store(sys.argv[1]) as s:
    undone = s.undo()  # this process's session has nothing to undo
    s.label("from_child.png", "bird")
    print(json.dumps({"labels": s.labels(), "undone": undone}))
"""


def test_another_process_sees_committed_labels_and_we_see_its(tmp_path, store):
    store.label("a.png", "cat")
    store.label("b.png", "dog")
    done = run_python(READER, tmp_path / ".oal")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"labels": {"a.png": "cat", "b.png": "dog", "from_child.png": "bird"}, "undone": None}
    assert store.get("from_child.png") == "bird"  # our open store sees the other process's commit
    assert store.undo() == "b.png" and store.get("from_child.png") == "bird"


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


LABELLING_CHILD = """
import sys
from oal_widget.data.store import Store
s = Store(sys.argv[1])
s.set_label_names(["x", "y"])
i = 0
while True:  # label until killed; a path is printed only once label() has returned
    s.label(f"{i:06d}.png", "xy"[i % 2])
    print(i, flush=True)
    i += 1
"""


def test_labels_survive_being_killed_from_outside(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", LABELLING_CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        confirmed = [int(child.stdout.readline()) for _ in range(200)]
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert confirmed == list(range(200))
    with Store(tmp_path) as s:
        labels = s.labels()
    for i in confirmed:  # every label the child saw committed is on disk
        assert labels[f"{i:06d}.png"] == "xy"[i % 2]
    with sqlite3.connect(tmp_path / FILENAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --- a stateful model: label / relabel / unlabel / undo / reopen, two sessions ------------------
PATHS = ["a.png", "b/c.png", "d, e.png", "ü/🐱.png"]
LABELS = ["x", "y, z", "ü: 🐱"]


class StoreMachine(RuleBasedStateMachine):
    """Two Store objects (sessions) on one file against a dict and one undo stack per session."""

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="oal_store_")
        self.stores = [Store(self.dir), Store(self.dir)]
        self.stores[0].set_label_names(LABELS)
        self.model: dict[str, str] = {}
        self.stacks: list[list[tuple[str, str | None]]] = [[], []]
        self.test: set[str] = set()

    def teardown(self):
        for s in self.stores:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(who=st.integers(0, 1), path=st.sampled_from(PATHS), label=st.sampled_from(LABELS))
    def label(self, who, path, label):
        other = self.stores[1 - who]
        seen, own = other.data_version(), self.stores[who].data_version()
        self.stores[who].label(path, label)
        # Session.refresh() relies on this: another connection's commit (a relabel too) changes it.
        assert other.data_version() != seen and self.stores[who].data_version() == own
        self.stacks[who].append((path, self.model.get(path)))
        self.model[path] = label

    @rule(who=st.integers(0, 1), path=st.sampled_from(PATHS))
    def unlabel(self, who, path):
        previous = self.model.pop(path, None)
        assert self.stores[who].unlabel(path) == previous
        if previous is not None:
            self.stacks[who].append((path, previous))

    @rule(who=st.integers(0, 1))
    def undo(self, who):
        result = self.stores[who].undo()
        if not self.stacks[who]:
            assert result is None
            return
        path, previous = self.stacks[who].pop()
        assert result == path
        if previous is None:
            self.model.pop(path, None)
        else:
            self.model[path] = previous

    @rule(who=st.integers(0, 1))
    def reopen(self, who):
        self.stores[who].close()
        self.stores[who] = Store(self.dir)
        self.stacks[who] = []  # a new session: the old one's history is not ours to undo

    @precondition(lambda self: len(self.test) < len(PATHS))
    @rule(paths=st.lists(st.sampled_from(PATHS), max_size=2))
    def add_test(self, paths):
        added = self.stores[0].add_test_paths(paths)
        assert added == len(set(paths) - self.test)
        self.test |= set(paths)

    @invariant()
    def matches_model(self):
        for s in self.stores:
            assert s.labels() == dict(sorted(self.model.items()))
            assert s.count() == len(self.model)
            assert sum(s.counts().values()) == len(self.model)
            assert s.test_paths() == self.test


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


def test_no_stray_files_left(tmp_path):
    # a fresh store creates only the database (and SQLite's own WAL/shm files) in its workdir
    with Store(tmp_path / "wd") as s:
        s.set_label_names(["a"])
        s.label("x.png", "a")
    assert {p.name for p in (tmp_path / "wd").iterdir()} <= {FILENAME, f"{FILENAME}-wal", f"{FILENAME}-shm"}
