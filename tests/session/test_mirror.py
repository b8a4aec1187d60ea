"""The session mirrors what the store says stands, after every write: a blind second opinion stays blind
through an undo, a relabel of an image someone settled keeps the settlement, a review fix is undone by
itself. The trainer hears exactly the store's labels. Both backends."""

from __future__ import annotations

import numpy as np
from test_claims_hold import open_session, truth

from oal_widget.session.review import ReviewQueue

pytest_plugins = ["pg_server"]


def agrees(session, factory) -> None:
    """The session's labels and its trainer's equal the store's."""
    stored = session.store.labels()
    assert session.known_labels() == stored
    assert factory.last.labels() == stored


def test_a_second_opinion_undone_and_given_again_stays_blind(backend):
    alice, _ = open_session(backend, "alice")
    for _ in range(8):
        alice.label("1")
    bob, f_bob = open_session(backend, "bob", double_label=1.0)
    blind = bob.current
    assert bob.is_second_opinion(blind) and bob.label_of(blind) is None
    bob.label("2")
    assert bob.undo() == blind and bob.current == blind
    assert bob.is_second_opinion(blind) and bob.label_of(blind) is None, "still blind: alice's label hidden"
    assert bob.prediction(blind) is None
    bob.label("0")
    assert bob.store.get(blind) == "1", "alice labelled first: hers stands"
    agrees(bob, f_bob)
    alice.close()
    bob.close()


def test_relabelling_an_image_someone_settled_keeps_the_settlement(backend):
    alice, f_alice = open_session(backend, "alice")
    carol, _ = open_session(backend, "carol")
    path = alice.current
    alice.label("1")
    carol.settle(path, "2")
    assert alice.refresh()
    assert alice.back() == path
    alice.label("0")  # her own label changes; the settlement stands
    assert alice.store.get(path) == "2"
    agrees(alice, f_alice)
    alice.close()
    carol.close()


def test_undoing_a_review_fix_undoes_that_fix_not_the_latest_label(backend):
    s, factory = open_session(backend, "alice")
    first = {}
    for k in range(4):
        path = s.current
        s.label(truth(path))
        p = np.full(3, 0.1)
        p[int(truth(path))] = 0.8 - 0.1 * k
        first[path] = p / p.sum()
    factory.last.first_sight = first
    queue = ReviewQueue(s)
    queue.open()
    item = queue.current
    queue.fix("2" if item.label != "2" else "0")
    later = s.current
    s.label(truth(later))  # a label given after the fix
    assert queue.undo() == item
    assert s.store.get(item.path) == item.label, "the fix is undone"
    assert s.store.get(later) == truth(later), "the label given after it stands"
    agrees(s, factory)
    s.close()
