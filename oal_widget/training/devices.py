"""Where the model runs: TensorFlow's default device, or a user's ``tf.distribute`` strategy, and how
many CPU threads TensorFlow may take.

Everything that differs under a strategy is here: building in its scope (variables mirrored per
device), batches padded to a multiple of the replicas (Keras fails on a replica that gets no example),
and prediction through the distributed ``predict`` (``predict_on_batch`` returns one copy per replica).

Training runs beside a browser, a Jupyter server and the kernel that handle the person's keys. When
TensorFlow's threads fill every core, the next image waits for CPU (measured with bench/key_to_image.py
on 2 cores: key-to-image p99 323 ms with TensorFlow on both cores, 173 ms with one left free). So by
default TensorFlow gets every core but one.
"""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np

log = logging.getLogger(__name__)


def tf_threads(setting) -> int | None:
    """The number of compute threads TensorFlow should use: ``"auto"``: every core but one (at least
    one); a number: that; None: TensorFlow's own choice."""
    if setting is None:
        return None
    if setting == "auto":
        return max(1, (os.cpu_count() or 2) - 1)
    return int(setting)


def limit_threads(setting, distributed: bool = False) -> None:
    """Apply ``tf_threads(setting)`` before TensorFlow's first operation (once TensorFlow ran in this
    process its thread pools are fixed: then nothing changes and the log says so). Under a user's
    ``tf.distribute`` strategy nothing is limited: its replicas need threads of their own."""
    n = tf_threads(setting)
    if n is None or distributed:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # initialised by earlier TensorFlow work in this kernel: keep its setting
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != n:
            log.info(
                "TensorFlow already started with %s threads; tf_threads=%r not applied",
                current or "all",
                setting,
            )
    return ""


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
            r = self.replicas

            def predict(X):
                X = X.astype(np.float32) if X.dtype == np.float16 else X
                n = len(X)
                if n % r:  # every replica needs a row (one image scored alone, a last short chunk)
                    X = np.concatenate([X, X[np.arange(r - n % r) % max(n, 1)]]) if n else X
                return model.predict(X, batch_size=max(len(X), 1), verbose=0)[:n]

            return predict

        def predict_on_batch(X):
            if X.dtype == np.float16:  # stored embeddings: TF's cast is about twice as fast as numpy's
                import tensorflow as tf

                X = tf.cast(tf.convert_to_tensor(X), tf.float32)
            return model.predict_on_batch(X)

        return predict_on_batch
