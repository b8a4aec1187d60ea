"""Two sessions on one store, driven at random (hypothesis' state machine): labels, accepted
predictions, undo, back, skip, grid pages, review fixes and their undo, second opinions, settlements,
a claim that fails and leases that run out, with and without a test split. After every step each
session, once refreshed, holds exactly the store's labels, and so does its trainer. Both backends
(SQLite, a real PostgreSQL server)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from test_claims_hold import LABELS, expire_leases, open_session

from oal_widget.data.store import StoreUnavailable, UndoConflict
from oal_widget.messages import Update
from oal_widget.session.grid import Grid

pytest_plugins = ["pg_server"]

WHO = ("alice", "bob")


class Sessions(RuleBasedStateMachine):
    backend = None  # set by the test below
    buffer_size = 1  # labels held back before the trainer hears of them
    test_fraction = 0.0  # the test split (its lane, blind test images, test labels undone elsewhere)

    def __init__(self):
        super().__init__()
        self.backend.project = f"agree{next(_runs)}"
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
        self.fixes: list[list[int]] = [[], []]

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
        for s, factory in zip(self.sessions, self.factories, strict=True):
            stored = s.store.labels()
            assert s.known_labels() == stored
            s._commands.flush()  # labels held back (buffer_size) go out, as at the next key or stop
            assert factory.last.labels() == stored
            order = s.order()
            assert len(order) == len(set(order))
            to_label = {p for p in s.pool.paths if s.label_of(p) is None}
            assert set(order) <= to_label, "the order holds only what is to label"
            assert to_label - set(order) <= s.passed_over(), "an image to label left the order"
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


_runs = iter(range(10**9))


@pytest.mark.parametrize(("buffer_size", "test_fraction"), [(1, 0.0), (3, 0.25)])
def test_sessions_agree_with_the_store(backend, buffer_size, test_fraction):
    Sessions.backend, Sessions.buffer_size, Sessions.test_fraction = backend, buffer_size, test_fraction
    examples = 20 if backend.name == "sqlite" else 6
    run_state_machine_as_test(
        Sessions, settings=settings(max_examples=examples, stateful_step_count=20, deadline=None)
    )
