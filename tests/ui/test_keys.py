"""Keys and actions without widgets: the keymap's checks, reading ipyevents' dicts, what an action does."""

import pytest
from fake_trainer import Factory

from oal_widget.session.session import Session
from oal_widget.ui.keys import DEFAULT_KEYS, help_html, merge_keymap, perform, pressed


def test_pressed_ignores_held_and_modified_keys_and_other_events():
    assert pressed({"type": "keydown", "key": "1"}) == "1"
    assert pressed({"event": "keydown", "key": "1"}) == "1"
    assert pressed({"type": "keydown", "key": "1", "repeat": True}) is None
    assert pressed({"type": "keydown", "key": "c", "ctrlKey": True}) is None
    assert pressed({"type": "keyup", "key": "1"}) is None


def test_merge_keymap_names_what_is_wrong():
    assert merge_keymap({"a": ("label", 0), "p": None})["a"] == ("label", 0)
    assert "p" not in merge_keymap({"p": None})
    for bad, words in [({"": "skip"}, "keymap key"), ({"x": "fly"}, "keymap['x']"), ("x", "keymap=")]:
        with pytest.raises(ValueError, match=words.replace("[", r"\[")):
            merge_keymap(bad)


def test_perform_acts_on_the_session_and_says_what_went_wrong(small_digits):
    session = Session(small_digits, ["0", "1", "2"], trainer_factory=Factory(), input_shape=(16, 16, 1))
    try:
        assert perform(session, "undo", None) == "nothing to undo in this session"
        assert perform(session, "back", None) == "no previous image"
        first = session.current
        assert perform(session, ("label", 1), None) == "" and session.label_of(first) == "1"
        assert perform(session, ("label", 9), None) == ""  # no tenth label: nothing happens
        assert "press a label key" in perform(session, "accept", None)
        assert perform(session, "retry", None) == "nothing to retry: the model has no error"
        assert "label: 2" in help_html(DEFAULT_KEYS, session.label_names)
    finally:
        session.close()
