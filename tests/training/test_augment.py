"""The weak view: every image moved by a few pixels, the same pixels, nothing else."""

import numpy as np

from oal_widget.training.augment import shift


def test_each_image_is_shifted_by_at_most_an_eighth_of_its_side_independently():
    X = np.zeros((64, 16, 16, 1), np.float32)
    X[:, 7, 7, 0] = 1.0  # one bright pixel in the middle of each image
    out = shift(X, np.random.default_rng(0))
    assert out.shape == X.shape and out.dtype == X.dtype
    where = np.array([np.argwhere(img[..., 0] == 1.0)[0] for img in out])
    assert (out.sum(axis=(1, 2, 3)) == 1).all()  # the pixel moved, nothing was added or lost
    assert np.abs(where - 7).max() <= 2 and len({tuple(w) for w in where}) > 5
