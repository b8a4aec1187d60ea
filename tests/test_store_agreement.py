"""Agreement between annotators (percent, Cohen's kappa), conflicts, and which images a second
annotator should label blind. Kappa is checked against an example computed by hand. Both backends."""

from __future__ import annotations

import pytest

from oal_widget.data.store.agreement import cohen_kappa, share_point, status

pytest_plugins = ["pg_server"]


def hand_example() -> list[tuple[str, str]]:
    """50 images, two annotators, yes/no. Both yes 20, A yes B no 5, A no B yes 10, both no 15.

    p_o = (20 + 15) / 50 = 0.70. A says yes 25/50 = 0.5, B says yes 30/50 = 0.6, so
    p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.50 and kappa = (0.70 - 0.50) / (1 - 0.50) = 0.40.
    """
    return [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15


def test_cohen_kappa_matches_the_hand_computed_example():
    assert cohen_kappa(hand_example()) == pytest.approx(0.40)
    assert cohen_kappa([("a", "a"), ("b", "b")]) == pytest.approx(1.0)
    assert cohen_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)
    assert cohen_kappa([("a", "a"), ("a", "a")]) is None  # undefined: one class for everything
    assert cohen_kappa([]) is None
    sklearn = pytest.importorskip("sklearn.metrics")
    a, b = zip(*hand_example(), strict=True)
    assert cohen_kappa(hand_example()) == pytest.approx(sklearn.cohen_kappa_score(a, b))


def test_agreement_per_pair_from_the_store(backend):
    alice, bob, carol = (backend.open(annotator=n) for n in ("alice", "bob", "carol"))
    alice.set_label_names(["yes", "no"])
    for i, (x, y) in enumerate(hand_example()):
        alice.label(f"img/{i:02d}.png", x)
        bob.label(f"img/{i:02d}.png", y)
    for i in range(4):
        carol.label(f"img/{i:02d}.png", "yes")  # carol: 4 of the images only
    alice.label("only_alice.png", "yes")
    pairs = {(p.a, p.b): p for p in carol.agreement()}
    assert set(pairs) == {("alice", "bob"), ("alice", "carol"), ("bob", "carol")}
    ab = pairs[("alice", "bob")]
    assert (ab.n, ab.agreed, ab.percent) == (50, 35, 70.0) and ab.kappa == pytest.approx(0.40)
    ac = pairs[("alice", "carol")]
    assert (ac.n, ac.agreed, ac.percent, ac.kappa) == (4, 4, 100.0, None)  # kappa undefined: one class


def test_conflicts_list_disagreements_until_settled(backend):
    alice, bob = backend.open(annotator="alice"), backend.open(annotator="bob")
    alice.set_label_names(["cat", "dog", "bird"])
    alice.label_many([("a.png", "cat"), ("b.png", "dog"), ("c.png", "bird")])
    bob.label_many([("a.png", "cat"), ("b.png", "cat")])
    (conflict,) = alice.conflicts()
    assert (conflict.path, conflict.standing, conflict.labels) == (
        "b.png",
        "dog",
        {"alice": "dog", "bob": "cat"},
    )
    assert [r.agreement for r in alice.records()] == ["agree", "conflict", ""]
    bob.settle("b.png", "cat")
    assert alice.conflicts() == [] and alice.get("b.png") == "cat"
    carol = backend.open(annotator="carol")
    carol.label("b.png", "cat")  # agrees with the decision: still settled
    assert alice.conflicts() == []
    carol.label("b.png", "bird")  # disagrees after it was settled: open again
    assert [c.path for c in alice.conflicts()] == ["b.png"]


def test_status_rules():
    assert status({"a": ("x", 1)}, None) == ""
    assert status({"a": ("x", 1), "b": ("x", 2)}, None) == "agree"
    assert status({"a": ("x", 1), "b": ("y", 2)}, None) == "conflict"
    assert status({"a": ("x", 1), "b": ("y", 2)}, ("y", 3)) == "settled"
    assert status({"a": ("x", 1), "b": ("y", 4)}, ("x", 3)) == "conflict"
    assert status({"": ("x", 0), "a": ("y", 2)}, None) == ""  # an unknown annotator does not count


def test_double_label_candidates_are_deterministic_and_never_the_annotators_own(backend):
    alice, bob = backend.open(annotator="alice"), backend.open(annotator="bob")
    alice.set_label_names(["cat"])
    paths = [f"img/{i:04d}.png" for i in range(400)]
    alice.label_many([(p, "cat") for p in paths])
    bob.label_many([(p, "cat") for p in paths[:50]])
    for_bob = bob.double_label_candidates(0.1)
    assert for_bob == bob.double_label_candidates(0.1)  # the same every time, on every machine
    assert not set(for_bob) & set(paths[:50])  # never what bob labelled already
    assert all(share_point(p) < 0.1 for p in for_bob)
    assert 15 <= len(for_bob) <= 60  # about 10% of the 350 bob has not labelled
    assert set(for_bob) <= set(bob.double_label_candidates(0.2))  # a larger share only adds
    assert alice.double_label_candidates(0.5) == []  # alice labelled them all
    assert set(alice.double_label_candidates(1.0, annotator="carol")) == set(paths)
    assert bob.double_label_candidates(0) == []
    with pytest.raises(ValueError, match="double_label=1.5 is invalid"):
        bob.double_label_candidates(1.5)
