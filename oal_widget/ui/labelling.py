"""The single-image labelling view: the image, what the model says of it, label and action buttons,
progress, the trainer's status and long work.

A thin view: every ``show_*``/``refresh`` reads the session and sets widget values, nothing else; the
panel calls them with its lock held. ``shown`` is the prediction on screen: the one Enter accepts.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from ..data.pool import ImageError
from . import keys as keys_module
from .image_slots import FILL_AFTER_S, FILL_LATEST_S, FILL_WAIT_S, ImageSlots
from .label_buttons import LabelButtons, action_button
from .style import IMAGE_SIDE

#: A prediction made this many training labels ago or more is marked as old.
STALE_LABELS = 10
#: Strategies that ask first for the images the model is least sure of.
UNSURE_FIRST = ("margin", "least_confidence", "ratio", "entropy", "bald")


def label(cls: str, value: str = "") -> widgets.Label:
    widget = widgets.Label(value)
    widget.add_class(cls)
    return widget


class LabellingView:
    """Args: ``keymap`` (merged), ``run(action)`` for the buttons, the panel's ``error`` line, its ``ui``
    thread (fills the image slots ahead of the keys)."""

    def __init__(self, keymap, run, error: widgets.Label, ui):
        self.keymap = keymap
        self._keys = keys_module.by_action(keymap)
        self._run = run
        self.error = error
        self._model_error = ""
        #: (path, label) of the prediction on screen, or None: what Enter accepts.
        self.shown: tuple[str, str] | None = None
        w = widgets
        self._ui = ui
        self.slots = ImageSlots(IMAGE_SIDE, ui.lock)
        #: Keys label in this view now (set by the panel: not while typing a label's name, not at the end).
        self.live = True
        self.filename = label("oal-filename")
        self.test_flag = label("oal-test-flag")
        self.prediction = label("oal-prediction")
        self.why = label("oal-why")
        self.current_label = label("oal-current-label")
        self.labels = LabelButtons(keymap, run)
        self.label_box = self.labels.box
        self.undo = self._action_button("undo")
        self.back = self._action_button("back")
        self.skip = self._action_button("skip")
        self.accept = self._action_button("accept")
        self.pause = self._action_button("pause")
        self.retry = self._action_button("retry", key=False)
        self.retry.layout.display = "none"
        self.grid_button = self._action_button("grid", cls="oal-grid-button")
        self.review_button = self._action_button("review", cls="oal-review-button")
        self.like_button = self._action_button("like", text="more like this", cls="oal-like-button")
        self.help_button = self._action_button("help")
        self.stop = self._action_button("stop", text="stop and save", key=False, cls="oal-stop")
        self.stop.button_style = "warning"
        self.action_buttons = [
            self.undo,
            self.back,
            self.skip,
            self.accept,
            self.pause,
            self.retry,
            self.grid_button,
            self.like_button,
            self.review_button,
            self.help_button,
            self.stop,
        ]
        self.bar = w.IntProgress(min=0, max=1, description="labelled", layout=w.Layout(width="95%"))
        self.test_bar = w.IntProgress(min=0, max=1, description="test", layout=w.Layout(width="95%"))
        self.progress = label("oal-progress")
        self.status = label("oal-status")
        # Long work of the trainer (caching / embedding the pool): shown only while it runs.
        self.work_bar = w.IntProgress(min=0, max=1, layout=w.Layout(width="60%"))
        self.work_text = w.Label()
        self.work = w.HBox([self.work_bar, self.work_text], layout=w.Layout(display="none"))
        self.work.add_class("oal-work-progress")
        side = w.VBox(
            [
                self.filename,
                self.test_flag,
                self.prediction,
                self.why,
                self.current_label,
                self.label_box,
                w.HBox(self.action_buttons, layout=w.Layout(flex_flow="row wrap")),
                self.bar,
                self.test_bar,
                self.progress,
                self.status,
                self.work,
            ],
            layout=w.Layout(flex="1 1 300px", min_width="260px", padding="0 0 0 10px"),
        )
        # In a narrow notebook the text goes under the image instead of being squeezed beside it.
        self.box = w.HBox([self.slots.box, side], layout=w.Layout(flex_flow="row wrap"))
        self.box.add_class("oal-single")  # where the page's switch veils the lines about the image

    def _action_button(self, action, *, text=None, key=True, cls=None) -> widgets.Button:
        return action_button(
            text or action, action, self._run, key=self._keys.get(action) if key else None, cls=cls
        )

    @property
    def image(self) -> widgets.Image:
        """The image on screen (class ``oal-image``)."""
        return self.slots.image

    @property
    def label_buttons(self) -> list[widgets.Button]:
        return self.labels.buttons

    def set_labels(self, names) -> None:
        self.labels.set_labels(names)

    def disable(self) -> None:
        for button in self.action_buttons + self.label_buttons:
            button.disabled = True
        self.live = False
        self.slots.arm(None, [])

    # --- showing the session -----------------------------------------------------------------------------
    def show_current(self, session, on_unreadable) -> None:
        """The current image and what is known of it; an unreadable one is set aside (``on_unreadable``)."""
        while True:
            path = session.current
            if path is None:
                self.slots.clear()
                self.filename.value = "nothing left to label"
                self.test_flag.value = self.prediction.value = self.current_label.value = ""
                self.shown = None
                return
            try:
                self.slots.show(path, session.display_png(path))
                break
            except ImageError as e:
                session.skip_unreadable(e.reason)
                on_unreadable(e)
        self.filename.value = path
        self.test_flag.value = "test image" if session.is_test(path) else ""
        self.show_prediction(session)
        current = session.label_of(path)
        self.current_label.value = f"labelled {current!r}: press a key to change it" if current else ""

    def fill_ahead(self, session) -> None:
        """UI thread: the upcoming images into the hidden slots. Only PNGs the session's prefetch has
        decoded already are taken, without the lock (a file that cannot be decoded is left to the key
        path, which sets it aside and says so); only reading and setting the slots takes the lock."""
        paths = session.upcoming(self.slots.ahead())
        with self._ui.lock:  # the slots change under it on the key path
            if set(paths) <= set(self.slots.paths):  # the usual case after a trainer update: nothing to do
                self.arm(session)
                return
        wait = FILL_WAIT_S  # for the prefetch's decodes under way (a few ms each; a large photo more)
        upcoming = [(path, png) for path in paths if (png := session.ready_png(path, wait)) is not None]
        with self._ui.lock:
            if session.current is not None:
                self.slots.fill(upcoming)
            self.arm(session)

    def arm(self, session, fresh: bool = False) -> None:
        """With the lock held: the page may bring the image after the current one on top by itself, on a
        label key (or Enter while a prediction is on screen), when a slot holds it."""
        if not self.live or session.current is None:
            self.slots.arm(None, [], fresh)
            return
        following = next(iter(session.upcoming(1)), None)
        n = len(session.label_names)
        keys = [k for k, a in self.keymap.items() if isinstance(a, tuple) and a[0] == "label" and a[1] < n]
        if self.shown is not None:
            keys += [k for k, a in self.keymap.items() if a == "accept"]
        self.slots.arm(following, keys, fresh)

    def after_key(self, session, live: bool, on_unreadable, key_time: float | None = None) -> None:
        """With the lock held, after every key and click, whatever it did: the image on top is the
        session's current one (the page may have switched on a key that did not move on), then the page
        is armed anew (it spent its arm on the key) and its switch answered, in one message.
        ``live``: keys label in this view now (not while typing a label's name, not at the end);
        ``key_time``: the key event's timeStamp (None for a click)."""
        self.live = live
        if live and session.current is not None and self.slots.paths[self.slots.shown] != session.current:
            self.show_current(session, on_unreadable)
        with self.slots.switch.hold_sync():
            self.arm(session, fresh=True)
            self.slots.answer(key_time)

    def show_update(self, session) -> None:
        """A trainer update, with the lock held: the prediction, and the page armed again (a re-rank may
        have changed the image after the current one). After a key or click ``after_key`` arms it, once."""
        self.show_prediction(session)
        self.arm(session)

    def show_prediction(self, session) -> None:
        path = session.current
        predicted = session.prediction(path)
        why = ""
        if path is not None and session.is_test(path):
            # The person's own label grades the model: showing its guess would lead the answer.
            self.prediction.value = "test image: your own label grades the model (no prediction shown)"
            self.shown = None
        elif predicted is None:
            self.prediction.value = "model: no prediction for this image yet (its next query scores it)"
            self.shown = None
        else:
            name, confidence = predicted
            key = self._keys.get("accept")
            hint = f" ({key} accepts)" if key else ""
            self.prediction.value = f"model says: {name} ({confidence:.0%}){hint}{staleness(session)}"
            why = why_shown(session)
            self.shown = (path, name)
        # Set once: each change of a widget's value is a message to the page (none if it is the same).
        self.why.value = why
        if path is not None:  # after every key and trainer update (a re-rank)
            self._ui.post(
                lambda: self.fill_ahead(session), key="slots", after=FILL_AFTER_S, latest=FILL_LATEST_S
            )

    def refresh(self, session) -> None:
        """Progress, status, long work, the pause button and the model error."""
        p = session.progress()
        self.bar.max = max(1, p["total"])
        self.bar.value = p["labelled"]
        self.test_bar.max = max(1, p["test_total"])
        self.test_bar.value = p["test_labelled"]
        self.progress.value = (
            f"{p['labelled']} / {p['total']} labelled · test {p['test_labelled']} / {p['test_total']}"
        )
        self.pause.description = keys_module.with_key(
            "resume" if session.paused else "pause", self._keys.get("pause")
        )
        self.refresh_status(session)

    def refresh_status(self, session) -> None:
        self.status.value = status_text(session)
        self.retry.layout.display = None if session.trainer_status == "error" else "none"
        work = session.work
        if work is None:
            self.work.layout.display = "none"
        else:
            what, done, total = work
            self.work_bar.max = max(1, total)
            self.work_bar.value = min(done, total)
            self.work_text.value = f"{what} {done} / {total}"
            self.work.layout.display = None
        self._show_model_error(session)

    def _show_model_error(self, session) -> None:
        """The trainer's error (model_fn failed, NaN loss) stays in the error line until it is resolved;
        a message about the person's own last key is not overwritten (a key clears it)."""
        shown = self._model_error
        if session.trainer_status == "error":
            text = (
                f"model error: {session.latest.message} · labelling goes on and every label is saved; "
                "press retry once it is fixed (or run the cell again with a fixed model_fn)"
            )
            if not self.error.value or self.error.value == shown:
                self.error.value = text
            self._model_error = text
        elif shown:
            if self.error.value == shown:
                self.error.value = ""
            self._model_error = ""


def training_labels_given(session) -> int:
    p = session.progress()
    return p["labelled"] - p["test_labelled"]


def staleness(session) -> str:
    """The mark of a prediction made by a model many training labels behind (" · predicted N labels
    ago"), else ""."""
    at = session.predicted_at_of(session.current)
    behind = None if at is None else training_labels_given(session) - at
    return f" · predicted {behind} labels ago" if behind is not None and behind >= STALE_LABELS else ""


def why_shown(session) -> str:
    """Why the predictions look poor: with an uncertainty strategy the panel asks first for the images
    the model is least sure of (true of the order, whatever brought this one: a cold-start pick, a
    random exploration, a skip)."""
    if session.config.strategy not in UNSURE_FIRST:
        return ""
    return (
        "the images the model is least sure of come first: wrong guesses here are expected, "
        "and those labels teach it the most"
    )


def status_text(session) -> str:
    """The session's status line; "waiting" with labels the trainer has not had yet says so."""
    text, latest = session.status, session.latest
    given = training_labels_given(session)
    if latest.status == "waiting" and text.startswith("waiting") and given > latest.n_labels:
        text = f"{given - latest.n_labels} new labels to train on" + text[len("waiting") :]
    return text


class SkippedList:
    """Files that cannot be used, with why; rebuilt only when the list grows."""

    def __init__(self):
        self.html = widgets.HTML()
        self.html.add_class("oal-skipped")
        self._shown = 0

    def refresh(self, session) -> None:
        skipped = session.skipped
        if len(skipped) == self._shown:
            return
        self._shown = len(skipped)
        items = "".join(
            f"<li><code>{html.escape(s.path)}</code>: {html.escape(s.reason)}</li>" for s in skipped
        )
        summary = f"<summary>{len(skipped)} file(s) skipped</summary>"
        self.html.value = f"<details>{summary}<ul>{items}</ul></details>" if skipped else ""
