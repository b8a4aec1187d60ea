"""Two sessions on one store, driven at random (hypothesis' state machine): labels, accepted
predictions, undo, back, skip, grid pages (stored at once, or kept open across steps), review fixes and
their undo, a review queue walked while the labels change, second opinions, settlements, a claim that
fails and leases that run out, with and without a test split; with the test split, near-duplicate groups
that each session's background search finds while the labelling goes on. After every step each
session, once refreshed, holds exactly the store's labels and split, and so does its trainer (a test
label shadowed by a training near-duplicate grades nothing); near-duplicates never sit on both sides of
the split; no open view offers a prediction for a test image or a blind second opinion. Both backends
(SQLite, a real PostgreSQL server)."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from test_claims_hold import LABELS, expire_leases, open_session

from oal_widget.data.duplicates import DuplicateGroups
from oal_widget.data.store import StoreUnavailable, UndoConflict
from oal_widget.messages import Labelled, Reserve, Unlabelled, Update
from oal_widget.session import duplicates
from oal_widget.session.duplicates import near_pairs
from oal_widget.session.grid import Grid
from oal_widget.session.review import ReviewQueue

pytest_plugins = ["pg_server"]

WHO = ("alice", "bob")
#: Sources a prediction gives: never a test label's (its label must be the person's own).
PREDICTED = ("accepted", "duplicate")


# --- near-duplicates: found when a rule says so ------------------------------------------------------------
class Search:
    """A stand-in for ``data.duplicates.find_groups``: a few pairs and triples of the pool chosen by a seed,
    found only when the test lets that session's search finish (``finish``), so labels, undos and a
    teammate's search happen before and after it."""

    def __init__(self):
        self.seed = 0
        self.test: set[str] = set()
        self.gates: dict[int, threading.Event] = {}

    def groups(self, paths) -> tuple[tuple[str, ...], ...]:
        """Three groups of two or three; most hold a test image (of the split as the sessions started)."""
        rng = random.Random(self.seed)
        test = rng.sample(sorted(set(paths) & self.test), 3)
        train = iter(rng.sample(sorted(set(paths) - self.test), 9))
        groups = [
            [next(train) for _ in range(rng.choice((1, 2)))] + test[k : k + rng.choice((0, 1, 1))]
            for k in range(3)
        ]
        return tuple(tuple(sorted(g)) for g in groups if len(g) > 1)

    def gate(self, pool) -> threading.Event:
        return self.gates.setdefault(id(pool), threading.Event())

    def __call__(self, pool, progress=None, cancel=None) -> DuplicateGroups:
        gate = self.gate(pool)
        while not gate.wait(0.02):
            if cancel is not None and cancel.is_set():
                raise duplicates.Cancelled
        groups = self.groups(pool.paths)
        return DuplicateGroups(groups=groups, kinds=("near",) * len(groups))

    def finish(self, s) -> None:
        self.gate(s.pool).set()
        assert s.duplicates.join(10) and s.duplicates.error is None, s.duplicates.error


SEARCH = Search()


def near_of(s) -> dict[str, tuple[str, ...]]:
    """path -> its near-duplicates, as this session's search found them ({} before it finished)."""
    return near_pairs(s.duplicates.groups) if s.duplicates.groups is not None else {}


def trainer_view(trainer) -> dict[str, tuple[str, str]]:
    """path -> (label, split) as the fake trainer understands it after every command so far."""
    out: dict[str, tuple[str, str]] = {}
    for command in trainer.commands:
        if isinstance(command, Labelled):
            out[command.path] = (command.label, command.split)
        elif isinstance(command, Unlabelled):
            out.pop(command.path, None)
    return out


def trained_on(factories) -> set[str]:
    """Images some trainer was ever given a training label of: one whose label was undone since stays a
    training image (in the test split, its grade would be flattered by what the model learnt of it)."""
    return {
        c.path
        for f in factories
        for trainer in f.trainers
        for c in trainer.commands
        if isinstance(c, Labelled) and c.split == "train"
    }


class Sessions(RuleBasedStateMachine):
    backend = None  # set by the test below
    buffer_size = 1  # labels held back before the trainer hears of them
    test_fraction = 0.0  # the test split (its lane, blind test images, test labels undone elsewhere)

    def __init__(self):
        super().__init__()
        self.backend.project = f"agree{next(_runs)}"
        self.sessions, self.factories = [], []
        self.fixes: list[list[int]] = [[], []]
        self.queue: tuple[int, ReviewQueue] | None = None  # a review queue open on one session
        self.grid: tuple[int, Grid] | None = None  # a grid page open on one session across steps

    @initialize(seed=st.integers(0, 2**16))
    def open_sessions(self, seed):
        SEARCH.seed, SEARCH.gates = seed, {}  # a pool's id may be an earlier run's: new gates
        # bob gives blind second opinions on half of what alice labelled
        made = [
            open_session(
                self.backend, WHO[0], buffer_size=self.buffer_size, test_fraction=self.test_fraction
            ),
            open_session(
                self.backend,
                WHO[1],
                double_label=0.5,
                buffer_size=self.buffer_size,
                test_fraction=self.test_fraction,
            ),  # fmt: skip
        ]
        self.sessions = [s for s, _ in made]
        self.factories = [f for _, f in made]
        SEARCH.test = self.sessions[0].store.test_paths()

    def teardown(self):
        for s in self.sessions:
            s.close()

    # --- the person's actions ------------------------------------------------------------------------
    @rule(who=st.integers(0, 1), label=st.sampled_from(LABELS))
    def label(self, who, label):
        self.sessions[who].label(label)

    @rule(who=st.integers(0, 1), label=st.sampled_from(LABELS))
    def accept(self, who, label):
        s = self.sessions[who]
        self.factories[who].last.publish(
            Update(status="training", n_labels=3, predictions={p: (label, 0.9) for p in s.order()[:4]})
        )
        s.accept_prediction()

    @rule(who=st.integers(0, 1))
    def undo(self, who):
        try:
            self.sessions[who].undo()
        except UndoConflict:
            pass  # another session changed it since: its label stands (the invariant checks it)

    @rule(who=st.integers(0, 1))
    def back(self, who):
        self.sessions[who].back()

    @rule(who=st.integers(0, 1))
    def skip(self, who):
        self.sessions[who].skip()

    @rule(who=st.integers(0, 1), label=st.sampled_from(LABELS))
    def grid_page(self, who, label):
        grid = Grid(self.sessions[who], size=3, grouped=False)
        grid.open()
        if grid.tiles:
            grid.set(label)
            grid.commit()

    @rule(who=st.integers(0, 1), pick=st.integers(0, 30), label=st.sampled_from(LABELS))
    def review_fix(self, who, pick, label):
        s = self.sessions[who]
        labelled = sorted(s.known_labels())
        if labelled:
            self.fixes[who].append(s.actions.relabel(labelled[pick % len(labelled)], label).step)

    @rule(who=st.integers(0, 1))
    def undo_review_fix(self, who):
        if self.fixes[who]:
            try:
                self.sessions[who].actions.undo_step(show_labelled=False, step=self.fixes[who].pop())
            except UndoConflict:
                pass

    @rule(who=st.integers(0, 1), pick=st.integers(0, 30), label=st.sampled_from(LABELS))
    def settle(self, who, pick, label):
        s = self.sessions[who]
        labelled = sorted(s.known_labels())
        if labelled:
            s.settle(labelled[pick % len(labelled)], label)

    @rule(who=st.integers(0, 1))
    def refresh(self, who):
        self.sessions[who].refresh()

    # --- near-duplicates ------------------------------------------------------------------------------------
    @precondition(lambda self: self.test_fraction and any(s.duplicates.groups is None for s in self.sessions))
    @rule(who=st.integers(0, 1))
    def search_finishes(self, who):
        SEARCH.finish(self.sessions[who])

    # --- the review queue, open across steps ---------------------------------------------------------------
    @rule(who=st.integers(0, 1), seed=st.integers(0, 2**16))
    def review_opens(self, who, seed):
        """First-sight probabilities for this session's training labels (as the trainer keeps them), then
        the queue ranks them."""
        s, rng = self.sessions[who], np.random.default_rng(seed)
        paths = sorted(p for p in s.known_labels() if not s.is_test(p))
        self.factories[who].last.first_sight = {p: rng.dirichlet(np.ones(len(LABELS))) for p in paths}
        queue = ReviewQueue(s)
        queue.open()
        self.queue = (who, queue)

    @precondition(lambda self: self.queue is not None)
    @rule(
        action=st.sampled_from(["confirm", "fix", "next", "back", "undo", "sync"]),
        label=st.sampled_from(LABELS),
    )
    def review_acts(self, action, label):
        queue = self.queue[1]
        try:
            if action == "fix":
                queue.fix(label)
            else:
                getattr(queue, action)()
        except UndoConflict:
            pass  # another session changed it since: its label stands

    # --- a grid page, open across steps ---------------------------------------------------------------------
    @rule(who=st.integers(0, 1), grouped=st.booleans(), label=st.sampled_from(LABELS))
    def grid_opens(self, who, grouped, label):
        """A page of the order with the model's predictions on it, or (when the last label has near-duplicates
        still to label) the page of those with its label proposed."""
        s, grid = self.sessions[who], Grid(self.sessions[who], size=3, grouped=grouped)
        self.factories[who].last.publish(
            Update(status="training", n_labels=3, predictions={p: (label, 0.8) for p in s.order()[:6]})
        )
        offered = [p for p in sorted(s.known_labels()) if s.label_of(p) is not None and s.near_duplicates(p)]
        if offered:
            grid.proposal = (offered[0], s.label_of(offered[0]))
        grid.open()
        self.grid = (who, grid)

    @precondition(lambda self: self.grid is not None)
    @rule(action=st.sampled_from(["set", "clear", "move", "commit", "undo"]), label=st.sampled_from(LABELS))
    def grid_acts(self, action, label):
        grid = self.grid[1]
        try:
            if action == "set":
                grid.set(label)
            elif action == "move":
                grid.move(1)
            else:
                getattr(grid, action)()
        except UndoConflict:
            pass

    # --- what goes wrong ----------------------------------------------------------------------------------
    @rule(who=st.integers(0, 1), label=st.sampled_from(LABELS))
    def claim_fails(self, who, label):
        s = self.sessions[who]
        real = s.store.claim

        def away(*args, **kwargs):
            raise StoreUnavailable("the server is away for a moment")

        s.store.claim = away
        try:
            for _ in range(9):  # through a batch of claims: one of them fails after a commit
                s.label(label)
        finally:
            s.store.claim = real

    @rule()
    def leases_run_out(self):
        expire_leases(self.backend)

    @rule(who=st.integers(0, 1))
    def heartbeat(self, who):
        self.sessions[who].renew_claims()

    # --- what must always hold --------------------------------------------------------------------------
    @invariant()
    def each_session_and_its_trainer_hold_the_stores_labels(self):
        for s in self.sessions:
            s.refresh()
            s.renew_claims()  # a lease that ran out: renewed, or lost to the other session
            s.refresh()  # ... and then left
        stored, test = self.sessions[0].store.labels(), self.sessions[0].store.test_paths()
        for s, factory in zip(self.sessions, self.factories, strict=True):
            assert s.known_labels() == stored
            assert {p for p in s.pool.paths if s.is_test(p)} == test & set(s.pool.paths), (
                "the split as stored"
            )
            near = near_of(s)
            shadowed = {
                p for p in test if any(o in stored and o not in test for o in near.get(p, ()))
            }  # a test image with a training-labelled near-duplicate: its label grades nothing
            assert {p for p in s.pool.paths if s.shadowed(p)} == shadowed
            s._commands.flush()  # labels held back (buffer_size) go out, as at the next key or stop
            splits = {p: (label, "test" if p in test else "train") for p, label in stored.items()}
            assert trainer_view(factory.last) == {p: v for p, v in splits.items() if p not in shadowed}
            reserved = set(factory.last.test_paths).union(
                *(c.paths for c in factory.last.commands if isinstance(c, Reserve))
            )
            assert test - set(stored) <= reserved, "the trainer never trains on an unlabelled test image"
            order = s.order()
            assert len(order) == len(set(order))
            to_label = {p for p in s.pool.paths if s.label_of(p) is None}
            assert set(order) <= to_label - shadowed, (
                "the order holds only what is to label (and is asked for)"
            )
            assert to_label - set(order) <= s.passed_over() | shadowed, "an image to label left the order"
            current = s.current
            if current is not None and s.label_of(current) is None:
                assert order[0] == current, "the image on screen, still to label, is first in the order"
                if not s.is_second_opinion(current):
                    assert current in s.store.claimed(), "the image on screen is claimed for it"
        a, b = (s.current for s in self.sessions)
        if a is not None and a == b:
            assert any(s.is_second_opinion(a) or s.label_of(a) is not None for s in self.sessions), (
                "two people are shown the same image to label"
            )

    @invariant()
    def near_duplicates_never_straddle_the_split(self):
        store = self.sessions[0].store
        stored, test = store.labels(), store.test_paths()
        found = [near_of(s) for s in self.sessions if s.duplicates.groups is not None]
        trained = trained_on(self.factories)
        for near in found[:1]:  # both searches find the same groups
            for p, others in near.items():
                if p not in stored and p not in test and p not in trained:
                    assert not set(others) & test, f"{p}, still to label, is a near-duplicate of a test image"
        predicted = [r.path for r in store.records() if r.split == "test" and r.source in PREDICTED]
        assert not predicted, f"a prediction became a test label: {predicted}"

    @invariant()
    def open_views_follow_the_labels(self):
        if self.queue is not None:
            s, queue = self.sessions[self.queue[0]], self.queue[1]
            s.refresh()
            queue.sync()
            for item in queue.items:
                assert not s.is_second_opinion(item.path), "the review queue lists a blind second opinion"
                assert item.label == s.label_of(item.path), "the review queue shows a label that went"
        if self.grid is not None:
            s, grid = self.sessions[self.grid[0]], self.grid[1]
            s.refresh()
            grid.refresh()
            grid.sync()
            for tile in grid.tiles:
                assert tile.test == s.is_test(tile.path), "a grid tile's split as the session holds it"
                assert not (s.label_of(tile.path) is None and s.shadowed(tile.path)), (
                    "a grid tile asks for a shadowed test image"
                )
                got = grid.gets(tile)
                if got is not None and got[1] in PREDICTED:
                    assert not s.is_test(tile.path), "a grid tile offers a prediction for a test image"
                    assert not s.is_second_opinion(tile.path), (
                        "a grid tile offers a prediction for a blind one"
                    )


_runs = iter(range(10**9))


@pytest.mark.parametrize(("buffer_size", "test_fraction"), [(1, 0.0), (3, 0.25)])
def test_sessions_agree_with_the_store(backend, buffer_size, test_fraction, monkeypatch):
    Sessions.backend, Sessions.buffer_size, Sessions.test_fraction = backend, buffer_size, test_fraction
    if test_fraction:
        monkeypatch.setattr(duplicates, "find_groups", SEARCH)
    # The split's run has no real search to wait for (a stand-in finds the groups): twice the examples.
    examples = (20 if backend.name == "sqlite" else 6) * (2 if test_fraction else 1)
    run_state_machine_as_test(
        Sessions, settings=settings(max_examples=examples, stateful_step_count=20, deadline=None)
    )
