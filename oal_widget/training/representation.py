"""A representation learned from the pool's own images before any label: a small convolutional
autoencoder (the first stage of N2D, McConville et al. 2021) trained on a random sample of the pool in
the trainer's idle time, a short chunk at a time; an image's features are its code.

No label is used, only pixels of the pool the trainer was given (``simulate``'s oracle images are not
in it). Images are averaged down to at most ``SIDE`` pixels a side first, so the cost does not grow with
the image size; the sample is at most ``SAMPLE`` images, so it does not grow with the pool either: only
encoding the images a query looks at does (chunked and cached by the graph's feature space).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Images trained on (a random sample of a larger pool); their side is averaged down to at most SIDE.
SAMPLE, SIDE = 5000, 28
#: Gradient steps at most (and at most EPOCHS passes over the sample), images per step, steps per idle
#: chunk (~50-100 ms on one core at 28x28).
STEPS, EPOCHS, BATCH, STEPS_PER_CHUNK = 600, 20, 64, 3
#: Images decoded per idle chunk while reading the sample; code dimensions.
READ_CHUNK, CODE = 256, 32


def small(X: np.ndarray, side: int = SIDE) -> np.ndarray:
    """Images (n, h, w, c) averaged down to at most ``side`` pixels a side, padded to a multiple of 4."""
    n, h, w, c = X.shape
    fh, fw = max(1, -(-h // side)), max(1, -(-w // side))
    H, W = h // fh * fh, w // fw * fw
    X = X[:, :H, :W].reshape(n, H // fh, fh, W // fw, fw, c).mean(axis=(2, 4))
    ph, pw = -(H // fh) % 4, -(W // fw) % 4
    return np.pad(X, ((0, 0), (0, ph), (0, pw), (0, 0))).astype(np.float32)


class PoolAutoencoder:
    """Learns codes for the pool's images in chunks (``step``); ``vectors`` once ``ready``."""

    def __init__(self, pool, seed: int, steps: int | None = None, sample: int = SAMPLE):
        self.pool, self.steps = pool, STEPS if steps is None else steps
        self._rng = np.random.default_rng((seed, 5))
        paths = list(pool.paths)
        if len(paths) > sample:
            paths = [paths[i] for i in sorted(self._rng.choice(len(paths), sample, replace=False))]
        self._todo = paths
        self._read = 0
        self._X: list[np.ndarray] = []
        self._done = 0
        #: The reconstruction loss of the first and of the latest step.
        self.loss: tuple[float, float] | None = None
        self.encoder: Any = None
        self._model: Any = None
        self.ready = False
        #: Seconds spent in ``step`` (reading, training) and in ``vectors`` (encoding).
        self.seconds = {"read": 0.0, "train": 0.0, "encode": 0.0}

    def pending(self) -> bool:
        return not self.ready and len(self._todo) >= 2 * BATCH

    def step(self) -> tuple[str, int, int] | None:
        """One chunk of work: read a chunk of the sample, or a few gradient steps; (what, done, total),
        None when there is nothing left (ready, or too few images to learn from)."""
        import time

        if not self.pending():
            return None
        start = time.perf_counter()
        if self._read < len(self._todo):
            chunk = self._todo[self._read : self._read + READ_CHUNK]
            X, _ = self.pool.arrays(chunk)
            if len(X):
                self._X.append(small(X))
            self._read += len(chunk)
            self.seconds["read"] += time.perf_counter() - start
            return "reading images for the pool's representation", self._read, len(self._todo)
        if self._model is None:
            self._X = [np.concatenate(self._X)] if self._X else []
            if not self._X or len(self._X[0]) < 2 * BATCH:
                self._todo = []  # nothing worth learning from: the pixels stay the space
                return None
            self._build(self._X[0].shape[1:])
            self.steps = min(self.steps, max(STEPS_PER_CHUNK, EPOCHS * len(self._X[0]) // BATCH))
        X = self._X[0]
        for _ in range(min(STEPS_PER_CHUNK, self.steps - self._done)):
            batch = X[self._rng.integers(0, len(X), BATCH)]
            loss = float(np.ravel(self._model.train_on_batch(batch, batch))[0])
            self.loss = (self.loss[0] if self.loss else loss, loss)
            self._done += 1
        if self._done >= self.steps:
            self.ready = True
            self._X, self._model = [], None  # the encoder is all that is kept
        self.seconds["train"] += time.perf_counter() - start
        return "learning the pool's representation", self._done, self.steps

    def vectors(self, paths) -> tuple[np.ndarray, list[str]]:
        """(n, CODE) codes of the paths that load, and those paths (the graph's feature-space source)."""
        import time

        start = time.perf_counter()
        X, loaded = self.pool.arrays(list(paths))
        if not len(loaded) or self.encoder is None:
            return np.zeros((0, CODE), np.float32), []
        out = np.asarray(self.encoder.predict_on_batch(small(X)), np.float32)
        self.seconds["encode"] += time.perf_counter() - start
        return out, loaded

    def _build(self, shape) -> None:
        import keras
        from keras import layers

        h, w, c = shape
        inputs = keras.Input(shape)
        x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
        x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
        code = layers.Dense(CODE, name="code")(layers.Flatten()(x))
        y = layers.Dense(h // 4 * w // 4 * 64, activation="relu")(code)
        y = layers.Reshape((h // 4, w // 4, 64))(y)
        y = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(y)
        outputs = layers.Conv2DTranspose(c, 3, strides=2, padding="same")(y)
        model = keras.Model(inputs, outputs, name="pool_autoencoder")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        self._model = model
        self.encoder = keras.Model(inputs, code, name="pool_encoder")
