"""The store interface on BOTH backends (a SQLite workdir, a real PostgreSQL database): labels, names,
test split, undo, export, other sessions and processes, and a stateful model of it all. No TensorFlow.

Backend-specific behaviour lives in test_store_sqlite.py and test_pg_*.py.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import uuid

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from oal_widget.data.store import UndoConflict
from oal_widget.reports.exports import export_csv

pytest_plugins = ["pg_server"]

NAMES = ["cat", "dog", "bird"]
NASTY = ["a, b", 'say "hi"', "multi\nline", "colon: yes", "ünïcödé 🐱", "  spaced  ", "semi;colon", "=1+1"]


@pytest.fixture
def store(backend):
    s = backend.open()
    s.set_label_names(NAMES)
    return s


def run_python(code: str, *args, timeout=60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this venv (another process on the same store)."""
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def history_rows(backend) -> list[tuple]:
    return backend.history("session, path, previous, label, undone")


# --- basics -------------------------------------------------------------------------------------
def test_round_trip(backend, store):
    assert store.label_names() == NAMES
    assert store.images_root == backend.images.resolve()
    assert store.project == backend.project and store.annotator == "alice"
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


def test_relabel_replaces_and_restart_never_duplicates(backend, store):
    # The original framework appended the same labels again on every restart.
    store.label("x.png", "cat")
    store.label("x.png", "dog")
    assert store.count() == 1 and store.labels() == {"x.png": "dog"}
    store.close()
    for _ in range(3):
        with backend.open() as again:
            assert again.label_names() == NAMES  # names persist
            again.label("x.png", "dog")
            again.label("y.png", "bird")
            assert again.count() == 2
    with backend.open() as last:
        assert last.labels() == {"x.png": "dog", "y.png": "bird"}
        assert last.counts() == {"cat": 0, "dog": 1, "bird": 1}


def test_unicode_and_nasty_label_names(backend):
    with backend.open() as s:
        s.set_label_names(NASTY)
        for i, name in enumerate(NASTY):
            s.label(f"img/{i}, name: ü.png", name)
    with backend.open() as s:
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


def test_label_must_be_a_known_name_and_path_relative(backend, store):
    with pytest.raises(
        ValueError, match=r"label 'horse' for 'a.png' is not one of the labels \('cat', 'dog'"
    ):
        store.label("a.png", "horse")
    for bad in ["/abs/a.png", "../a.png", "a/../../b.png", "", "a//b.png", None]:
        with pytest.raises(ValueError, match="image path .* is invalid"):
            store.label(bad, "cat")
    assert store.count() == 0 and history_rows(backend) == []
    with backend.open(project=backend.project + "-fresh") as fresh:
        with pytest.raises(ValueError, match="set_label_names first"):
            fresh.label("a.png", "cat")


def test_images_root_is_updated_when_the_folder_moved(backend, store, tmp_path):
    store.label("a.png", "cat")
    store.close()
    moved = tmp_path / "moved"
    moved.mkdir()
    backend.images = moved
    with backend.open() as s:
        assert s.images_root == moved.resolve()
        assert s.labels() == {"a.png": "cat"}  # labels survive the move


def test_test_split_membership_is_fixed_once_written(backend, store):
    assert store.add_test_paths(["t/1.png", "t/2.png"]) == 2
    assert store.add_test_paths(["t/2.png", "t/3.png", "t/3.png"]) == 1
    assert store.test_paths() == {"t/1.png", "t/2.png", "t/3.png"}
    store.close()
    with backend.open() as again:
        assert again.test_paths() == {"t/1.png", "t/2.png", "t/3.png"}
        with pytest.raises(ValueError, match="image path"):
            again.add_test_paths(["ok.png", "/abs.png"])
        assert "ok.png" not in again.test_paths()  # all or nothing


def test_joining_the_test_split_leaves_out_images_labelled_since_the_session_read(backend, store):
    store.add_test_paths(["t/1.png"])
    with backend.open(annotator="bob") as bob:
        bob.label("b/labelled.png", "cat")  # after this session read its labels: a training label
        joined = store.join_test_split(["t/1.png", "b/labelled.png", "free.png", "free.png"])
        assert joined == ["t/1.png", "free.png"]
        assert bob.test_paths() == {"t/1.png", "free.png"}
    assert store.join_test_split([]) == []


def test_remove_test_paths_moves_images_back_to_training(backend, store):
    store.add_test_paths(["t/1.png", "t/2.png", "t/3.png"])
    store.label("t/1.png", "cat")
    with backend.open(annotator="bob") as other:
        seen = other.data_version()
        assert store.remove_test_paths(["t/1.png", "t/3.png", "t/3.png", "never.png"]) == 2
        assert other.test_paths() == {"t/2.png"}
        assert other.data_version() != seen  # another session learns that the split changed
    assert store.remove_test_paths([]) == 0
    assert store.labels() == {"t/1.png": "cat"}  # the label stays: now a training label
    assert {(r.path, r.split) for r in store.records()} == {("t/1.png", "train")}
    with pytest.raises(ValueError, match="image path"):
        store.remove_test_paths(["t/2.png", "../out.png"])
    assert store.test_paths() == {"t/2.png"}  # all or nothing
    store.close()
    with backend.open() as again:
        assert again.test_paths() == {"t/2.png"}


def test_unlabel(store):
    store.label("a.png", "cat")
    assert store.unlabel("a.png") == "cat"
    assert store.unlabel("a.png") is None
    assert store.labels() == {}
    assert store.undo() == "a.png"  # undo the unlabel
    assert store.labels() == {"a.png": "cat"}


def test_closed_store_says_so(backend):
    s = backend.open()
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        s.labels()
    assert "closed" in repr(s)


def test_projects_in_one_place_are_separate(backend, store):
    store.label("a.png", "cat")
    store.add_test_paths(["a.png"])
    with backend.open(project=backend.project + "-other") as other:
        assert other.labels() == {} and other.label_names() == [] and other.test_paths() == set()
        other.set_label_names(["x"])
        other.label("a.png", "x")
        assert other.undo() == "a.png"
    assert store.labels() == {"a.png": "cat"} and store.label_names() == NAMES


# --- undo ---------------------------------------------------------------------------------------
def test_undo_restores_previous_label_then_nothing(backend, store):
    assert store.undo() is None
    store.label("a.png", "cat")
    store.label("a.png", "dog")
    store.label("b.png", "bird")
    assert store.undo() == "b.png" and store.get("b.png") is None
    assert store.undo() == "a.png" and store.get("a.png") == "cat"  # the relabel undone
    assert store.undo() == "a.png" and store.get("a.png") is None
    assert store.undo() is None
    assert store.labels() == {}
    assert [row[-1] for row in history_rows(backend)] == [1, 1, 1]


def test_two_sessions_undo_only_their_own(backend, store):
    other = backend.open()
    store.label("mine.png", "cat")
    other.label("theirs.png", "dog")
    store.label("mine2.png", "bird")
    assert other.undo() == "theirs.png"
    assert store.labels() == {"mine.png": "cat", "mine2.png": "bird"}
    assert other.undo() is None
    assert store.undo() == "mine2.png"
    assert store.undo() == "mine.png"
    assert store.labels() == {}


def test_a_restarted_session_cannot_undo_the_old_one(backend, store):
    store.label("a.png", "cat")
    store.close()
    with backend.open() as again:
        assert again.undo() is None
        assert again.labels() == {"a.png": "cat"}


def test_undo_never_restores_a_label_name_that_was_dropped(store):
    store.label("a.png", "bird")
    store.label("a.png", "cat")
    store.set_label_names(["cat", "dog"])  # 'bird' is no longer used: may go
    assert store.undo() == "a.png"
    assert store.get("a.png") is None  # unlabelled, not 'bird'
    assert set(store.labels().values()) <= set(store.label_names())


def test_label_is_thread_safe(backend, store):
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
    assert store.count() == 100 and len(history_rows(backend)) == 100


def test_data_version_changes_only_for_another_sessions_change(backend, store):
    other = backend.open()
    seen, theirs = store.data_version(), other.data_version()
    store.label("p.png", "cat")
    assert store.data_version() == seen  # our own write: unchanged
    assert other.data_version() != theirs
    seen = store.data_version()
    other.claim(["q.png"], lease_s=60)  # a claim changes no label: nobody needs to re-read
    assert store.data_version() == seen
    other.label("p.png", "dog")  # a relabel: count() stays 1
    assert store.count() == 1 and store.data_version() != seen


# --- export -------------------------------------------------------------------------------------
def test_export_csv_round_trips_nasty_labels_and_paths(backend, tmp_path):
    with backend.open() as s:
        s.set_label_names(NASTY)
        expected = []
        for i, name in enumerate(NASTY):
            path = f'dir, {i}/"q" ü 🐱 {i}.png'
            s.label(path, name)
            expected.append([path, name, "test" if i % 3 == 0 else "train"])
        s.add_test_paths([row[0] for row in expected if row[2] == "test"] + ["unlabelled/test.png"])
        out = tmp_path / "exports" / "labels.csv"
        assert export_csv(s, out).rows == len(NASTY)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][:5] == ["path", "label", "split", "source", "annotator"]
    assert [row[:3] for row in rows[1:]] == sorted(expected)
    assert {tuple(row[3:5]) for row in rows[1:]} == {("person", "alice")}
    assert [p.name for p in out.parent.iterdir()] == ["labels.csv"]  # written atomically: no leftovers


def test_export_to_a_folder_is_refused(tmp_path, store):
    with pytest.raises(ValueError, match="is a folder.*labels.csv"):
        export_csv(store, tmp_path)


# --- processes ----------------------------------------------------------------------------------
OPEN = """
import sys
from oal_widget.data.store import open_store
def open_(location, **kw):
    url = location if "://" in location else None
    return open_store(url, workdir=None if url else location, project=sys.argv[2], **kw)
"""
READER = (
    OPEN
    + """
import json
with open_(sys.argv[1], annotator="alice") as s:
    undone = s.undo()  # this process's session has nothing to undo
    s.label("from_child.png", "bird")
    print(json.dumps({"labels": s.labels(), "undone": undone}))
"""
)


def test_another_process_sees_committed_labels_and_we_see_its(backend, store):
    store.label("a.png", "cat")
    store.label("b.png", "dog")
    done = run_python(READER, backend.location, backend.project)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"labels": {"a.png": "cat", "b.png": "dog", "from_child.png": "bird"}, "undone": None}
    assert store.get("from_child.png") == "bird"  # our open store sees the other process's commit
    assert store.undo() == "b.png" and store.get("from_child.png") == "bird"


LABELLING_CHILD = (
    OPEN
    + """
s = open_(sys.argv[1])
s.set_label_names(["x", "y"])
i = 0
while True:  # label until killed; a path is printed only once label() has returned
    s.label(f"{i:06d}.png", "xy"[i % 2])
    print(i, flush=True)
    i += 1
"""
)


def test_labels_survive_being_killed_from_outside(backend):
    child = subprocess.Popen(
        [sys.executable, "-c", LABELLING_CHILD, backend.location, backend.project],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        confirmed = [int(child.stdout.readline()) for _ in range(100)]
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert confirmed == list(range(100))
    with backend.open() as s:
        labels = s.labels()
    for i in confirmed:  # every label the child saw committed is stored
        assert labels[f"{i:06d}.png"] == "xy"[i % 2]


# --- a stateful model: label / relabel / unlabel / undo / reopen, three sessions, two annotators --
PATHS = ["a.png", "d, e.png", "ü/🐱.png"]  # few: sessions meet on the same images often
LABELS = ["x", "y, z", "ü: 🐱"]
WHO = ["alice", "alice", "bob"]  # two sessions of one annotator, and a second annotator


class Model:
    """The documented rules, in plain Python: each annotator's label per image (with the rev it was
    written at), the first annotator's label stands; undo puts back what a step touched unless
    another change came after it (then nothing changes: a conflict)."""

    def __init__(self):
        self.marks: dict[str, dict[str, tuple[str, int, int]]] = {}  # path -> who -> (label, rev, order)
        self.rev = 0
        self.order = 0

    def standing(self) -> dict[str, str]:
        out = {}
        for path, marks in self.marks.items():
            if marks:
                out[path] = min(marks.values(), key=lambda m: m[2])[0]
        return dict(sorted(out.items()))

    def write(self, path, who, label) -> tuple:
        """Returns what the undo needs: (path, who, before, rev after)."""
        self.rev += 1
        marks = self.marks.setdefault(path, {})
        before = marks.get(who)
        if label is None:
            marks.pop(who, None)
            return (path, who, before, None)
        self.order += 1
        marks[who] = (label, self.rev, before[2] if before else self.order)
        return (path, who, before, self.rev)

    def undo(self, entry) -> bool:
        path, who, before, rev = entry
        current = self.marks.get(path, {}).get(who)
        if (current[1] if current else None) != rev:
            return False
        if before is None:
            self.marks[path].pop(who, None)
        else:
            self.marks[path][who] = before
        return True


class StoreMachine(RuleBasedStateMachine):
    """Three store objects (sessions) on one project against ``Model`` and one undo stack per session."""

    backend = None  # set by the test below

    def __init__(self):
        super().__init__()
        self.project = f"m{uuid.uuid4().hex[:12]}"
        self.stores = [self.backend.open(annotator=w, project=self.project) for w in WHO]
        self.stores[0].set_label_names(LABELS)
        self.model = Model()
        self.stacks: list[list[tuple]] = [[], [], []]
        self.test: set[str] = set()

    def teardown(self):
        for s in self.stores:
            s.close()

    @rule(who=st.integers(0, 2), path=st.sampled_from(PATHS), label=st.sampled_from(LABELS))
    def label(self, who, path, label):
        other = self.stores[1 - who if who < 2 else 0]
        seen, own = other.data_version(), self.stores[who].data_version()
        previous = self.model.standing().get(path)
        assert self.stores[who].label(path, label) == previous
        # Session.refresh() relies on this: another session's commit (a relabel too) changes it.
        assert other.data_version() != seen and self.stores[who].data_version() == own
        self.stacks[who].append(self.model.write(path, WHO[who], label))

    @rule(who=st.integers(0, 2), path=st.sampled_from(PATHS))
    def unlabel(self, who, path):
        previous = self.model.standing().get(path)
        mine = self.model.marks.get(path, {}).get(WHO[who])
        assert self.stores[who].unlabel(path) == (previous if mine else None)
        if mine:
            self.stacks[who].append(self.model.write(path, WHO[who], None))

    @rule(who=st.integers(0, 2))
    def undo(self, who):
        if not self.stacks[who]:
            assert self.stores[who].undo() is None
            return
        entry = self.stacks[who].pop()
        if self.model.undo(entry):
            assert self.stores[who].undo() == entry[0]
        else:
            with pytest.raises(UndoConflict, match="relabelled it|removed its label"):
                self.stores[who].undo()

    @rule(who=st.integers(0, 2))
    def reopen(self, who):
        self.stores[who].close()
        self.stores[who] = self.backend.open(annotator=WHO[who], project=self.project)
        self.stacks[who] = []  # a new session: the old one's history is not ours to undo

    @precondition(lambda self: len(self.test) < len(PATHS))
    @rule(paths=st.lists(st.sampled_from(PATHS), max_size=2))
    def add_test(self, paths):
        added = self.stores[0].add_test_paths(paths)
        assert added == len(set(paths) - self.test)
        self.test |= set(paths)

    @invariant()
    def matches_model(self):
        expected = self.model.standing()
        for s in self.stores:
            assert s.labels() == expected
            assert s.count() == len(expected)
            assert sum(s.counts().values()) == len(expected)
            assert s.test_paths() == self.test
        annotated = {(a.path, a.annotator, a.label) for a in self.stores[0].annotations()}
        assert annotated == {
            (p, who, m[0]) for p, marks in self.model.marks.items() for who, m in marks.items()
        }


def test_store_matches_the_model(backend):
    StoreMachine.backend = backend
    examples = 150 if backend.name == "sqlite" else 25  # the rules are the same: PG checks the SQL
    run_state_machine_as_test(
        StoreMachine, settings=settings(max_examples=examples, stateful_step_count=25, deadline=None)
    )
