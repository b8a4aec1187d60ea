"""The review queue in the panel: ``r`` (and its button), confirm with Enter, fix with a label key, next,
previous, undo, leave. Fake trainer with first-sight probabilities, real store and images."""

from __future__ import annotations

import numpy as np
import pytest
from fake_trainer import Factory
from test_panel import classes, key

from oal_widget import Annotator

LABELS = ["0", "1", "2"]


@pytest.fixture
def panel(small_digits):
    """Five training labels, each with the probabilities the model gave it before training on it."""
    factory = Factory()
    annotator = Annotator(
        small_digits, LABELS, trainer_factory=factory, input_shape=(16, 16, 1), test_fraction=0
    )
    first = {}
    for k in range(5):
        path = annotator.session.current
        annotator._on_key(key(str(int(path.split("/")[0]) + 1)))  # the right label
        p = np.full(3, 0.05)
        p[int(path.split("/")[0])] = 0.9 - 0.15 * k
        first[path] = p / p.sum()
    factory.last.first_sight = first
    yield annotator, factory, sorted(first, key=lambda p: first[p].max())
    annotator.session.close()


def test_r_shows_the_likeliest_mistake_first_and_r_or_escape_leaves(panel):
    annotator, _, worst_first = panel
    annotator._on_key(key("r"))
    view = annotator.modes.review_view
    assert annotator.modes.mode == "review" and "oal-review" in classes(annotator)
    assert view.filename.value == worst_first[0]
    assert bytes(view.image.value) == annotator.session.display_png(worst_first[0])
    assert "1 of 5" in view.position.value and "your own label" in view.info.value
    annotator._on_key(key("r"))
    assert annotator.modes.mode == "single"
    annotator.labelling.review_button.click()
    assert annotator.modes.mode == "review"
    annotator._on_key(key("Escape"))
    assert annotator.modes.mode == "single" and "oal-image" in classes(annotator)


def test_enter_confirms_a_label_key_fixes_with_source_review_backspace_undoes(panel):
    annotator, factory, worst_first = panel
    s = annotator.session
    annotator._on_key(key("r"))
    view = annotator.modes.review_view
    annotator._on_key(key("Enter"))  # keep the label
    assert s.store.record(worst_first[0]).source == "person"
    assert view.filename.value == worst_first[1]
    fixed = worst_first[1]
    wrong = next(n for n in LABELS if n != s.label_of(fixed))
    annotator._on_key(key(str(LABELS.index(wrong) + 1)))
    record = s.store.record(fixed)
    assert (record.label, record.source) == (wrong, "review")
    assert factory.last.labels()[fixed] == wrong
    assert view.filename.value == worst_first[2]
    annotator._on_key(key("Backspace"))
    assert s.store.record(fixed).source == "person" and view.filename.value == fixed
    annotator._on_key(key("ArrowRight"))
    assert view.filename.value == worst_first[2]
    annotator._on_key(key("ArrowLeft"))
    assert view.filename.value == fixed
    annotator._on_key(key("ArrowLeft"))
    assert "first image" in annotator._error.value
    view.confirm.click()  # the pointer too
    assert view.filename.value == worst_first[2]


def test_an_empty_queue_says_why(small_digits):
    annotator = Annotator(small_digits, LABELS, trainer_factory=Factory(), input_shape=(16, 16, 1))
    try:
        annotator._on_key(key("r"))
        view = annotator.modes.review_view
        assert "nothing to review" in view.position.value and view.confirm.disabled
        annotator._on_key(key("Enter"))
        assert "nothing to review" in annotator._error.value and annotator.labels == {}
    finally:
        annotator.session.close()


def test_the_insight_panel_counts_labels_by_source(panel):
    annotator, _, worst_first = panel
    annotator._on_key(key("r"))
    annotator._on_key(key("3" if annotator.session.label_of(worst_first[0]) != "2" else "1"))
    from oal_widget.ui.insight import sources_html

    text = sources_html(annotator.session)
    assert "person 4" in text and "review 1" in text and "accepted 0" in text
    assert "5 training labels" in text
