"""Shared fixtures: real images (scikit-learn's digits as PNG files), fresh workdirs."""

import os
import sys
from pathlib import Path

import pytest

# Test modules in sub-folders import the shared helpers (helpers.py, fake_trainer.py) from here.
sys.path.insert(0, str(Path(__file__).parent))

# Keep TensorFlow quiet and small in tests: 2 cores, no GPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """200 digits (20 per class) as 16x16 PNGs in class folders ``<digit>/digit_NNNN.png``."""
    from oal_widget.data.samples import write_digits

    root = tmp_path_factory.mktemp("digits")
    write_digits(root, per_class=20, size=16, seed=0)
    return root


@pytest.fixture
def small_digits(tmp_path):
    """A private, writable copy: 3 classes x 8 images, 16x16, for tests that change the folder."""
    from oal_widget.data.samples import write_digits

    root = tmp_path / "images"
    paths = write_digits(root, per_class=8, size=16, seed=1)
    for p in paths:  # keep digits 0, 1, 2 only
        if p.parent.name not in {"0", "1", "2"}:
            p.unlink()
    for d in root.iterdir():
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    return root


@pytest.fixture(scope="module")
def pool(digits_dir):
    """An ImagePool over ``digits_dir`` at the tests' small shape (one per module: pools cache arrays)."""
    from helpers import SHAPE

    from oal_widget.data.pool import ImagePool

    return ImagePool(digits_dir, SHAPE)


@pytest.fixture(scope="module")
def split(pool):
    """(train paths, test paths) of ``pool`` with the default fraction and seed."""
    from oal_widget.data.pool import split_test

    test = split_test(pool.paths, 0.2, 0)
    return [p for p in pool.paths if p not in set(test)], test


@pytest.fixture
def browser():
    """Debian's Chromium driven by Playwright (the browser tests); skipped where either is missing."""
    from jupyter_e2e import CHROMIUM, launch_chromium

    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make test does) or set E2E_CHROMIUM"
        )
    with sync_api.sync_playwright() as p:
        # Never `playwright install`: its CDN is unreachable here; Debian's Chromium is used instead.
        b = launch_chromium(p)
        yield b
        b.close()
