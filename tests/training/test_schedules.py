"""Schedules (shrink_perturb, refit) reset when the training labels doubled and add a catch-up fit."""

import numpy as np
import pytest

from oal_widget.config import Config
from oal_widget.messages import Labelled
from oal_widget.training.schedules import RESET_MIN_LABELS
from oal_widget.training.trainer import Trainer

CFG = Config(input_shape=(16, 16, 1), train_steps=2, batch_size=16, eval_every=5, query_every=5)
LABELS = [str(d) for d in range(10)]


@pytest.mark.parametrize("schedule", ["shrink_perturb", "refit"])
def test_schedules_reset_when_labels_doubled_and_catch_up(pool, split, tmp_path, schedule):
    trainer = Trainer(pool, LABELS, CFG.replace(schedule=schedule), test_paths=split[1], workdir=tmp_path)
    assert trainer.build()

    def give(paths):
        for p in paths:
            trainer.handle(Labelled(p, p.split("/")[0]))

    give(split[0][: RESET_MIN_LABELS - 1])
    before = trainer.model
    kernel = np.array(before.get_layer("embedding").kernel)
    assert trainer.schedule.maybe_reset(trainer.learner, RESET_MIN_LABELS - 1) == 0  # too few labels
    give(split[0][RESET_MIN_LABELS - 1 : RESET_MIN_LABELS])
    steps = []
    original = trainer.learner.step
    trainer.learner.step = lambda labels: steps.append(1) or original(labels)
    assert trainer.train_round()  # the reset is due at the start of this round, with its catch-up
    assert trainer.schedule.labels_at_reset == RESET_MIN_LABELS
    assert len(steps) > CFG.train_steps  # the catch-up ran inside the round
    if schedule == "refit":
        assert trainer.model is not before
    else:
        after = np.array(trainer.model.get_layer("embedding").kernel)
        assert trainer.model is before
        assert np.linalg.norm(after) < 0.6 * np.linalg.norm(kernel)  # shrunk to 0.4 w + 0.1 fresh
    assert trainer.schedule.maybe_reset(trainer.learner, 30) == 0  # 30 < 2 x 20: no reset yet
