"""Monte-Carlo dropout passes in which ONLY dropout is random.

``model(X, training=True)`` would also switch BatchNormalization to batch statistics and update its
moving averages with unlabelled images, silently changing a user's model. Here the model runs in
inference mode and each dropout layer alone is told it is training, for the duration of the passes.
"""

from __future__ import annotations

import contextlib

import numpy as np


def _dropout_types():
    import keras

    return (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)


def _layers(layer):
    yield layer
    for inner in getattr(layer, "layers", None) or ():
        if inner is not layer:
            yield from _layers(inner)


@contextlib.contextmanager
def dropout_only(model):
    """Within the block, ``model(X, training=False)`` keeps every dropout layer stochastic."""
    kinds = _dropout_types()
    patched = []
    for layer in _layers(model):
        if isinstance(layer, kinds) and "call" not in vars(layer):
            original = layer.call

            def call(inputs, *args, training=None, _original=original, **kwargs):
                return _original(inputs, *args, training=True, **kwargs)

            layer.call = call
            patched.append(layer)
    try:
        yield len(patched)
    finally:
        for layer in patched:
            del layer.call


def mc_probabilities(model, X: np.ndarray, passes: int) -> np.ndarray:
    """``passes`` stochastic forward passes: (passes, n, k) float64. Call under the trainer's lock."""
    with dropout_only(model):
        return np.stack([np.asarray(model(X, training=False), dtype=np.float64) for _ in range(passes)])
