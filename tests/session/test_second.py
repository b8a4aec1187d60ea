"""Double labelling: a share of the images another annotator labelled comes to this one too, blind;
the first label stands; agreement and conflicts come from both; a conflict is settled."""

from fake_trainer import Factory

from oal_widget.messages import Labelled, Update
from oal_widget.session.session import Session
from oal_widget.ui.insight import agreement_html

LABELS = ["zero", "one", "two"]


def make(root, who, **kw):
    factory = Factory()
    kw.setdefault("test_fraction", 0)
    s = Session(root, LABELS, trainer_factory=factory, input_shape=(16, 16, 1), annotator=who, **kw)
    return s, factory


def test_a_second_annotator_labels_a_share_of_the_first_ones_images_blind(small_digits):
    alice, _ = make(small_digits, "alice")
    first = {}
    for _ in range(12):
        path = alice.label("one")
        first[path] = "one"
    alice.close()
    bob, factory = make(small_digits, "bob", double_label=0.5)
    second = [p for p in bob.order() if p in first]
    assert 2 <= len(second) <= 10  # about half of alice's twelve, fixed by the paths
    assert all(bob.is_second_opinion(p) for p in second)
    factory.last.publish(Update(status="training", predictions={p: ("one", 0.9) for p in second}))
    for p in second:  # shown without alice's label and without the model's guess (it learnt alice's)
        assert bob.label_of(p) is None and bob.prediction(p) is None
    disagree = second[0]
    while bob.current is not None:
        path = bob.current
        bob.label("two" if path == disagree else "one")
    assert bob.store.get(disagree) == "one"  # alice's label stands until someone settles
    assert factory.last.labels()[disagree] == "one"  # and it is the one the model learns
    (pair,) = bob.agreement()
    assert (pair.a, pair.b, pair.n) == ("alice", "bob", len(second))
    assert pair.agreed == len(second) - 1
    (conflict,) = bob.conflicts()
    assert conflict.path == disagree and conflict.labels == {"alice": "one", "bob": "two"}
    html = agreement_html(bob)
    assert "alice / bob" in html and "kappa" in html and disagree in html
    bob.settle(disagree, "two")
    assert bob.store.get(disagree) == "two" and bob.conflicts() == []
    assert factory.last.commands[-1] == Labelled(disagree, "two", "train")  # the trainer learns it
    bob.close()


def test_no_double_labelling_by_default(small_digits):
    alice, _ = make(small_digits, "alice")
    done = {alice.label("one") for _ in range(6)}
    alice.close()
    bob, _ = make(small_digits, "bob")
    assert not done & set(bob.order())
    assert agreement_html(bob) == ""
    bob.close()


def test_surest_grid_pages_leave_second_opinions_to_the_single_view(small_digits):
    """A second opinion is blind: no grid tile (it would show the model's guess), and a surest page
    does not push it out of the order."""
    from oal_widget.session.grid import Grid

    alice, _ = make(small_digits, "alice")
    for _ in range(12):
        alice.label("one")
    alice.close()
    bob, factory = make(small_digits, "bob", double_label=1.0, grid_size=8)
    second = [p for p in bob.order() if bob.is_second_opinion(p)]
    assert len(second) >= 10
    factory.last.publish(Update(status="training", predictions={p: ("one", 0.99) for p in bob.pool.paths}))
    page = Grid(bob, surest=True)
    page.open()
    assert page.tiles and not {t.path for t in page.tiles} & set(second)
    assert set(second) <= set(bob.order()), "still asked, in the single view"
    bob.close()


def test_a_test_image_labelled_before_the_session_started_is_still_asked_blind(small_digits):
    alice, _ = make(small_digits, "alice", test_fraction=0.25)
    while not alice.is_test(alice.current):
        alice.label("one")
    test = alice.label("two")  # a test image
    alice.close()
    bob, _ = make(small_digits, "bob", test_fraction=0.25, double_label=1.0)
    assert bob.is_test(test) and bob.is_second_opinion(test) and bob.label_of(test) is None
    assert test in bob.order(), "his second opinion of a test image comes up, as it does after a refresh"
    bob.close()


def test_a_second_opinion_given_in_one_panel_is_not_asked_again_in_the_annotator_s_other_panel(small_digits):
    bob, _ = make(small_digits, "bob")
    first, _ = make(small_digits, "alice", double_label=1.0)  # two notebooks of hers on one folder
    other, _ = make(small_digits, "alice", double_label=1.0)
    path = bob.label("one")
    first.refresh()
    other.refresh()
    assert first.is_second_opinion(path) and other.is_second_opinion(path) and path in other.order()
    first.actions.label_page([(path, "one", "person")])  # her blind opinion, given in the first panel
    other.refresh()
    assert not other.is_second_opinion(path) and path not in other.order(), "asked for it again"
    assert other.label_of(path) == "one"
    for s in (bob, first, other):
        s.close()
