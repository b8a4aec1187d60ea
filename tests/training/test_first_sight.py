"""First sight is out of sample: an image the model has trained on, labelled or as a pseudo-label, is
never scored as if unseen (the review queue, the estimate and the pseudo-labels' trust gate rest on it)."""

from types import SimpleNamespace

from oal_widget.training.first_sight import FirstSight
from oal_widget.training.labelset import LabelSet


def test_an_image_trained_on_as_a_pseudo_label_is_no_first_sight():
    learner = SimpleNamespace(trained_paths={"a.png"}, pseudo=SimpleNamespace(used={"p.png"}))
    sight = FirstSight(learner, graph=None, labels=LabelSet(["x", "y"], []))
    assert sight.wants("new.png", fresh=True)
    assert not sight.wants("a.png", fresh=True), "in a batch with its label"
    assert not sight.wants("p.png", fresh=True), "in a batch with the model's own guess for it"


def test_the_estimate_gets_the_latest_half_of_the_first_sights_that_stand():
    """Early models nearly guess: their first sights would pull the estimate's temperature. The estimate
    takes those of the latest half of the person's training labels, oldest first; an undone one is gone."""
    import numpy as np

    graph = SimpleNamespace(blend_one=lambda p_network, p_graph: p_network)
    labels = LabelSet(["x", "y"], [])
    sight = FirstSight(
        SimpleNamespace(trained_paths=set(), pseudo=SimpleNamespace(used=set())), graph, labels
    )
    assert sight.for_estimate() == []
    for i in range(9):
        labels.add(f"{i}.png", "xy"[i % 2], "train")
        sight._parts[f"{i}.png"] = (np.array([i, 0.0]), None)
    labels.remove("8.png")  # undone: no longer a training label
    got = sight.for_estimate()
    assert [int(p[0]) for p, _ in got] == [4, 5, 6, 7]  # half of the eight that stand, the latest
    assert [k for _, k in got] == [0, 1, 0, 1]
