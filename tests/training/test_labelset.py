from oal_widget.training.labelset import LabelSet


def test_a_relabel_changes_the_training_set_and_wakes_the_trainer():
    labels = LabelSet(["a", "b"], test_paths=["t.png"])
    assert labels.add("x.png", "a", "train") is True  # new
    labels.trained(["x.png"])
    assert labels.add("x.png", "a", "train") is False  # the same label again: nothing to learn
    assert labels.add("x.png", "b", "train") is True  # a relabel: the model must learn it
    assert labels.train["x.png"] == 1 and labels.added == 1  # a relabel is not a new label
    assert labels.fresh(5) == ["x.png"]  # it goes into the very next step


def test_a_test_label_never_enters_training():
    labels = LabelSet(["a", "b"], test_paths=["t.png"])
    assert labels.add("t.png", "a", "train") is False
    assert "t.png" not in labels.train and labels.test["t.png"] == 0
