"""Weak augmentation of a training batch: each image shifted by a few pixels (FixMatch's "weak" view).

A few hundred labels leave a small CNN free to memorise where each stroke lies; a shift of up to an
eighth of the side teaches it that the class does not depend on that. Only images are shifted (never
embeddings of a frozen backbone); the border is filled from the nearest edge pixels.
"""

from __future__ import annotations

import numpy as np


def shift(X: np.ndarray, rng: np.random.Generator, fraction: float = 0.125) -> np.ndarray:
    """``X`` (n, h, w, c) with each image moved by up to ``fraction`` of its side, independently."""
    n, h, w = X.shape[:3]
    dy, dx = max(1, round(h * fraction)), max(1, round(w * fraction))
    padded = np.pad(X, ((0, 0), (dy, dy), (dx, dx), (0, 0)), mode="edge")
    oy = rng.integers(0, 2 * dy + 1, n)
    ox = rng.integers(0, 2 * dx + 1, n)
    rows = oy[:, None] + np.arange(h)[None]  # (n, h)
    cols = ox[:, None] + np.arange(w)[None]  # (n, w)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
