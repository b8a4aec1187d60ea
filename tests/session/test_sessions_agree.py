"""Two sessions on one store, driven at random (hypothesis' state machine): labels, accepted
predictions, undo, back, skip, grid pages, review fixes and their undo, second opinions, settlements,
a claim that fails and leases that run out. After every step each session, once refreshed, holds
exactly the store's labels, and so does its trainer. Both backends (SQLite, a real PostgreSQL server)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from test_claims_hold import LABELS, open_session

from oal_widget.data.store import StoreUnavailable, UndoConflict
from oal_widget.messages import Update
from oal_widget.session.grid import Grid

pytest_plugins = ["pg_server"]

WHO = ("alice", "bob")


class Sessions(RuleBasedStateMachine):
    backend = None  # set by the test below

    def __init__(self):
        super().__init__()
        self.backend.project = f"agree{next(_runs)}"
        # bob gives blind second opinions on half of what alice labelled
        made = [open_session(self.backend, WHO[0]), open_session(self.backend, WHO[1], double_label=0.5)]
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
        self.backend.sql(
            "UPDATE claims SET expires = ? WHERE project_id = (SELECT id FROM projects WHERE name = ?)",
            ("2000-01-01T00:00:00+00:00", self.backend.project),
        )

    @rule(who=st.integers(0, 1))
    def heartbeat(self, who):
        self.sessions[who].renew_claims()

    # --- what must always hold --------------------------------------------------------------------------
    @invariant()
    def each_session_and_its_trainer_hold_the_stores_labels(self):
        for s, factory in zip(self.sessions, self.factories, strict=True):
            s.refresh()
            stored = s.store.labels()
            assert s.known_labels() == stored
            assert factory.last.labels() == stored
            order = s.order()
            assert len(order) == len(set(order))
            assert all(s.label_of(p) is None for p in order), "the order holds only what is to label"


_runs = iter(range(10**9))


def test_sessions_agree_with_the_store(backend):
    Sessions.backend = backend
    examples = 25 if backend.name == "sqlite" else 8
    run_state_machine_as_test(
        Sessions, settings=settings(max_examples=examples, stateful_step_count=20, deadline=None)
    )
