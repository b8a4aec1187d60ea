"""Every word on the panel true: the status line, why an image shows and how old its prediction is,
the grid's warning at low accuracy, and the numbers after an undo."""

from __future__ import annotations

import pytest
from fake_trainer import Factory
from helpers import settle

from oal_widget import Annotator
from oal_widget.messages import Update
from oal_widget.session.status import status_line
from oal_widget.ui.plots import metrics_png

LABELS = ["zero", "one", "two"]
ROW = dict(n_labels=6, accuracy=0.52, accuracy_low=0.32, accuracy_high=0.64, loss=1.0, n_test=2, seconds=0.1)


@pytest.fixture
def panel(small_digits):
    factory = Factory()
    annotator = Annotator(small_digits, LABELS, trainer_factory=factory, input_shape=(16, 16, 1))
    yield annotator, factory
    annotator.session.close()


def line(update, **kw) -> str:
    args = dict(needs_labels=False, started=True, stopped=False, paused=False, test_total=4) | kw
    return status_line(update, **args)


def test_the_status_line_says_starting_loading_and_the_estimate_with_its_band():
    assert line(Update(status="waiting"), started=False) == "starting the trainer"
    assert "previous session" not in line(Update(status="waiting"), started=False)
    loading = line(Update(status="importing", message="importing TensorFlow and building the model"))
    assert loading.startswith("loading TensorFlow") and "trained on 0" not in loading
    assert line(Update(status="waiting", message="fake trainer not started")).startswith("loading")
    text = line(Update(status="training", n_labels=6, metrics=(ROW,)))
    assert text == "training · trained on 6 labels · accuracy ≈ 0.52 (95%: 0.32–0.64) at 6 labels"


def test_waiting_with_labels_the_trainer_has_not_had_says_they_are_next(panel):
    annotator, factory = panel
    factory.last.publish(Update(status="waiting", n_labels=0))
    for name in ("1", "2"):
        annotator._on_key({"type": "keydown", "key": name})
    settle(annotator)
    status = annotator.labelling.status.value
    given = annotator.session.progress()["labelled"] - annotator.session.progress()["test_labelled"]
    assert status.startswith(f"{given} new labels to train on"), status


def test_a_prediction_says_why_it_shows_and_when_it_is_old(panel):
    annotator, factory = panel
    s = annotator.session
    predictions = {p: ("one", 0.55) for p in s.pool.paths}
    factory.last.publish(Update(status="training", n_labels=0, predictions=predictions))
    settle(annotator)
    while s.is_test(s.current):
        annotator._on_key({"type": "keydown", "key": "ArrowRight"})
    view = annotator.labelling
    assert view.prediction.value.startswith("model says: one (55%)")
    assert "predicted" not in view.prediction.value  # made at 0 labels, and none given since
    assert "least sure of come first" in view.why.value and "teach it the most" in view.why.value
    for _ in range(12):  # 10 or more training labels since that query: the prediction says so
        annotator._on_key({"type": "keydown", "key": "1" if not s.is_test(s.current) else "2"})
    while s.is_test(s.current):
        annotator._on_key({"type": "keydown", "key": "ArrowRight"})
    behind = s.progress()["labelled"] - s.progress()["test_labelled"]
    assert view.prediction.value.endswith(f"· predicted {behind} labels ago"), view.prediction.value


def test_the_grid_warns_at_low_accuracy_that_enter_stores_wrong_predictions(panel):
    annotator, factory = panel
    s = annotator.session
    predictions = {p: ("one", 0.55) for p in s.pool.paths}
    factory.last.publish(Update(status="training", metrics=(ROW,), predictions=predictions))
    settle(annotator)
    annotator._on_key({"type": "keydown", "key": "g"})
    status = annotator.modes.grid_view.status.value
    assert "right on about 52%" in status and "blind Enter stores its wrong predictions" in status
    good = dict(ROW, accuracy=0.95, accuracy_low=0.9)
    factory.last.publish(Update(status="training", metrics=(ROW, good), predictions=predictions))
    settle(annotator)
    annotator._on_key({"type": "keydown", "key": "Escape"})
    annotator._on_key({"type": "keydown", "key": "g"})
    assert "blind Enter" not in annotator.modes.grid_view.status.value


def test_after_an_undo_the_plot_is_drawn_again_saying_the_evaluation_had_more_labels(panel):
    annotator, factory = panel
    assert metrics_png([ROW], given=4) != metrics_png([ROW])  # "evaluated at 6 labels, 4 now"
    for name in ("1", "2", "3"):
        annotator._on_key({"type": "keydown", "key": name})
    factory.last.publish(Update(status="training", metrics=(dict(ROW, n_labels=3),)))
    settle(annotator)
    annotator._render_plots()
    drawn = annotator.plots.plot.value
    annotator._on_key({"type": "keydown", "key": "Backspace"})  # 2 labels now, the curve says 3
    annotator._render_plots()
    assert annotator.plots.plot.value != drawn
