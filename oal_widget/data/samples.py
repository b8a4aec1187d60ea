"""Real sample data that ships inside packages, as PNG files: scikit-learn's handwritten digits and
scikit-image's face crops.

Used by ``scripts/make_sample_images.py`` (the committed ``images/``), by the tests and by the
benchmarks. No download: the 1,797 digits (8x8, 16 grey levels) come with scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def load_digits_arrays():
    """(images uint8 (n, 8, 8) with ink dark on white, targets (n,))."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # scikit-learn is a dev dependency only
        raise ImportError("sample digits need scikit-learn: pip install 'oal_widget[dev]'") from e
    digits = load_digits()
    images = (255 - digits.images * (255 / 16)).round().astype(np.uint8)
    return images, digits.target


def write_digits(out, per_class: int | None = 30, size: int = 32, seed: int = 0) -> list[Path]:
    """Write digits as ``out/<digit>/digit_<index>.png``; the folder name is the true class.

    ``per_class=None`` writes all 1,797. The choice of images is a seeded random draw.
    """
    out = Path(out)
    images, targets = load_digits_arrays()
    rng = np.random.default_rng(seed)
    written = []
    for cls in range(10):
        idx = np.flatnonzero(targets == cls)
        if per_class is not None:
            idx = np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
        folder = out / str(cls)
        folder.mkdir(parents=True, exist_ok=True)
        for i in idx:
            path = folder / f"digit_{i:04d}.png"
            Image.fromarray(images[i]).resize((size, size), Image.Resampling.BICUBIC).save(path)
            written.append(path)
    return written


def write_faces(out, size: int = 25) -> list[Path]:
    """scikit-image's 200 LFW crops (100 faces, 100 background patches, 25x25 grey) as
    ``out/face/face_NNN.png`` and ``out/background/background_NNN.png``: a second real image set, of
    another look and size than the digits, for evidence that carries over. No download."""
    try:
        from skimage.data import lfw_subset
    except ImportError as e:  # scikit-image is a dev dependency only
        raise ImportError("the face crops need scikit-image: pip install 'oal_widget[dev]'") from e
    images = (np.clip(lfw_subset(), 0, 1) * 255).round().astype(np.uint8)
    out = Path(out)
    written = []
    for i, image in enumerate(images):
        name = "face" if i < 100 else "background"
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}_{i:03d}.png"
        Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC).save(path)
        written.append(path)
    return written
