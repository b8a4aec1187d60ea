"""Continuous-training schedules: ``warm`` (one model updated for ever), ``shrink_perturb``, ``refit``.

A warm model that saw its first labels for thousands of steps generalises worse than one trained on all
labels together (Ash & Adams 2020). Whenever the training labels have doubled, ``shrink_perturb``
shrinks the weights towards a fresh initialisation and ``refit`` starts from a new model; both then get
a catch-up fit added to the next round(s), still interruptible between steps.
"""

from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

#: shrink_perturb: weights become SHRINK * w + PERTURB * (a fresh initialisation).
SHRINK, PERTURB = 0.4, 0.1
#: The first reset comes at this many training labels, then one at each doubling.
RESET_MIN_LABELS = 20
#: After a reset, this many passes over the training labels (at least CATCH_UP_MIN_STEPS steps).
CATCH_UP_EPOCHS = 10
CATCH_UP_MIN_STEPS = 100


class Schedule:
    def __init__(self, config, model_fn):
        self.name = config.schedule
        self.batch_size = config.batch_size
        self.model_fn = model_fn
        self.labels_at_reset = 0

    def maybe_reset(self, learner, n_train: int) -> int:
        """Reset ``learner.model`` when due; returns the catch-up steps to add (0: no reset)."""
        if self.name == "warm" or n_train < RESET_MIN_LABELS or n_train < 2 * self.labels_at_reset:
            return 0
        self.labels_at_reset = n_train
        try:
            fresh = learner.new_model(self.model_fn)  # under the device setup's scope, like build()'s
        except Exception as e:  # keep training the current model: the reset is an optimisation
            log.warning("%s reset skipped: %s", self.name, e)
            return 0
        if self.name == "refit":
            learner.model = fresh
        else:
            old_w, new_w = learner.model.trainable_weights, fresh.trainable_weights
            if [tuple(w.shape) for w in old_w] != [tuple(w.shape) for w in new_w]:
                log.warning("shrink_perturb skipped: model_fn builds a model unlike the current one")
                return 0
            for w, f in zip(old_w, new_w, strict=True):
                w.assign(SHRINK * np.asarray(w) + PERTURB * np.asarray(f))
        return max(math.ceil(CATCH_UP_EPOCHS * n_train / self.batch_size), CATCH_UP_MIN_STEPS)
