"""The Annotator panel, driven as ipyevents drives it: key dicts into its handler. Fake trainer, no TF."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading

import ipyevents
import ipywidgets as widgets
import pytest
from fake_trainer import Factory
from helpers import settle, wait_for
from PIL import Image

from oal_widget import Annotator
from oal_widget.messages import Update
from oal_widget.ui.label_editor import folder_names
from oal_widget.ui.panel import DEFAULT_KEYS, merge_keymap

LABELS = ["zero", "one", "two"]
SHAPE = (16, 16, 1)
CONTRACT_CLASSES = {
    "oal-panel",
    "oal-image",
    "oal-filename",
    "oal-test-flag",
    "oal-prediction",
    "oal-status",
    "oal-progress",
    "oal-plot",
    "oal-distribution",
    "oal-label-button",
    "oal-stop",
    "oal-keys-hint",
    "oal-error",
    "oal-skipped",
    "oal-done",
}


def key(name: str, **changes) -> dict:
    """A keydown message exactly as ipyevents 2 sends it (see its _send_dom_event)."""
    event = {
        "altKey": False,
        "ctrlKey": False,
        "metaKey": False,
        "shiftKey": False,
        "type": "keydown",
        "timeStamp": 1234.5,
        "code": "",
        "key": name,
        "location": 0,
        "repeat": False,
        "target": {"tagName": "DIV", "id": "", "className": "lm-Widget oal-panel ipyevents-watched"},
        "event": "keydown",
    }
    event.update(changes)
    return event


def walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def classes(widget) -> set[str]:
    return {c for w in walk(widget) for c in w._dom_classes}


def make(root, labels=LABELS, **kw) -> tuple[Annotator, Factory]:
    factory = kw.pop("trainer_factory", None) or Factory()
    kw.setdefault("input_shape", SHAPE)
    return Annotator(root, labels, trainer_factory=factory, **kw), factory


@pytest.fixture
def panel(small_digits):
    annotator, factory = make(small_digits)
    yield annotator, factory
    annotator.session.close()


# --- structure -----------------------------------------------------------------------------
def test_is_a_vbox_with_the_contract_classes_and_an_event_before_display(panel):
    annotator, _ = panel
    assert isinstance(annotator, widgets.VBox)
    assert CONTRACT_CLASSES <= classes(annotator)
    assert isinstance(annotator.event, ipyevents.Event)
    assert annotator.event.source is annotator
    assert annotator.event.watched_events == ["keydown"]
    assert annotator.event.prevent_default_action is True
    assert len([b for b in walk(annotator) if "oal-label-button" in b._dom_classes]) == 3


def test_the_plots_show_a_picture_before_the_first_figure(panel):
    """Never the browser's broken-image icon: a placeholder PNG until matplotlib has drawn."""
    annotator, _ = panel
    for image in (annotator.plots.plot, annotator.plots.distribution):
        png = bytes(image.value)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and Image.open(io.BytesIO(png)).size[0] > 100


def test_style_makes_the_hint_say_keys_live_only_when_watched(panel):
    annotator, _ = panel
    style = annotator.children[0].value
    assert ".oal-panel.ipyevents-watched" in style
    hint = annotator._hint.value
    assert "keys live" in hint and "oal-keys-on" in hint and "oal-keys-off" in hint
    assert "pointer is over the panel" in annotator._help.value


def test_the_key_sink_is_focused_while_the_pointer_is_over_the_labelling_panel(panel, monkeypatch):
    # Notebook 7 matches its command-mode shortcuts before ipyevents sees a key, but never on a
    # focused text input: the panel keeps its invisible Text focused while the pointer is over it.
    annotator, _ = panel
    sink = annotator._keysink
    assert "oal-keysink" in classes(annotator) and isinstance(sink, widgets.Text)
    assert ".oal-keysink" in annotator._style.value and "opacity: 0" in annotator._style.value
    pointer = annotator._pointer_event
    assert pointer.source is annotator and pointer.prevent_default_action is False
    assert pointer.watched_events == ["mouseenter", "mouseup", "mouseleave"]
    sent: list[dict] = []
    monkeypatch.setattr(sink, "send", sent.append)
    for kind in ["mouseenter", "mouseup", "mouseleave"]:
        annotator._on_pointer({"event": kind})
    assert sent == [{"do": "focus"}, {"do": "focus"}, {"do": "blur"}]
    sink.value = "12"  # typed while ipyevents did not listen: dropped, never a label
    annotator._on_pointer({"event": "mouseenter"})
    assert sink.value == "" and annotator.labels == {}


def test_in_the_label_editor_keys_type_the_name_and_stay_live_after_start(small_digits):
    """ipyevents listens from the first time the pointer enters the panel: in the editor the keys type
    into the name box (it takes them from the box), and after "start labelling" they label at once."""
    annotator, factory = make(small_digits, labels=None)
    try:
        assert annotator.event.watched_events == ["keydown"]
        for _ in range(3):  # the proposed folder names
            annotator.editor.remove(0)
        for k in ["c", "a", "t", "x", "Backspace", "Enter", "d", "o", "g", "Enter"]:
            annotator._on_key(key(k))
        assert annotator.editor.labels == ["cat", "dog"] and annotator.editor.new_label.value == ""
        assert annotator.labels == {} and factory.trainers == []
        annotator._on_key(key("Enter"))  # the box is empty: Enter starts labelling
        assert annotator.session.label_names == ["cat", "dog"]
        first = annotator.session.current
        annotator._on_key(key("2"))  # no pointer event in between: the keys are live at once
        assert annotator.labels == {first: "dog"}
    finally:
        annotator.session.close()


def test_a_wrong_folder_raises_before_any_widget_exists(tmp_path):
    from ipywidgets.widgets.widget import _instances

    before = len(_instances)
    with pytest.raises(FileNotFoundError, match="missing"):
        make(tmp_path / "missing")
    with pytest.raises(ValueError, match="keymap"):
        make(tmp_path, keymap={"a": "fly"})
    assert len(_instances) == before


def test_label_buttons_show_their_keys_letters_after_the_digits(small_digits):
    names = [f"c{i}" for i in range(12)]
    annotator, _ = make(small_digits, labels=names)
    descriptions = [b.description for b in annotator.labelling.label_buttons]
    assert descriptions[0] == "1 · c0" and descriptions[9] == "0 · c9"
    assert descriptions[10:] == ["a · c10", "b · c11"]
    annotator.labelling.label_buttons[11].click()
    assert "c11" in annotator.labels.values()


# --- keys ------------------------------------------------------------------------------------
def test_number_key_labels_and_shows_the_next_image(panel):
    annotator, factory = panel
    s = annotator.session
    first = s.current
    following = s.upcoming(1)[0]
    annotator._on_key(key("2"))
    assert annotator.labels == {first: "one"}
    assert s.current == following
    assert annotator.labelling.image.value == s.display_png(following)
    assert annotator.labelling.filename.value == following
    assert annotator.labelling.progress.value.startswith("1 / 24 labelled · test 0 / ")
    assert annotator._error.value == ""


def test_label_bars_follow_the_keys_without_a_trainer_update(panel):
    # No evaluation or query happens here: the bars must still show the new counts, soon after.
    annotator, _ = panel
    before = annotator.plots.distribution.value
    for name in ("1", "1", "3"):
        annotator._on_key(key(name))
    wait_for(lambda: annotator.plots.plotted_counts == {"zero": 2, "one": 0, "two": 1})
    assert annotator.plots.distribution.value != before


def test_undo_skip_back_keys(panel):
    annotator, _ = panel
    s = annotator.session
    first = s.current
    annotator._on_key(key("1"))
    annotator._on_key(key("Backspace"))
    assert s.current == first and annotator.labels == {}
    assert annotator.labelling.filename.value == first
    annotator._on_key(key("ArrowRight"))
    assert s.current != first and s.order()[-1] == first
    annotator._on_key(key("ArrowLeft"))
    assert s.current == first


def test_enter_accepts_the_prediction(panel):
    annotator, factory = panel
    s = annotator.session
    current = s.current
    annotator._on_key(key("Enter"))
    assert annotator.labels == {} and "no prediction" in annotator._error.value
    factory.last.publish(Update(status="training", predictions={current: ("two", 0.75)}))
    settle(annotator)
    assert annotator.labelling.prediction.value.startswith("model says: two (75%)")
    annotator._on_key(key("Enter"))
    assert annotator.labels == {current: "two"}


def test_enter_accepts_the_prediction_on_screen_not_a_newer_one(panel):
    """The session may already know a newer prediction than the screen shows (an update between two
    redraws): Enter labels with what the person saw."""
    annotator, factory = panel
    s = annotator.session
    current = s.current
    factory.last.publish(Update(status="training", predictions={current: ("two", 0.75)}))
    settle(annotator)
    s.apply(Update(status="training", predictions={current: ("one", 0.9)}))  # not on screen yet
    annotator._on_key(key("Enter"))
    assert annotator.labels == {current: "two"}


def test_a_test_image_shows_no_prediction_and_enter_asks_for_a_key(small_digits):
    annotator, factory = make(small_digits, test_fraction=0.5)
    s = annotator.session
    while not s.is_test(s.current):
        annotator._on_key(key("1"))
    test_image = s.current
    factory.last.publish(Update(status="training", predictions={test_image: ("two", 0.99)}))
    settle(annotator)
    assert "no prediction shown" in annotator.labelling.prediction.value
    annotator._on_key(key("Enter"))
    assert s.label_of(test_image) is None and s.current == test_image
    assert "needs your own label" in annotator._error.value
    annotator.session.close()


def test_p_pauses_and_resumes_and_question_mark_shows_help(panel):
    annotator, factory = panel
    annotator._on_key(key("p"))
    assert annotator.session.paused and annotator.labelling.pause.description.startswith("resume")
    annotator._on_key(key("p"))
    assert not annotator.session.paused
    assert annotator._help.layout.display == "none"
    annotator._on_key(key("?", shiftKey=True))  # '?' needs shift on most keyboards: allowed
    assert annotator._help.layout.display != "none"


@pytest.mark.parametrize(
    "event",
    [
        key("x"),
        key("F5"),
        key("4"),  # only three labels
        key("1", ctrlKey=True),
        key("1", metaKey=True),
        key("1", altKey=True),
        key("1", repeat=True),
        key("1", type="keyup", event="keyup"),
        {"type": "keydown"},  # no key at all
    ],
)
def test_ignored_keys_change_nothing(panel, event):
    annotator, factory = panel
    s = annotator.session
    first = s.current
    annotator._on_key(event)
    assert s.current == first and annotator.labels == {}
    assert factory.last.commands == []
    assert annotator._error.value == ""


def test_keymap_override(small_digits):
    annotator, _ = make(small_digits, keymap={"a": ("label", 0), "1": None, "x": "skip"})
    s = annotator.session
    first = s.current
    annotator._on_key(key("1"))
    assert annotator.labels == {}
    annotator._on_key(key("x"))
    assert s.current != first
    second = s.current
    annotator._on_key(key("a"))
    assert annotator.labels == {second: "zero"}
    assert annotator.labelling.label_buttons[0].description == "a · zero"
    assert DEFAULT_KEYS["1"] == ("label", 0)  # the defaults themselves are untouched


@pytest.mark.parametrize(
    "keymap, says",
    [
        ({"a": "explode"}, "keymap['a']"),
        ({"a": ("label", -1)}, "keymap['a']"),
        ({"": "skip"}, "keymap key"),
        (["a"], "keymap="),
    ],
)
def test_bad_keymap_names_the_key(keymap, says):
    with pytest.raises(ValueError, match=r"keymap") as e:
        merge_keymap(keymap)
    assert says in str(e.value)


def test_an_error_in_the_handler_is_shown_not_raised(panel, monkeypatch):
    annotator, _ = panel

    def broken(name):
        raise RuntimeError("disk full")

    monkeypatch.setattr(annotator.session, "label", broken)
    annotator._on_key(key("1"))  # must not raise into ipyevents
    assert "RuntimeError: disk full" in annotator._error.value


# --- updates from the trainer thread -----------------------------------------------------------
def test_an_update_from_a_thread_redraws_status_and_plots(panel):
    annotator, factory = panel
    plot_before = annotator.plots.plot.value
    assert "oal-plot-has-metrics" not in annotator.plots.plot._dom_classes  # the placeholder, not a curve
    annotator._on_key(key("1"))
    row = {"n_labels": 1, "accuracy": 0.5, "loss": 1.1, "n_test": 1, "seconds": 0.5}
    thread = threading.Thread(
        target=factory.last.publish, args=(Update(status="training", n_labels=1, metrics=(row,)),)
    )
    thread.start()
    thread.join(timeout=30)
    wait_for(lambda: "oal-plot-has-metrics" in annotator.plots.plot._dom_classes)
    assert annotator.plots.plot.value != plot_before
    assert bytes(annotator.plots.plot.value).startswith(b"\x89PNG")
    assert annotator.labelling.status.value.startswith("training · trained on 1 labels")
    assert annotator.history == [row]


def test_error_status_shows_a_retry_button(panel):
    annotator, factory = panel
    assert annotator.labelling.retry.layout.display == "none"
    factory.last.publish(Update(status="error", message="my_model_fn failed"))
    settle(annotator)
    assert annotator.labelling.retry.layout.display != "none"
    assert "my_model_fn failed" in annotator.labelling.status.value


def test_threshold_stop_from_the_trainer_shows_the_end_screen(panel):
    annotator, factory = panel
    factory.last.publish(
        Update(status="stopped", message="accuracy 0.97 >= 0.95", saved={"model": "m.keras"})
    )
    settle(annotator)
    assert annotator._done.layout.display != "none"
    assert "accuracy 0.97 &gt;= 0.95" in annotator._done.value
    annotator._on_key(key("1"))
    assert annotator.labels == {}  # keys are off on the end screen


# --- escaping ----------------------------------------------------------------------------------
def test_label_and_file_names_are_escaped(small_digits):
    bad = small_digits / "R&D <i>x.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    annotator, _ = make(small_digits, labels=["<b>x</b>", "a & b"], test_fraction=0)
    s = annotator.session
    while s.current != "R&D <i>x.png":  # bring the broken file on screen
        annotator._on_key(key("ArrowRight"))
        if s.current is None or len(s.skipped) > 0:
            break
    skipped_html = annotator._skipped.html.value
    assert "R&amp;D &lt;i&gt;x.png" in skipped_html and "<i>" not in skipped_html
    assert "&lt;b&gt;x&lt;/b&gt;" in annotator._help.value and "<b>x</b>" not in annotator._help.value
    assert annotator.labelling.label_buttons[0].description == "1 · <b>x</b>"  # a Button shows plain text
    annotator.stop()
    assert "<b>x</b>" not in annotator._done.value and "R&D <i>" not in annotator._done.value


def test_an_unreadable_current_image_is_skipped_with_a_note(small_digits):
    annotator, _ = make(small_digits, test_fraction=0)
    s = annotator.session
    nxt = s.upcoming(1)[0]
    (small_digits / nxt).write_bytes(b"GIF89a broken")
    s.thumbnails.clear()  # it may have been prefetched while still intact
    annotator._on_key(key("1"))
    assert s.current != nxt and s.current is not None
    assert nxt in annotator._error.value and nxt in annotator._skipped.html.value
    assert annotator.labelling.image.value == s.display_png(s.current)


# --- label editor ------------------------------------------------------------------------------
def test_label_editor_flow(small_digits):
    annotator, factory = make(small_digits, labels=None)
    assert "oal-label-editor" in classes(annotator) and "oal-image" not in classes(annotator)
    assert factory.trainers == []
    annotator._on_key(key("1"))  # typed into the name box, not a label
    assert annotator.labels == {} and annotator.editor.new_label.value == "1"
    annotator._on_key(key("Backspace"))
    assert annotator.editor.labels == ["0", "1", "2"]  # the class folders' names, proposed
    for _ in range(3):
        annotator.editor.rows.children[0].children[3].click()  # remove
    assert annotator.editor.labels == [] and annotator.editor.start.disabled

    for name in ["dog", "cat", "bird", "dog"]:  # Enter in the box delivers the value
        annotator.editor.new_label.value = name
    assert annotator.editor.labels == ["dog", "cat", "bird"]
    assert "already in the list" in annotator._error.value
    annotator.editor.new_label.value = "fish"
    annotator.editor.add_button.click()  # leaving the box already added it: nothing more
    assert annotator.editor.labels == ["dog", "cat", "bird", "fish"]
    rows = annotator.editor.rows.children
    rows[1].children[1].click()  # "cat" up
    assert annotator.editor.labels == ["cat", "dog", "bird", "fish"]
    annotator.editor.rows.children[0].children[2].click()  # "cat" down
    assert annotator.editor.labels == ["dog", "cat", "bird", "fish"]
    annotator.editor.rows.children[3].children[3].click()  # remove "fish"
    assert annotator.editor.labels == ["dog", "cat", "bird"]

    annotator.editor.start.click()
    assert annotator.session.label_names == ["dog", "cat", "bird"]
    assert factory.last.started and factory.last.label_names == ["dog", "cat", "bird"]
    assert annotator.event.watched_events == ["keydown"]
    assert "oal-image" in classes(annotator)
    first = annotator.session.current
    annotator._on_key(key("2"))
    assert annotator.labels == {first: "cat"}


def test_start_needs_two_labels(small_digits):
    annotator, _ = make(small_digits, labels=None)
    for _ in range(2):
        annotator.editor.remove(0)
    assert annotator.editor.labels == ["2"] and annotator.editor.start.disabled


def test_folder_names_are_proposed_only_when_every_image_is_in_a_class_folder():
    assert folder_names(["cat/a.jpg", "dog/b.jpg", "dog/c/d.png"]) == ["cat", "dog"]
    assert folder_names(["a.jpg", "cat/b.jpg", "dog/c.jpg"]) == []  # an image outside any folder
    assert folder_names(["cat/a.jpg", "cat/b.jpg"]) == []  # one folder is no list of classes
    assert folder_names([f"{i}/a.jpg" for i in range(41)]) == []  # too many to be classes


# --- stop and the end screen -------------------------------------------------------------------
def test_stop_button_saves_in_the_background_and_shows_where(panel):
    annotator, factory = panel
    annotator._on_key(key("1"))
    stop = next(w for w in walk(annotator) if "oal-stop" in w._dom_classes)
    stop.click()
    wait_for(lambda: annotator._done.layout.display != "none")
    assert factory.last.stopped
    done = annotator._done.value
    for name in ("annotations.sqlite", "model.keras", "metrics.csv"):
        assert name in done


def test_labelling_everything_ends_with_the_end_screen(tmp_path):
    for i in range(3):
        Image.new("L", (16, 16), 40 * i).save(tmp_path / f"img{i}.png")
    annotator, factory = make(tmp_path)
    for _ in range(3):
        annotator._on_key(key("1"))
    wait_for(lambda: annotator._done.layout.display != "none")
    assert "All images are labelled" in annotator._done.value
    assert factory.last.stopped
    assert len(annotator.labels) == 3


def test_python_api(panel):
    annotator, factory = panel
    annotator._on_key(key("3"))
    assert list(annotator.labels.values()) == ["two"]
    assert annotator.history == []
    assert annotator.model is None
    assert annotator.workdir == annotator.session.images / ".oal"
    saved = annotator.stop()
    assert set(saved) == {"labels", "model", "metrics"}


def test_rerunning_the_cell_stops_the_previous_trainer_first(small_digits):
    first, f1 = make(small_digits)
    first._on_key(key("1"))
    second, f2 = make(small_digits, labels=None)
    wait_for(lambda: f2.trainers and f2.last.started)
    assert f1.last.stopped  # stopped (and saved) before the new trainer began
    assert f2.last.resume_model is not None
    settle(first)
    assert first._done.layout.display != "none"
    assert second.labels == first.labels and len(second.labels) == 1


# --- no TensorFlow in the cell -------------------------------------------------------------------
def test_constructing_an_annotator_does_not_import_tensorflow(small_digits):
    """With the REAL trainer: TensorFlow may only be imported by the trainer's thread, never the cell's."""
    script = textwrap.dedent(
        f"""
        import sys, threading
        attempts = []

        class Watch:
            # Records who imports TensorFlow, and blocks it so this check stays fast.
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras"):
                    attempts.append(threading.current_thread().name)
                    raise ImportError("blocked by the test")
                return None

        sys.meta_path.insert(0, Watch())
        from oal_widget import Annotator
        a = Annotator({str(small_digits)!r}, ["zero", "one", "two"], input_shape=(16, 16, 1))
        assert "tensorflow" not in sys.modules, "constructing imported tensorflow"
        assert "MainThread" not in attempts, attempts
        import time
        deadline = time.monotonic() + 60
        while a.session.trainer_status != "error" and time.monotonic() < deadline:
            time.sleep(0.02)  # the thread tries the (blocked) import and reports an error
        assert attempts and set(attempts) == {{"oal-trainer"}}, attempts
        assert a.session.trainer_status in ("error", "stopped"), a.session.status
        print("ok", a.session.status)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")


def test_rerunning_the_cell_lets_go_of_the_older_panels_claims_before_building_its_order(small_digits):
    first, factory = make(small_digits)
    first._on_key(key("1"))
    rest = [p for p in first.session.order() if p != first.session.current]
    factory.last.publish(Update(status="training", n_labels=1, order=tuple(reversed(rest))))  # a query
    settle(first)
    first._on_key(key("2"))
    on_screen = first.session.current
    assert on_screen == rest[-1], "the ranked order, not the seeded one"
    old_store = first.session.store
    second, _ = make(small_digits, labels=None)
    assert old_store.closed, "the older session's connection is closed, not leaked"
    assert second.session.current == on_screen, "the image the person was on is not held for ten minutes"
    assert second.session.store.claimed_by_others() == set()
    labels = second.session.store.labels()
    first._on_key(key("1"))  # the older panel takes no more labels
    assert second.session.store.labels() == labels
    second.session.close()


def test_a_rerun_that_fails_after_retiring_the_older_panel_still_stops_it_and_says_why(small_digits):
    first, f1 = make(small_digits)
    first._on_key(key("1"))
    with pytest.raises(ValueError):
        make(small_digits, labels=list(reversed(LABELS)))  # reordered labels: refused after the store opened
    wait_for(lambda: f1.last.stopped, "the retired panel's trainer stopped (and saved)")
    settle(first)
    assert first._done.layout.display != "none" and "could not start" in first._done.value


def test_leaving_the_grid_gives_its_pages_images_back(small_digits):
    a, _ = make(small_digits)
    a._on_key(key("g"))
    settle(a)
    page = {t.path for t in a.modes.grid.tiles}
    assert page and page <= a.session.store.claimed()
    a._on_key(key("Escape"))
    settle(a)
    kept = a.session.store.claimed()
    assert a.session.current in kept
    assert page & kept <= set(a.session.order()[:9]), "the page's images not shown next are free again"
    assert len(page) > 9
