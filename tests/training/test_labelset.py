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


def test_a_label_that_neither_trains_nor_grades_is_still_counted_as_given():
    labels = LabelSet(["a", "b"], test_paths=["t.png"])
    labels.add("x.png", "a", "train")
    labels.add("t.png", "b", "test")
    labels.remove("t.png", paid=True)  # shadowed by a training near-duplicate
    assert "t.png" not in labels.test and labels.paid == {"t.png"}
    labels.add("t.png", "b", "test")  # grades again (the near-duplicate's label was undone)
    assert not labels.paid
    labels.remove("t.png", paid=True)
    labels.remove("t.png")  # undone: no longer given
    assert not labels.paid and labels.train == {"x.png": 0}


def test_a_test_label_of_an_image_that_joined_the_split_as_it_was_labelled_grades():
    labels = LabelSet(["a", "b"], test_paths=["t.png"])
    labels.add("x.png", "a", "test")  # the store's split took it after the trainer's reserve was set
    assert "x.png" in labels.test_paths and labels.test == {"x.png": 0}
    labels.remove("x.png")  # undone: still a test image, never a training candidate
    assert "x.png" in labels.test_paths
