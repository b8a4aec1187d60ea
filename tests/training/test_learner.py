"""The learner's batches: every label so far, the new one first, classes balanced on request."""

import numpy as np
import pytest
from helpers import labelset_of

from oal_widget.config import Config
from oal_widget.training.devices import Devices
from oal_widget.training.labelset import LabelSet
from oal_widget.training.learner import Learner

LABELS = [str(d) for d in range(10)]


def test_class_balance_gives_every_class_the_same_share_of_a_batch(pool, split, tmp_path):
    zeros = [p for p in split[0] if p.startswith("0/")][:9]
    one = [p for p in split[0] if p.startswith("1/")][:1]
    labels = labelset_of(zeros + one)
    config = Config(input_shape=(16, 16, 1), class_balance=True)
    w = Learner(pool, LABELS, config, tmp_path, Devices()).batch_weights(labels)
    y = np.array([int(p.split("/")[0]) for p in labels.train])
    assert w[y == 0].sum() == pytest.approx(0.5) and w[y == 1].sum() == pytest.approx(0.5)
    assert (
        Learner(pool, LABELS, config.replace(class_balance=False), tmp_path, Devices()).batch_weights(labels)
        is None
    )


def test_a_test_path_is_never_a_training_label_and_fresh_labels_come_first(split):
    train, test = split
    labels = LabelSet(LABELS, test)
    assert not labels.add(test[0], test[0].split("/")[0], "train")  # the split is fixed
    assert test[0] in labels.test and test[0] not in labels.train
    assert labels.add(train[0], "0", "train", sent_at=1.0) and not labels.add(train[0], "0", "train")
    labels.add(train[1], "2", "train")
    assert labels.fresh(5) == [train[0], train[1]]
    labels.trained([train[0]])
    assert labels.fresh(5) == [train[1]] and labels.latency[-1][0] == train[0]
    assert labels.problem(train[2], "cat", "train") and labels.problem(train[2], "0", "validation")
    assert labels.add(train[0], "1", "train") and labels.fresh(5) == [train[1], train[0]]  # a relabel: next
