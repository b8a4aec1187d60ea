"""Claims that hold: a claim is taken before an image leaves the order, a failed claim loses nothing, a
heartbeat keeps the leases of what is shown, stepping back claims again, and a session that stops lets
go. Both backends (SQLite and a real PostgreSQL server); the fake trainer (the store is what is tested)."""

from __future__ import annotations

import time

from fake_trainer import Factory
from helpers import wait_for

from oal_widget.data.samples import write_digits
from oal_widget.data.store import StoreUnavailable
from oal_widget.session.session import Session

pytest_plugins = ["pg_server"]

LABELS = ["0", "1", "2"]


def digits(root) -> None:
    """3 classes x 8 images, 16x16 (as the ``small_digits`` fixture)."""
    for p in write_digits(root, per_class=8, size=16, seed=1):
        if p.parent.name not in LABELS:
            p.unlink()
    for d in list(root.iterdir()):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def open_session(backend, who: str, **kw) -> tuple[Session, Factory]:
    """A session on the backend's store (SQLite: its workdir; PostgreSQL: its project)."""
    if not any(backend.images.iterdir()):
        digits(backend.images)
    factory = Factory()
    if backend.name == "sqlite":
        kw.setdefault("workdir", backend.location)
    settings = dict(input_shape=(16, 16, 1), test_fraction=0, buffer_size=1) | kw
    s = Session(
        backend.images, LABELS, trainer_factory=factory, annotator=who, store=backend.store_arg,
        project=backend.project, **settings,
    )  # fmt: skip
    return s, factory


def truth(path: str) -> str:
    return path.split("/")[0]


def test_a_claim_that_fails_right_after_a_commit_loses_nothing(backend, monkeypatch):
    s, _ = open_session(backend, "alice")
    pool = set(s.pool.paths)

    def away(*args, **kwargs):
        raise StoreUnavailable("the server is away for a moment")

    monkeypatch.setattr(s.store, "claim", away)
    labelled = []
    for _ in range(12):  # more than one batch of claims: at least one claim fails after a commit
        path = s.current
        assert s.label(truth(path)) == path, "the label was saved: the action says so"
        assert s.store.get(path) == truth(path)
        labelled.append(path)
        assert s.current is not None and not s.done, "the next image shows"
    for _ in range(3):
        shown = s.current
        assert s.skip() == shown and s.current not in (None, shown)  # ArrowRight while the server is away
    assert set(s.order()) | set(labelled) == pool, "no image left the order without a label"
    monkeypatch.undo()
    s.renew_claims()  # the heartbeat: what was shown meanwhile is claimed now
    assert s.current in s.store.claimed()
    s.close()


def test_the_heartbeat_keeps_the_lease_of_the_image_on_screen(backend):
    alice, _ = open_session(backend, "alice", claim_lease=1)
    bob, _ = open_session(backend, "bob")
    shown = alice.current
    claimed_at = time.monotonic()
    renewals = []
    real = alice.store.claim

    def counting(paths, **kw):
        renewals.append(shown in paths)
        return real(paths, **kw)

    alice.store.claim = counting
    # Long after the 1 s lease would have run out, renewed a third of a lease at a time.
    wait_for(lambda: sum(renewals) >= 4 and time.monotonic() - claimed_at > 2.0, "four renewals")
    assert shown not in bob.store.claim([shown], lease_s=60), "a teammate is never handed it"
    alice.close()
    assert bob.store.claim([shown], lease_s=60) == [shown], "closing lets it go"
    bob.close()


def test_stepping_back_to_a_skipped_image_claims_it_again(backend):
    alice, _ = open_session(backend, "alice")
    bob, _ = open_session(backend, "bob")
    skipped = alice.current
    alice.skip()  # its claim is given back: bob may take it
    assert alice.back() == skipped
    assert skipped in alice.store.claimed(), "shown again, so claimed again"
    alice.skip()
    assert bob.store.claim([skipped], lease_s=60) == [skipped]
    before = alice.current
    assert alice.back() != skipped and alice.current == before, "bob holds it now: not shown to alice"
    alice.close()
    bob.close()


def test_stopping_a_session_gives_its_claims_back(backend):
    alice, _ = open_session(backend, "alice")
    bob, _ = open_session(backend, "bob")
    held = alice.store.claimed()
    assert alice.current in held and len(held) > 1
    alice.stop()
    assert bob.store.claimed_by_others() == set()
    alice.close()
    bob.close()
