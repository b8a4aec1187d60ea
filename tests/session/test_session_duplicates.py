"""Near-duplicate groups in the session: a group never straddles the test split and the training labels
(the panel's page of near-duplicates is tests/ui/test_panel_grid.py's). A stand-in for the
search (``data.duplicates`` is tested on real planted near-duplicates in tests/test_duplicates.py), a
fake trainer, real store and images."""

from __future__ import annotations

from fake_trainer import Factory
from helpers import wait_for

from oal_widget.data.duplicates import DuplicateGroups
from oal_widget.messages import Labelled, Reserve, Unlabelled
from oal_widget.session import duplicates
from oal_widget.session.grid import Grid
from oal_widget.session.session import Session

LABELS = ["0", "1", "2"]


def truth(path: str) -> str:
    return path.split("/", 1)[0]


def with_groups(monkeypatch, make_groups):
    """The search finds ``make_groups(paths)`` (a list of tuples of paths)."""
    monkeypatch.setattr(
        duplicates, "find_groups", lambda pool, progress=None, cancel=None: found(make_groups(pool.paths))
    )


def found(groups) -> DuplicateGroups:
    """What the search returns, for these groups (each verified whole: no scores)."""
    groups = tuple(tuple(sorted(g)) for g in groups if len(g) > 1)
    return DuplicateGroups(groups=groups, kinds=("near",) * len(groups))


def searched(s) -> None:
    assert s.duplicates.join(10) and s.duplicates.error is None, s.duplicates.error


def told(factory, path):
    """The last command the trainer got about ``path``."""
    about = [c for c in factory.last.commands if getattr(c, "path", None) == path]
    return about[-1] if about else None


def test_a_group_with_a_test_image_goes_wholly_to_the_test_split(small_digits, monkeypatch):
    group: list[str] = []

    def make_groups(paths):
        return [tuple(group)]

    with_groups(monkeypatch, make_groups)
    factory = Factory()
    s = Session(small_digits, LABELS, trainer_factory=factory, input_shape=(16, 16, 1), test_fraction=0.25,
                start=False)  # fmt: skip
    test = next(p for p in s.pool.paths if s.is_test(p))
    others = [p for p in s.pool.paths if not s.is_test(p) and p != s.current][:2]
    group.extend([test, *others])
    s.start()
    searched(s)
    assert set(others) <= s.store.test_paths() and all(s.is_test(p) for p in others)
    reserved = [c for c in factory.last.commands if isinstance(c, Reserve)]
    assert reserved and set(reserved[-1].paths) == set(others)
    order = s.order()
    assert set(order) == {p for p in s.pool.paths if p not in s.store.labels()}  # still a permutation
    s.close()


def test_a_test_label_grouped_with_a_training_label_grades_nothing_and_an_undo_restores_it(
    small_digits, monkeypatch
):
    pair: list[str] = []
    with_groups(monkeypatch, lambda paths: [tuple(pair)])
    factory = Factory()
    s = Session(small_digits, LABELS, trainer_factory=factory, input_shape=(16, 16, 1), test_fraction=0.25,
                start=False)  # fmt: skip
    while not s.is_test(s.current):  # label training images until a test image shows: label it
        s.label(truth(s.current))
    test = s.current
    s.label(truth(test))
    while s.is_test(s.current):
        s.label(truth(s.current))
    train = s.current  # labelled last: its near-duplicate is the test image
    s.label(truth(train))
    pair.extend([test, train])
    s.start()
    searched(s)
    # Handed over, then withdrawn: it grades nothing, but it was given (the curve's x counts it).
    assert told(factory, test) == Unlabelled(test, paid=True)
    assert told(factory, train) == Labelled(train, truth(train), "train")
    s.undo()  # the training label goes: the test label grades again
    wait_for(lambda: told(factory, test) == Labelled(test, truth(test), "test"), "the test label given back")
    s.close()


def test_a_test_image_on_screen_that_a_training_label_shadows_is_not_asked_for(small_digits, monkeypatch):
    """The search finds that the test image on screen is a near-duplicate of a training label given before:
    its label would grade nothing, so the next refresh (after the next key) moves on from it."""
    pair: list[str] = []
    with_groups(monkeypatch, lambda paths: [tuple(pair)])
    s = Session(small_digits, LABELS, trainer_factory=Factory(), input_shape=(16, 16, 1), test_fraction=0.25,
                start=False)  # fmt: skip
    train = None
    while train is None or not s.is_test(s.current):  # training labels until a test image shows
        if not s.is_test(s.current):
            train = s.current
        s.label(truth(s.current))
    test = s.current
    pair.extend([test, train])
    s.start()
    searched(s)
    assert s.shadowed(test) and test not in s.order()
    s.refresh()
    assert s.current not in (None, test) and s.order()[0] == s.current
    s.close()


def test_a_blind_test_image_on_screen_that_a_training_label_shadows_is_not_asked_for(
    small_digits, monkeypatch, tmp_path
):
    """Alice labelled a test image and its near-duplicate (a training image); Bob, asked for the test image
    blind, has it on screen when his search finds the pair: his label would grade nothing."""
    pair: list[str] = []
    with_groups(monkeypatch, lambda paths: [tuple(pair)])
    kw = dict(input_shape=(16, 16, 1), test_fraction=0.25, workdir=tmp_path / "wd")
    alice = Session(small_digits, LABELS, annotator="alice", trainer_factory=Factory(), start=False, **kw)
    test = train = None
    while test is None or train is None:
        path = alice.current
        test, train = (path, train) if alice.is_test(path) else (test, path)
        alice.label(truth(path))
    bob = Session(small_digits, LABELS, annotator="bob", trainer_factory=Factory(), double_label=1.0,
                  start=False, **kw)  # fmt: skip
    while bob.current not in (None, test):  # bob labels what comes before it
        bob.label(truth(bob.current))
    assert bob.current == test and bob.is_second_opinion(test)
    pair.extend([test, train])
    bob.start()
    searched(bob)
    assert bob.shadowed(test)
    bob.refresh()
    assert bob.current != test and test not in bob.order()
    alice.close()
    bob.close()


def test_a_grid_tile_of_a_test_image_that_a_training_label_shadows_leaves_the_page(small_digits, monkeypatch):
    pair: list[str] = []
    with_groups(monkeypatch, lambda paths: [tuple(pair)])
    s = Session(small_digits, LABELS, trainer_factory=Factory(), input_shape=(16, 16, 1), test_fraction=0.25,
                start=False)  # fmt: skip
    while s.is_test(s.current):
        s.label(truth(s.current))
    train = s.current
    s.label(truth(train))
    grid = Grid(s, size=30, grouped=False)  # every image still to label
    grid.open()
    test = next(t.path for t in grid.tiles if t.test)
    pair.extend([test, train])
    s.start()
    searched(s)
    s.refresh()
    assert grid.sync() and test not in [t.path for t in grid.tiles], "not asked for: it would grade nothing"
    assert grid.tiles and grid.under_cursor is not None
    s.close()


def test_an_image_a_teammate_labelled_since_the_search_began_stays_a_training_image(
    small_digits, monkeypatch, tmp_path
):
    group: list[str] = []
    with_groups(monkeypatch, lambda paths: [tuple(group)] if group else [])
    kw = dict(input_shape=(16, 16, 1), test_fraction=0.25, workdir=tmp_path / "wd")
    fa, fb = Factory(), Factory()
    alice = Session(small_digits, LABELS, annotator="alice", trainer_factory=fa, start=False, **kw)
    bob = Session(small_digits, LABELS, annotator="bob", trainer_factory=fb, **kw)
    test = next(p for p in alice.pool.paths if alice.is_test(p))
    bob.refresh()
    path = bob.current
    assert not bob.is_test(path)
    bob.label(truth(path))  # a training label alice has not read yet
    group.extend([test, path])
    alice.start()  # her search groups it with a test image, from labels read before bob's
    searched(alice)
    alice.refresh()
    bob.refresh()
    assert alice.store.record(path).split == "train" and not alice.is_test(path) and not bob.is_test(path)
    assert told(fa, path) == told(fb, path) == Labelled(path, truth(path), "train")
    alice.close()
    bob.close()


def test_an_image_labelled_as_it_joined_the_test_split_is_a_test_label_for_every_trainer(
    small_digits, monkeypatch, tmp_path
):
    """Bob labels the image on his screen just after Alice's search put it in the test split, before his
    session read that: the store says test, so both trainers hear a test label."""
    group: list[str] = []
    with_groups(monkeypatch, lambda paths: [tuple(group)] if group else [])
    kw = dict(input_shape=(16, 16, 1), test_fraction=0.25, workdir=tmp_path / "wd")
    fa, fb = Factory(), Factory()
    bob = Session(small_digits, LABELS, annotator="bob", trainer_factory=fb, **kw)
    searched(bob)
    path = bob.current
    test = next(p for p in bob.pool.paths if bob.is_test(p))
    group.extend([test, path])
    alice = Session(small_digits, LABELS, annotator="alice", trainer_factory=fa, **kw)
    searched(alice)
    assert alice.is_test(path) and not bob.is_test(path)
    bob.label(truth(path))  # from his screen, as a training image
    bob.refresh()
    alice.refresh()
    assert alice.store.record(path).split == "test" and bob.is_test(path) and alice.is_test(path)
    assert told(fa, path) == told(fb, path) == Labelled(path, truth(path), "test")
    assert bob.progress()["test_labelled"] == alice.progress()["test_labelled"] == 1
    alice.close()
    bob.close()


def test_a_teammate_sees_the_images_that_joined_the_test_split(small_digits, monkeypatch, tmp_path):
    group: list[str] = []
    with_groups(monkeypatch, lambda paths: [tuple(group)] if group else [])
    kw = dict(trainer_factory=Factory(), input_shape=(16, 16, 1), test_fraction=0.25, workdir=tmp_path / "wd")
    bob = Session(small_digits, LABELS, annotator="bob", **kw)
    searched(bob)  # bob's search found nothing (the group is not known yet)
    test = next(p for p in bob.pool.paths if bob.is_test(p))
    others = [p for p in bob.pool.paths if not bob.is_test(p) and p != bob.current][:2]
    group.extend([test, *others])
    alice = Session(small_digits, LABELS, annotator="alice", **{**kw, "trainer_factory": Factory()})
    searched(alice)
    assert all(alice.is_test(p) for p in others) and not any(bob.is_test(p) for p in others)
    alice.label(truth(alice.current))  # any commit of hers: bob's next refresh reads the split too
    bob.refresh()
    assert all(bob.is_test(p) for p in others)
    assert any(isinstance(c, Reserve) and set(c.paths) == set(others) for c in bob.trainer.commands)
    for s in (alice, bob):
        s.close()


def test_at_exit_a_search_still_running_is_cancelled_and_waited_for(small_digits, monkeypatch):
    """A daemon thread torn down inside faiss' C++ would abort the process at exit: the exit hook cancels
    the search and waits for it."""
    import threading

    started, cancelled = threading.Event(), []

    def slow(pool, progress=None, cancel=None):
        started.set()
        cancel.wait(30)  # a long search, checking for cancellation between its steps
        cancelled.append(cancel.is_set())
        raise duplicates.Cancelled

    monkeypatch.setattr(duplicates, "find_groups", slow)
    s = Session(small_digits, LABELS, trainer_factory=Factory(), input_shape=(16, 16, 1))
    try:
        assert started.wait(10)
        duplicates._stop_all()
        assert cancelled == [True] and s.duplicates.join(0), "cancelled and over when the hook returns"
    finally:
        s.close()
