"""Where the model runs: TensorFlow's default device, or a user's ``tf.distribute`` strategy.

Everything that differs under a strategy is here: building in its scope (variables mirrored per
device), batches padded to a multiple of the replicas (Keras fails on a replica that gets no example),
and prediction through the distributed ``predict`` (``predict_on_batch`` returns one copy per replica).
"""

from __future__ import annotations

import contextlib

import numpy as np


class Devices:
    """The user's ``config.distribute`` strategy, or none."""

    def __init__(self, strategy=None):
        self.strategy = strategy

    def scope(self):
        """Build models in this (a model created elsewhere, e.g. a schedule's reset, must too)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    @property
    def replicas(self) -> int:
        if self.strategy is None:
            return 1
        return int(getattr(self.strategy, "num_replicas_in_sync", 1))

    def pad(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The batch repeated up to a multiple of the replicas (its own images: nothing new is learnt)."""
        r = self.replicas
        if r > 1 and len(X) % r:
            extra = np.arange(r - len(X) % r) % len(X)
            X, y = np.concatenate([X, X[extra]]), np.concatenate([y, y[extra]])
        return X, y

    def predictor(self, model):
        """A function ``X -> outputs`` for ``model`` that is right on this device setup."""
        if self.replicas > 1:

            def predict(X):
                X = X.astype(np.float32) if X.dtype == np.float16 else X
                return model.predict(X, batch_size=max(len(X), 1), verbose=0)

            return predict

        def predict_on_batch(X):
            if X.dtype == np.float16:  # stored embeddings: TF's cast is about twice as fast as numpy's
                import tensorflow as tf

                X = tf.cast(tf.convert_to_tensor(X), tf.float32)
            return model.predict_on_batch(X)

        return predict_on_batch
