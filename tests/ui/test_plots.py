"""The panel's figures: real PNG bytes, a readable placeholder, thresholds, odd label names."""

import io
import threading

import pytest
from PIL import Image

from oal_widget.ui.plots import PNG_SIGNATURE, distribution_png, metrics_png

ROWS = [
    {"n_labels": 10, "accuracy": 0.4, "loss": 1.9, "n_test": 5, "seconds": 3.0},
    {"n_labels": 20, "accuracy": 0.6, "loss": 1.2, "n_test": 9, "seconds": 6.0},
    {"n_labels": 30, "accuracy": 0.8, "loss": 0.7, "n_test": 12, "seconds": 9.0},
]


def _image(png: bytes) -> Image.Image:
    assert png.startswith(PNG_SIGNATURE)
    img = Image.open(io.BytesIO(png))
    img.load()
    return img


def _ink(png: bytes) -> int:
    """Pixels that are not white: a crude measure of how much was drawn."""
    grey = _image(png).convert("L")
    return sum(1 for v in grey.tobytes() if v < 250)


def test_metrics_png_is_a_png_of_the_requested_size():
    img = _image(metrics_png(ROWS, size=(5, 3)))
    assert img.size == (500, 300)


def test_empty_rows_give_a_placeholder_not_an_error():
    empty = metrics_png([])
    curve = metrics_png(ROWS)
    _image(empty)
    # The placeholder is mostly blank (a line of text), the curve draws axes, lines and labels.
    assert _ink(empty) < _ink(curve)


def test_thresholds_are_drawn():
    plain = metrics_png(ROWS)
    with_lines = metrics_png(ROWS, thresholds={"accuracy": (None, 0.95), "loss": (0.05, None)})
    _image(with_lines)
    assert with_lines != plain


def test_rows_with_missing_values_still_draw():
    rows = [{"n_labels": 5, "accuracy": 0.5}, {"n_labels": 10, "accuracy": None, "loss": 1.0}]
    _image(metrics_png(rows))


def test_distribution_png_draws_every_label_including_odd_names():
    counts = {"cat": 3, "<b>x</b>": 0, "$\\frac$": 2, "a, b: c": 7, "x" * 60: 1}
    img = _image(distribution_png(counts))
    assert img.size == (400, 300)


@pytest.mark.parametrize("counts", [{}, {"cat": 0, "dog": 0}])
def test_distribution_with_no_labels_is_a_placeholder(counts):
    _image(distribution_png(counts))


def test_figures_can_be_drawn_from_several_threads_at_once():
    # The trainer's callback thread draws while the main thread may draw too: no pyplot state.
    results, errors = [], []

    def draw():
        try:
            results.append(metrics_png(ROWS))
            results.append(distribution_png({"a": 1, "b": 2}))
        except Exception as e:  # pragma: no cover - the assertion below reports it
            errors.append(e)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(results) == 8 and all(r.startswith(PNG_SIGNATURE) for r in results)
