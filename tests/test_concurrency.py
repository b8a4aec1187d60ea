"""Two sessions, panels or processes on one workdir: no lost or duplicated row, each sees the other's labels.

Fake trainer: what matters here is the store and the sessions' view of it, not training.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from fake_trainer import Factory

from oal_widget.data.store import FILENAME, Store
from oal_widget.messages import Labelled, Unlabelled
from oal_widget.session.session import Session

LABELS = ["zero", "one", "two"]
SHAPE = (16, 16, 1)
TESTS = Path(__file__).parent


def make(root, labels=LABELS, **kw) -> tuple[Session, Factory]:
    factory = Factory()
    return Session(root, labels, trainer_factory=factory, input_shape=SHAPE, **kw), factory


def history_count(workdir: Path) -> int:
    with sqlite3.connect(workdir / FILENAME) as db:
        return db.execute("SELECT COUNT(*) FROM history").fetchone()[0]


def assert_sees(session: Session, labels: dict[str, str]) -> None:
    """The session's view (mirror, counts, order) agrees with ``labels`` (the store's)."""
    for path in session.pool.paths:
        assert session.label_of(path) == labels.get(path), path
    assert session.progress()["labelled"] == len(labels)
    assert sum(session.counts().values()) == len(labels)
    order = session.order()
    assert len(order) == len(set(order)) and not set(order) & set(labels)
    assert set(order) == set(session.pool.paths) - set(labels)


# --- Store.data_version --------------------------------------------------------------------------
def test_data_version_changes_only_for_another_connections_commit(tmp_path):
    with Store(tmp_path) as a, Store(tmp_path) as b:
        a.set_label_names(["x", "y"])
        seen = a.data_version()
        a.label("p.png", "x")
        assert a.data_version() == seen  # our own write: unchanged
        b_seen = b.data_version()
        b.label("p.png", "y")  # a relabel: count() stays 1
        assert a.count() == 1 and a.data_version() != seen
        assert b.data_version() == b_seen


def test_another_sessions_accepted_label_reaches_the_trainer_as_accepted(small_digits):
    """A teammate's accepted or grid label was chosen by a prediction: the trainer learns it, but it is
    no evidence of how good the model is (only a person's own label grades it)."""
    mine, f_mine = make(small_digits)
    theirs, _ = make(small_digits, labels=None)
    path = theirs.current
    theirs.store.label(path, "one", source="accepted")
    assert mine.refresh()
    sent = [c for c in f_mine.last.commands if isinstance(c, Labelled) and c.path == path]
    assert sent and sent[-1].source == "accepted"
    mine.close()
    theirs.close()


def test_refresh_sees_a_relabel_and_an_undo_by_the_other_session(small_digits):
    mine, f_mine = make(small_digits)
    theirs, _ = make(small_digits, labels=None)
    first = mine.label("zero")
    assert theirs.refresh() and theirs.label_of(first) == "zero"
    theirs.store.label(first, "two")  # relabel: the number of labels does not change
    assert mine.refresh() is True
    assert mine.label_of(first) == "two" and mine.counts()["two"] == 1 and mine.counts()["zero"] == 0
    assert f_mine.last.labels()[first] == "two"  # the trainer trains on the new label
    assert theirs.store.undo() == first  # undo of the relabel: back to "zero"
    assert mine.refresh() and mine.label_of(first) == "zero"
    theirs.store.unlabel(first)
    assert mine.refresh() and mine.label_of(first) is None
    assert Unlabelled(first) in f_mine.last.commands
    assert first in mine.order()  # back in the queue, to be labelled again
    assert mine.refresh() is False  # nothing new: cheap
    mine.close()
    theirs.close()


def test_two_sessions_labelling_alternately(digits_dir, tmp_path):
    digits = [str(d) for d in range(10)]
    a, fa = make(digits_dir, digits, workdir=tmp_path / "wd")
    b, fb = make(digits_dir, None, workdir=tmp_path / "wd")
    written: list[tuple[str, str]] = []
    turn = 0
    while a.current is not None or b.current is not None:
        s = (a, b)[turn % 2]
        turn += 1
        if s.current is None:
            continue
        name = digits[turn % 10]
        written.append((s.label(name), name))
        s.refresh()  # as the panel after each key: the next image shown is one nobody has labelled
        assert s.current is None or s.store.get(s.current) is None
    a.refresh()
    b.refresh()
    stored = a.store.labels()
    assert set(stored) == set(a.pool.paths)
    assert stored == dict(sorted(dict(written).items()))  # the last write of each image wins
    assert history_count(a.workdir) == len(written)  # every label written once: none lost, none repeated
    # The same seed gives both the same order, but an image shown to one is claimed by it: the other is
    # never shown it, so no image is labelled twice (once, two panels labelled every image twice).
    assert len(written) == len(stored), f"{len(written)} writes for {len(stored)} images"
    for s, f in ((a, fa), (b, fb)):
        assert_sees(s, stored)
        assert s.done
        # Each trainer ends with every label, the latest one; a test label shadowed by a near-duplicate with
        # a training label grades nothing, so its trainer does not hold it.
        assert s.duplicates.join(10)
        assert f.last.labels() == {p: lab for p, lab in stored.items() if not s.shadowed(p)}
    a.close()
    b.close()


def test_two_sessions_labelling_at_once_from_two_threads(small_digits):
    a, fa = make(small_digits)
    b, fb = make(small_digits, labels=None)
    done: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(name: str, s: Session, label: str) -> None:
        try:
            start.wait(timeout=30)
            while s.current is not None:
                path = s.label(label)
                done[name].append((path, label))
                s.refresh()
        except BaseException as e:  # reported below: a thread's exception would be lost
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=("a", a, "one")),
        threading.Thread(target=work, args=("b", b, "two")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    a.refresh()
    b.refresh()
    stored = a.store.labels()
    written = done["a"] + done["b"]
    assert set(stored) == set(a.pool.paths)  # nothing lost
    assert history_count(a.workdir) == len(written)  # every label() wrote exactly once
    for path, label in stored.items():  # a path both labelled keeps one of the two labels, once
        assert (path, label) in written
    for s in (a, b):
        assert_sees(s, stored)
    for f in (fa, fb):
        assert s.duplicates.join(10)
        assert f.last.labels() == {p: lab for p, lab in stored.items() if not s.shadowed(p)}
    a.close()
    b.close()


def test_many_threads_of_one_session_and_refresh_lose_nothing(small_digits):
    """label() and refresh() of ONE session racing with another session's writes."""
    a, fa = make(small_digits, test_fraction=0)
    b = Store(a.workdir)  # another session that only writes (a panel would claim what it shows)
    errors: list[BaseException] = []
    paths = list(a.pool.paths)
    theirs = paths[::3]

    def other_writer() -> None:
        try:
            for p in theirs:
                b.label(p, "zero")
        except BaseException as e:
            errors.append(e)

    def refresher() -> None:
        try:
            for _ in range(50):
                a.refresh()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=other_writer), threading.Thread(target=refresher)]
    for t in threads:
        t.start()
    mine = []
    while a.current is not None:
        mine.append(a.label("one"))
        a.refresh()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    a.refresh()
    stored = a.store.labels()
    assert set(stored) == set(paths)
    assert_sees(a, stored)
    assert fa.last.labels() == stored  # the trainer never got a stray Unlabelled
    a.close()
    b.close()


# --- two processes (two notebooks) ------------------------------------------------------------
CHILD = """
import json, sys
sys.path.insert(0, sys.argv[3])
from fake_trainer import Factory
from oal_widget import Annotator

panel = Annotator(sys.argv[1], trainer_factory=Factory(), input_shape=(16, 16, 1))
key = {"type": "keydown", "event": "keydown", "key": sys.argv[2], "repeat": False}
print("ready", flush=True)
sys.stdin.readline()  # start together with the parent
while panel.session.current is not None:
    path = panel.session.current
    panel._on_key(key)
    print(json.dumps([path, panel.session.store.get(path)]), flush=True)
panel.session.stop()
print("done", flush=True)
"""


def test_two_panels_in_two_processes_at_once(small_digits):
    from oal_widget import Annotator

    parent = Annotator(small_digits, LABELS, trainer_factory=Factory(), input_shape=SHAPE)
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(small_digits), "3", str(TESTS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        mine = []
        s = parent.session
        while s.current is not None:
            path = s.current
            parent._on_key({"type": "keydown", "event": "keydown", "key": "2", "repeat": False})
            mine.append(path)
        lines = [line.strip() for line in child.stdout]
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        child.stdout.close()
        child.stdin.close()
    assert lines[-1] == "done"
    theirs = [json.loads(line) for line in lines[:-1]]
    stored = s.store.labels()
    assert set(stored) == set(s.pool.paths)  # together they labelled everything
    for path, label in theirs:  # committed before the child's next image showed
        assert label in ("one", "two"), path  # "one" if the parent relabelled it at the same moment
    assert history_count(s.workdir) == len(mine) + len(theirs)  # no write lost or repeated
    assert all(stored[p] in ("one", "two") for p in stored)
    s.refresh()  # the parent's panel is on its end screen now: no more keys to refresh on
    assert_sees(s, stored)
    parent.stop()


def test_an_image_shown_to_one_session_is_shown_to_no_other_until_it_comes_back(small_digits):
    a, _ = make(small_digits, claim_lease=1.0)
    b, _ = make(small_digits, labels=None)
    shown_a, shown_b = [], []
    for _ in range(3):
        shown_a.append(a.label("one"))
        shown_b.append(b.label("two"))
    assert not set(shown_a) & set(shown_b) and a.current != b.current
    skipped = a.skip()  # a skip gives the claim back: the other may take it now
    assert skipped in a.order()  # still in this session's order, at the end
    a.close()  # a kernel that goes away: its claims end (or, killed, expire after the lease)
    c, _ = make(small_digits, labels=None)
    assert c.current is not None
    b.refresh()
    b.close()
    c.close()
