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


def expire_leases(backend) -> None:
    """Every lease of the backend's project runs out now (as when no heartbeat reached the server)."""
    backend.sql(
        "UPDATE claims SET expires = ? WHERE project_id = (SELECT id FROM projects WHERE name = ?)",
        ("2000-01-01T00:00:00+00:00", backend.project),
    )


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


def test_an_undone_image_back_on_screen_keeps_its_lease(backend):
    alice, _ = open_session(backend, "alice", claim_lease=1)
    bob, _ = open_session(backend, "bob")
    shown = alice.current
    alice.label(truth(shown))
    alice.renew_claims()  # a heartbeat while it is labelled: its claim is gone
    assert alice.undo() == shown and alice.current == shown
    started = time.monotonic()
    wait_for(lambda: time.monotonic() - started > 2.0, "two leases")  # renewed a third of a lease at a time
    assert bob.store.claim([shown], lease_s=60) == [], "a teammate is not handed the image on screen"
    alice.close()
    bob.close()


def test_an_image_that_comes_back_to_be_labelled_while_on_screen_is_claimed_or_left(backend):
    alice, _ = open_session(backend, "alice")
    x = alice.current
    alice.label(truth(x))
    bob, _ = open_session(backend, "bob", double_label=1.0)
    assert bob.current == x and bob.is_second_opinion(x)
    assert alice.undo() == x  # alice's label is gone: x is hers to label again, and on her screen
    bob.refresh()
    assert bob.current != x, "not shown to two people: alice holds it"
    assert x in bob.passed_over()
    alice.close()
    bob.close()


def test_a_lease_lost_while_the_server_was_away_moves_the_person_on(backend):
    alice, _ = open_session(backend, "alice")
    bob, _ = open_session(backend, "bob")
    x = alice.current
    expire_leases(backend)  # alice's leases ran out (the heartbeat could not reach the server) ...
    assert bob.store.claim([x], lease_s=60) == [x]  # ... and bob was handed x
    alice.renew_claims()  # the server is back: the renewal finds x taken
    alice.refresh()
    assert alice.current not in (None, x), "the person is moved off the image the teammate has"
    assert x in alice.passed_over()
    alice.close()
    bob.close()


def test_a_closed_grid_page_gives_its_images_back(backend):
    alice, factory = open_session(backend, "alice")
    bob, _ = open_session(backend, "bob")
    deep = alice.order()[-3:]
    page = alice.reserve(deep, 3)
    assert page == deep and set(deep) <= alice.store.claimed()
    alice.close_page()  # the person left the grid without storing the page
    assert bob.store.claim(deep, lease_s=60) == deep
    alice.close()
    bob.close()


def test_a_teammates_label_of_a_class_this_session_does_not_know_untrains_the_old_one(backend):
    alice, factory = open_session(backend, "alice")
    x = alice.current
    alice.label("1")
    writer = alice.another_store()
    writer.set_label_names([*LABELS, "3"])  # a class added at the end, by a newer notebook
    writer.label(x, "3", source="review")
    writer.close()
    alice.refresh()
    assert alice.known_labels()[x] == "3"
    assert x not in factory.last.labels(), "the trainer no longer trains it as '1'"
    alice.close()
