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
