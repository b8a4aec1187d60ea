"""More than ten labels by keyboard: letters after the digits (the panel's own keys keep their meaning),
and type-to-find (``/``) for any number of labels; in the single view, the grid and the review queue.
Kernel-side: key dicts as ipyevents sends them."""

from __future__ import annotations

import pytest
from fake_trainer import Factory
from test_panel import key

from oal_widget import Annotator
from oal_widget.ui.keys import DEFAULT_KEYS, LABEL_LETTERS, label_keys

THIRTY = [f"class{i:02d}" for i in range(30)]
#: Keys the panel uses for something else than a label: they never label.
PANEL_KEYS = ["Backspace", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Enter", "Delete", "Escape",
              "p", "?", "g", "G", "r", "/"]  # fmt: skip


def make(root, names):
    return Annotator(root, names, trainer_factory=Factory(), input_shape=(16, 16, 1), test_fraction=0.0)


@pytest.fixture
def thirty(small_digits):
    annotator = make(small_digits, THIRTY)
    yield annotator
    annotator.session.close()


def test_every_one_of_thirty_labels_has_its_own_key_and_no_panel_key_is_one(thirty):
    keys = label_keys(DEFAULT_KEYS, THIRTY)
    assert None not in keys and len(set(keys)) == 30
    assert keys[:10] == list("1234567890") and keys[10:] == list(LABEL_LETTERS[:20])
    assert not set(keys) & set(PANEL_KEYS)
    for panel_key in PANEL_KEYS:
        assert not isinstance(DEFAULT_KEYS[panel_key], tuple), panel_key


def test_each_of_the_thirty_keys_labels_with_its_label(thirty):
    s = thirty.session
    for name, k in zip(THIRTY[:24], label_keys(DEFAULT_KEYS, THIRTY), strict=False):  # 24 images
        path = s.current
        thirty._on_key(key(k))
        assert s.label_of(path) == name, (k, name)
    assert thirty._error.value == ""


def test_panel_keys_keep_their_meaning_with_thirty_labels(thirty):
    s = thirty.session
    thirty._on_key(key("p"))
    assert s.paused and thirty.labels == {}
    thirty._on_key(key("g"))
    assert thirty.modes.mode == "grid"
    thirty._on_key(key("Escape"))
    thirty._on_key(key("r"))
    assert thirty.modes.mode == "review"
    thirty._on_key(key("r"))
    thirty._on_key(key("?", shiftKey=True))
    assert thirty._help.layout.display != "none" and thirty.labels == {}


def test_caps_lock_letters_still_label(thirty):
    s = thirty.session
    path = s.current
    thirty._on_key(key("A"))  # Caps Lock: a capital without Shift
    assert s.label_of(path) == THIRTY[10]


def test_the_help_and_the_buttons_show_each_labels_key(thirty):
    text = thirty._help.value
    for name, k in zip(THIRTY, label_keys(DEFAULT_KEYS, THIRTY), strict=True):
        assert f"<kbd>{k}</kbd></td><td>label: {name}</td>" in text
    descriptions = [b.description for b in thirty.labelling.label_buttons]
    assert descriptions[10] == "a · class10" and descriptions[29] == "w · class29"
    assert "In the grid" in text and "In the review queue" in text


def test_labels_past_the_letters_are_typed_with_slash(small_digits):
    names = [f"n{i:02d}" for i in range(40)]
    annotator = make(small_digits, names)
    try:
        s = annotator.session
        assert label_keys(DEFAULT_KEYS, names)[33:] == [None] * 7
        assert "n35 (/ then type it)" in annotator._help.value
        assert annotator.labelling.label_buttons[35].description == "n35"
        path = s.current
        annotator._on_key(key("/"))
        for k in "n3":
            annotator._on_key(key(k))
        buttons = annotator.labelling.label_buttons
        shown = [b.description for b in buttons if b.layout.display != "none"]
        assert len(shown) == 10 and all("n3" in d for d in shown), "typing narrows the label list"
        assert "Enter picks “n30”" in annotator.modes.filter_line.value
        assert annotator.labels == {}, "typing labels nothing ('n' and '3' are label keys otherwise)"
        annotator._on_key(key("5"))
        annotator._on_key(key("Enter"))
        assert s.label_of(path) == "n35"
        assert annotator.modes.filter_line.layout.display == "none"
        assert all(b.layout.display != "none" for b in buttons), "every button is back"
        path = s.current
        annotator._on_key(key("/"))
        annotator._on_key(key("x"))
        annotator._on_key(key("Escape"))  # cancels the filter, labels nothing
        assert s.label_of(path) is None and s.current == path
        annotator._on_key(key("/"))
        for k in ("n", "0", "ArrowDown", "ArrowDown", "Enter"):  # n00, n01, n02...: the third
            annotator._on_key(key(k))
        assert s.label_of(path) == "n02"
    finally:
        annotator.session.close()


def test_typed_labels_work_in_the_grid(small_digits):
    names = [f"n{i:02d}" for i in range(40)]
    annotator = make(small_digits, names)
    try:
        annotator._on_key(key("g"))
        grid = annotator.modes.grid
        tile = grid.under_cursor
        for k in ("/", "n", "3", "8", "Enter"):
            annotator._on_key(key(k))
        assert grid.gets(tile) == ("n38", "person") and grid.cursor == 1
        annotator._on_key(key("Enter"))
        assert annotator.session.store.record(tile.path).label == "n38"
    finally:
        annotator.session.close()


def test_the_label_editor_shows_each_labels_key(small_digits):
    annotator = Annotator(small_digits, None, trainer_factory=Factory(), input_shape=(16, 16, 1))
    try:
        assert annotator.editor.labels == ["0", "1", "2"]  # the class folders' names, proposed
        for _ in range(3):
            annotator.editor.remove(0)
        for i in range(35):
            annotator.editor.new_label.value = f"n{i:02d}"
        texts = [row.children[0].value for row in annotator.editor.rows.children]
        assert texts[10] == "a · n10" and texts[32] == "z · n32"
        assert texts[34] == "n34 (no key: / then type it)"
    finally:
        annotator.session.close()
