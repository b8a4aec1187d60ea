"""``Annotator``: the labelling panel, a thin ipywidgets + ipyevents view over ``Session``.

The key handler runs on the kernel's main thread and only calls the session's cheap actions, shows
the next image (already decoded by the session's prefetch thread) and sets a few texts. Plots are
rendered from the session's ``on_change`` callback, which the trainer calls from its thread:
ipywidgets trait updates from a thread are fine on ipykernel >= 6 (not 7.0.0); an ``Output``
widget is never used from a thread.

Why keys never reach JupyterLab: ipyevents adds its keydown listener to ``document`` in the
capture phase while the pointer is over the panel, and calls ``stopPropagation()`` and
``preventDefault()`` on every key it forwards; JupyterLab 4 listens for shortcuts on ``document``
in the bubbling phase (``bubblingKeydown: true``), so a key meant for the panel never arrives there.
Jupyter Notebook 7 listens on ``document`` in the capture phase, registered at start-up, so it sees
every key BEFORE ipyevents (same target and phase: registration order). Its command-mode shortcuts
(``1``..``6`` headings, ``0,0`` restart, ``Enter`` edit...) use selectors ending in
``:focus:not(:read-write)``, so the panel keeps a tiny invisible ``Text`` (the key sink) focused
while the pointer is over it: no shortcut matches a focused text input, ipyevents still gets the key
and its ``preventDefault()`` stops the character being typed. No JavaScript of our own.
"""

from __future__ import annotations

import html
import logging
import threading
import traceback
import weakref
from collections.abc import Mapping

import ipyevents
import ipywidgets as widgets

from ..data.pool import ImageError
from ..session.session import Session
from . import plots
from .insight import InsightMixin

log = logging.getLogger(__name__)

#: Key (the browser's ``KeyboardEvent.key``) -> action: an action name or ("label", index).
DEFAULT_KEYS: dict[str, object] = {
    **{str(i): ("label", i - 1) for i in range(1, 10)},
    "0": ("label", 9),
    "Backspace": "undo",
    "ArrowRight": "skip",
    "ArrowLeft": "back",
    "Enter": "accept",
    "p": "pause",
    "?": "help",
}
#: Action names a key may map to, and what they do (shown in the help).
ACTIONS: dict[str, str] = {
    "undo": "undo the last label (that image comes back)",
    "skip": "skip: show this image again at the end",
    "back": "back to the previous image (label it again to change its label)",
    "accept": "accept the model's prediction as the label",
    "pause": "pause / resume training",
    "help": "show / hide this help",
    "retry": "rebuild the model after an error",
    "stop": "stop and save",
}
_MODIFIERS = ("ctrlKey", "metaKey", "altKey")
IMAGE_SIDE = "384px"
#: The label bars are redrawn this long after the last label, off the key path (~50 ms of matplotlib).
DISTRIBUTION_DELAY_S = 0.4

# The hint says "keys live" only while ipyevents marks the panel as watched (pointer over it).
STYLE = """<style>
.oal-panel { border: 2px solid #d0d0d0; border-radius: 6px; padding: 6px; }
.oal-panel.ipyevents-watched { border-color: #2e7d32; }
.oal-panel .oal-keys-hint .oal-keys-on { display: none; color: #2e7d32; font-weight: bold; }
.oal-panel .oal-keys-hint .oal-keys-off { color: #777; }
.oal-panel.ipyevents-watched .oal-keys-hint .oal-keys-on { display: inline; }
.oal-panel.ipyevents-watched .oal-keys-hint .oal-keys-off { display: none; }
.oal-panel .oal-test-flag { color: #b35c00; font-weight: bold; }
.oal-panel .oal-error { color: #c62828; }
.oal-panel .oal-filename { font-family: monospace; }
/* Invisible but focusable (display:none could not take focus); fixed: focusing it never scrolls. */
.oal-panel .oal-keysink { position: fixed; top: 0; left: 0; width: 1px; height: 1px; margin: 0;
  opacity: 0; pointer-events: none; overflow: hidden; }
</style>"""
KEYS_HINT = (
    # ipyevents starts listening when the pointer ENTERS the panel: after the label editor's Start
    # the pointer is already inside, hence "out and back in".
    '<span class="oal-keys-off">keys off: move the pointer onto this panel (out and back in)</span>'
    '<span class="oal-keys-on">keys live</span>'
)

# Panels by workdir, so that re-running the cell stops the previous panel's trainer first.
_REGISTRY: weakref.WeakValueDictionary[str, Annotator] = weakref.WeakValueDictionary()
_REGISTRY_LOCK = threading.Lock()


class Annotator(InsightMixin, widgets.VBox):
    """Label the images of a folder with number keys while a model trains on every label.

    Args:
        images: the folder of images (searched recursively).
        labels: class names; None continues with the labels stored in the workdir, or asks for them.
        model_fn: ``(num_classes, input_shape) -> compiled keras.Model``; default a small CNN.
        strategy: active-learning strategy name or callable (``Config.strategy``).
        workdir: where labels, model and metrics go (default ``<images>/.oal``).
        keymap: keys to change, merged over ``DEFAULT_KEYS``: ``{"a": ("label", 0), "x": "skip"}``;
            a value of None removes a key.
        trainer_factory: builds the trainer (tests pass a fake); default ``trainer.Trainer``.
        import_labels: a CSV of ``path,label``, a JSON export or a folder sorted in class sub-folders
            to start from (``Session.import_labels``); without ``labels`` its labels become the keys.
        **settings: any ``Config`` setting, e.g. ``input_shape=(32, 32, 1)``, ``eval_every=5``.

    Show it by making it the last expression of a cell; the cell returns at once (TensorFlow is
    imported by the trainer's thread).
    """

    def __init__(
        self,
        images,
        labels=None,
        *,
        model_fn=None,
        strategy=None,
        workdir=None,
        keymap=None,
        trainer_factory=None,
        import_labels=None,
        **settings,
    ):
        self._keymap = merge_keymap(keymap)  # cheap checks first: nothing started if they fail
        if strategy is not None:
            settings["strategy"] = strategy
        if workdir is not None:
            settings["workdir"] = workdir
        # The session first: a wrong folder or setting raises before any widget exists.
        self.session = Session(
            images,
            labels,
            model_fn=model_fn,
            trainer_factory=trainer_factory,
            on_change=self._on_change,
            start=False,
            import_labels=import_labels,
            **settings,
        )
        super().__init__()
        self.add_class("oal-panel")
        self._view = "none"
        self._lock = threading.RLock()  # the trainer thread and the main thread both update widgets
        self._plotted_metrics = -1
        self._plotted_counts: dict | None = None
        self._distribution_timer: threading.Timer | None = None
        self._skipped_shown = 0  # files listed under "skipped" (the list is rebuilt only when it grows)
        self._finishing = False
        self._build_widgets()
        self._build_insight()  # final fit, model insight (insight.py)
        self._main.children = (*self._main.children, self._insight_box)
        # ONE event watcher, created before display. In the label editor it watches nothing, so
        # typing a label name into the text box is not swallowed (ipyevents prevents defaults).
        self.event = ipyevents.Event(source=self, watched_events=[], prevent_default_action=True)
        self.event.on_dom_event(self._on_key)
        # Pointer events only (no prevent_default: clicks and the notebook's own handling are untouched).
        self._pointer_event = ipyevents.Event(source=self, watched_events=[], prevent_default_action=False)
        self._pointer_event.on_dom_event(self._on_pointer)
        if self.session.needs_labels:
            self._show_editor()
        else:
            self._show_labelling()
        # Last: the trainer thread's TensorFlow import competes for the GIL with building widgets.
        self._start_replacing_previous()

    # --- Python API ---------------------------------------------------------------------------
    @property
    def labels(self) -> dict[str, str]:
        """path -> label, from the store."""
        return self.session.labels()

    @property
    def history(self) -> list[dict]:
        """Every evaluation so far (n_labels, accuracy, loss, n_test, seconds)."""
        return self.session.history

    @property
    def model(self):
        """The trainer's live Keras model, or None."""
        return self.session.model

    @property
    def workdir(self):
        """Where the labels, the model and its metrics are saved (``<images>/.oal`` by default)."""
        return self.session.workdir

    def stop(self, timeout: float = 10.0) -> dict[str, str]:
        """Stop the trainer (it saves) and show the end screen. Returns where files were saved."""
        saved = self.session.stop(timeout)
        self._show_done()
        return saved

    # --- start-up -----------------------------------------------------------------------------
    def _start_replacing_previous(self) -> None:
        key = str(self.session.workdir.resolve())
        with _REGISTRY_LOCK:
            previous = _REGISTRY.get(key)
            _REGISTRY[key] = self
        if previous is None or previous is self or previous.session.stopped:
            self.session.start()
            return

        def replace():  # in a thread: the cell returns at once while the old trainer saves
            try:
                previous._replaced()
            except Exception:
                log.exception("stopping the previous panel on %s failed", key)
            try:
                self.session.start()
            except Exception as e:
                self._show_error(e)
            self._refresh_texts()

        threading.Thread(target=replace, name="oal-replace", daemon=True).start()

    def _replaced(self) -> None:
        self.session.stop()
        self._show_done(note="a newer panel on the same folder took over")

    # --- widgets ------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        w = widgets
        self._style = w.HTML(STYLE)
        self._hint = w.HTML(KEYS_HINT)
        self._hint.add_class("oal-keys-hint")
        self._title = w.Label("oal_widget")
        # Takes the keys in Notebook 7 (see the module docstring); ipyevents stops them being typed.
        self._keysink = w.Text(layout=w.Layout(width="1px"))
        self._keysink.add_class("oal-keysink")
        self._header = w.HBox(
            [self._title, self._hint, self._keysink],
            layout=w.Layout(justify_content="space-between", width="100%"),
        )

        self._image = w.Image(
            format="png",
            layout=w.Layout(
                width=IMAGE_SIDE, height=IMAGE_SIDE, object_fit="contain", border="1px solid #eee"
            ),
        )
        self._image.add_class("oal-image")
        self._filename = _label("oal-filename")
        self._test_flag = _label("oal-test-flag")
        self._prediction = _label("oal-prediction")
        self._current_label = _label("oal-current-label")
        self._label_box = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self._label_buttons: list[widgets.Button] = []

        def action_button(text, action, tooltip, cls=None):
            button = w.Button(description=text, tooltip=tooltip, layout=w.Layout(width="auto"))
            button.on_click(lambda _b: self._run(action))
            if cls:
                button.add_class(cls)
            return button

        keys = self._keys_by_action()
        self._undo_button = action_button(_with_key("undo", keys.get("undo")), "undo", ACTIONS["undo"])
        self._skip_button = action_button(_with_key("skip", keys.get("skip")), "skip", ACTIONS["skip"])
        self._back_button = action_button(_with_key("back", keys.get("back")), "back", ACTIONS["back"])
        self._accept_button = action_button(
            _with_key("accept", keys.get("accept")), "accept", ACTIONS["accept"]
        )
        self._pause_button = action_button(_with_key("pause", keys.get("pause")), "pause", ACTIONS["pause"])
        self._retry_button = action_button("retry", "retry", ACTIONS["retry"])
        self._retry_button.layout.display = "none"
        self._help_button = action_button(_with_key("help", keys.get("help")), "help", ACTIONS["help"])
        self._stop_button = action_button("stop and save", "stop", ACTIONS["stop"], "oal-stop")
        self._stop_button.button_style = "warning"
        self._action_buttons = [
            self._undo_button,
            self._back_button,
            self._skip_button,
            self._accept_button,
            self._pause_button,
            self._retry_button,
            self._help_button,
            self._stop_button,
        ]
        actions = w.HBox(self._action_buttons, layout=w.Layout(flex_flow="row wrap"))

        self._bar = w.IntProgress(min=0, max=1, description="labelled", layout=w.Layout(width="95%"))
        self._test_bar = w.IntProgress(min=0, max=1, description="test", layout=w.Layout(width="95%"))
        self._progress = _label("oal-progress")
        self._status = _label("oal-status")
        # Long work of the trainer (caching / embedding the pool): shown only while it runs.
        self._work_bar = w.IntProgress(min=0, max=1, layout=w.Layout(width="60%"))
        self._work_text = w.Label()
        self._work = w.HBox([self._work_bar, self._work_text], layout=w.Layout(display="none"))
        self._work.add_class("oal-work-progress")
        side = w.VBox(
            [
                self._filename,
                self._test_flag,
                self._prediction,
                self._current_label,
                self._label_box,
                actions,
                self._bar,
                self._test_bar,
                self._progress,
                self._status,
                self._work,
            ],
            layout=w.Layout(width="100%", padding="0 0 0 10px"),
        )
        self._plot = w.Image(format="png", layout=w.Layout(width="440px", object_fit="contain"))
        self._plot.add_class("oal-plot")
        self._distribution = w.Image(format="png", layout=w.Layout(width="340px", object_fit="contain"))
        self._distribution.add_class("oal-distribution")
        self._skipped = w.HTML()
        self._skipped.add_class("oal-skipped")
        self._help = w.HTML(layout=w.Layout(display="none"))
        self._help.add_class("oal-help")
        self._plots = w.HBox([self._plot, self._distribution], layout=w.Layout(flex_flow="row wrap"))
        self._main = w.VBox(
            [
                w.HBox([self._image, side]),
                self._plots,
                self._skipped,
                self._help,
            ]
        )
        self._main.add_class("oal-main")

        self._error = _label("oal-error")
        self._done = w.HTML(layout=w.Layout(display="none"))
        self._done.add_class("oal-done")

        # Label editor, shown when no labels are known yet.
        # continuous_update=False: the value arrives on Enter (or leaving the box), which adds it.
        self._new_label = w.Text(
            placeholder="a label, e.g. cat", continuous_update=False, layout=w.Layout(width="240px")
        )
        self._new_label.add_class("oal-new-label")
        self._add_button = w.Button(description="add", layout=w.Layout(width="auto"))
        self._add_button.add_class("oal-add-label")
        self._add_button.on_click(lambda _b: self._editor_run(self._editor_add))
        self._new_label.observe(self._on_new_label_submit, names="value")
        self._editor_rows = w.VBox()
        self._start_button = w.Button(description="start labelling", button_style="success", disabled=True)
        self._start_button.add_class("oal-start")
        self._start_button.on_click(lambda _b: self._editor_run(self._editor_start))
        self._editor_labels: list[str] = []
        self._editor = w.VBox(
            [
                w.HTML("<b>Which labels do the images get?</b> Add them in key order: the first is key 1."),
                w.HBox([self._new_label, self._add_button]),
                self._editor_rows,
                self._start_button,
            ]
        )
        self._editor.add_class("oal-label-editor")
        self.children = [self._style, self._header, self._error, self._done]

    def _keys_by_action(self) -> dict:
        out: dict = {}
        for key, action in self._keymap.items():
            out.setdefault(action, key)
        return out

    def _build_label_buttons(self) -> None:
        keys = self._keys_by_action()
        buttons = []
        for i, name in enumerate(self.session.label_names):
            key = keys.get(("label", i))
            button = widgets.Button(
                description=f"{key} · {name}" if key else name,
                tooltip=f"label this image {name!r}" + (f" (key {key})" if key else ""),
                layout=widgets.Layout(width="auto"),
            )
            button.add_class("oal-label-button")
            button.on_click(lambda _b, i=i: self._run(("label", i)))
            buttons.append(button)
        self._label_buttons = buttons
        self._label_box.children = buttons

    def _help_html(self) -> str:
        rows = []
        for key, action in self._keymap.items():
            if isinstance(action, tuple):
                names = self.session.label_names
                if action[1] >= len(names):
                    continue
                what = f"label: {names[action[1]]}"
            else:
                what = ACTIONS[action]
            rows.append(f"<tr><td><kbd>{html.escape(key)}</kbd></td><td>{html.escape(what)}</td></tr>")
        return (
            "<div><b>Keys</b> (keys work while the pointer is over the panel; the border turns green "
            "and the corner says <i>keys live</i>)<table>" + "".join(rows) + "</table>"
            "Labels after the tenth have buttons only. "
            "Every label is saved before the next image shows.</div>"
        )

    # --- views --------------------------------------------------------------------------------
    def _show_editor(self) -> None:
        with self._lock:
            self._view = "editor"
            self.children = [self._style, self._editor, self._error, self._done]

    def _show_labelling(self) -> None:
        with self._lock:
            self._view = "label"
            self._build_label_buttons()
            self._help.value = self._help_html()
            self.children = [self._style, self._header, self._main, self._error, self._done]
            self.event.watched_events = ["keydown"]
            # mouseup: a click (on a button, the image) may have moved the focus off the key sink.
            self._pointer_event.watched_events = ["mouseenter", "mouseup", "mouseleave"]
            self._title.value = (
                f"oal_widget · {self.session.images.name} · labels: {len(self.session.label_names)}"
            )
        self._show_current()
        self._refresh_texts()
        # The first plots (~1 s with matplotlib's import) arrive after the panel is on screen.
        threading.Thread(target=self._render_plots_safely, name="oal-plots", daemon=True).start()
        self.session.prefetch()
        if self.session.done:
            self._finish()

    def _show_done(self, note: str = "") -> None:
        with self._lock:
            self._view = "done"
            saved = self.session.saved()
            latest = self.session.latest
            progress = self.session.progress()
            title = "All images are labelled" if self.session.current is None else "Session stopped"
            lines = [
                f"<h3>{title}</h3>",
                f"<p>{progress['labelled']} / {progress['total']} images labelled "
                f"({progress['test_labelled']} / {progress['test_total']} test images).</p>",
            ]
            if note:
                lines.append(f"<p>{html.escape(note)}</p>")
            if latest.message:
                lines.append(f"<p>Trainer: {html.escape(latest.status)}: {html.escape(latest.message)}</p>")
            what = {"model": "model", "metrics": "metrics", "labels": "labels"}
            items = [
                f"<li>{html.escape(what.get(k, k))}: <code>{html.escape(str(v))}</code></li>"
                for k, v in saved.items()
            ]
            if "model" not in saved:
                items.append(
                    "<li>model: not saved yet (the trainer is still finishing, or it had no model)</li>"
                )
            lines.append("<ul>" + "".join(items) + "</ul>")
            lines.append(
                "<p>Reload the model with <code>oal_widget.reload_model(path)</code>; run the cell again "
                "to continue labelling.</p>"
            )
            self._done.value = "".join(lines)
            self._done.layout.display = None
            for button in self._action_buttons + self._label_buttons:
                button.disabled = True
            self._hint.layout.display = "none"  # keys do nothing on the end screen
            self.children = [
                self._style,
                self._header,
                self._done,
                self._plots,
                self._insight_box,
                self._error,
            ]
        self._render_plots()  # the final curve is what the person wants to see

    # --- keys and buttons ---------------------------------------------------------------------
    def _on_key(self, event: Mapping) -> None:
        """ipyevents' callback (kernel main thread). Never raises into ipyevents."""
        try:
            if event.get("type", event.get("event")) != "keydown":
                return
            if event.get("repeat") or any(event.get(m) for m in _MODIFIERS):
                return  # a held key must not label a run of images; ctrl/meta/alt are the browser's
            action = self._keymap.get(event.get("key"))
            if action is None or self._view != "label":
                return
            self._do(action)
        except Exception as e:
            self._show_error(e)

    def _on_pointer(self, event: Mapping) -> None:
        """Focus the key sink while the pointer is over the labelling panel, release it when it leaves."""
        try:
            kind = event.get("type", event.get("event"))
            if kind == "mouseleave":
                self._keysink.blur()  # keys go back to the notebook, as the "keys off" hint says
            elif kind in ("mouseenter", "mouseup") and self._view == "label":
                self._keysink.focus()
            if self._keysink.value:  # typed while ipyevents was not listening: nothing to keep
                self._keysink.value = ""
        except Exception as e:
            self._show_error(e)

    def _run(self, action) -> None:
        """A button click: the same actions as the keys."""
        try:
            if self._view == "label":
                self._do(action)
        except Exception as e:
            self._show_error(e)

    def _do(self, action) -> None:
        s = self.session
        self._error.value = ""
        if isinstance(action, tuple):
            index = action[1]
            if index >= len(s.label_names) or s.current is None:
                return  # e.g. key 9 with three labels
            s.label(s.label_names[index])
        elif action == "undo":
            if s.undo() is None:
                self._error.value = "nothing to undo in this session"
        elif action == "skip":
            s.skip()
        elif action == "back":
            if s.back() is None:
                self._error.value = "no previous image"
        elif action == "accept":
            if not s.accept_prediction():
                self._error.value = "no prediction for this image yet: press a number key"
        elif action == "pause":
            s.resume() if s.paused else s.pause()
        elif action == "retry":
            s.retry()
        elif action == "help":
            self._help.layout.display = None if self._help.layout.display == "none" else "none"
            return
        elif action == "stop":
            self._stop_in_background()
            return
        s.refresh()  # labels from another panel on this workdir leave the order (cheap if none)
        self._show_current()
        self._refresh_texts()
        s.prefetch()
        self._redraw_distribution_soon()
        if s.current is None:
            self._finish()

    def _stop_in_background(self, reason: str | None = None) -> None:
        if self._finishing:
            return
        self._finishing = True
        for button in self._action_buttons + self._label_buttons:
            button.disabled = True
        self._status.value = "stopping: training a last round, evaluating and saving…"

        def stop():
            try:
                self.session.stop(reason=reason)
            except Exception as e:
                self._show_error(e)
            self._show_done()

        threading.Thread(target=stop, name="oal-stop", daemon=True).start()

    def _finish(self) -> None:
        """Every image is labelled (or the trainer stopped itself): save and show the end screen."""
        if self.session.stopped and not self._finishing:
            self._finishing = True
            self._show_done()
        elif not self._finishing:
            self._stop_in_background("every image is labelled")

    # --- showing state ------------------------------------------------------------------------
    def _show_current(self) -> None:
        s = self.session
        while True:
            path = s.current
            if path is None:
                self._image.value = b""
                self._filename.value = "nothing left to label"
                self._test_flag.value = ""
                self._prediction.value = ""
                self._current_label.value = ""
                return
            try:
                self._image.value = s.display_png(path)
                break
            except ImageError as e:
                s.skip_unreadable(e.reason)
                self._error.value = f"skipped {e}"
                self._refresh_skipped()
        self._filename.value = path
        self._test_flag.value = "test image" if s.is_test(path) else ""
        self._show_prediction()
        current = s.label_of(path)
        self._current_label.value = f"labelled {current!r}: press a key to change it" if current else ""

    def _show_prediction(self) -> None:
        predicted = self.session.prediction(self.session.current)
        if predicted is None:
            self._prediction.value = "model: no prediction yet"
        else:
            name, confidence = predicted
            key = self._keys_by_action().get("accept")
            hint = f" ({key} accepts)" if key else ""
            self._prediction.value = f"model says: {name} ({confidence:.0%}){hint}"

    def _refresh_texts(self) -> None:
        s = self.session
        p = s.progress()
        self._bar.max = max(1, p["total"])
        self._bar.value = p["labelled"]
        self._test_bar.max = max(1, p["test_total"])
        self._test_bar.value = p["test_labelled"]
        self._progress.value = (
            f"{p['labelled']} / {p['total']} labelled · test {p['test_labelled']} / {p['test_total']}"
        )
        self._status.value = s.status
        self._show_work()
        self._pause_button.description = _with_key(
            "resume" if s.paused else "pause", self._keys_by_action().get("pause")
        )
        self._retry_button.layout.display = None if s.trainer_status == "error" else "none"
        self._show_model_error()
        self._refresh_skipped()

    def _show_work(self) -> None:
        """The trainer's long work as a progress bar + "embedding images 1200 / 5000"; hidden when idle."""
        work = self.session.work
        if work is None:
            self._work.layout.display = "none"
            return
        what, done, total = work
        self._work_bar.max = max(1, total)
        self._work_bar.value = min(done, total)
        self._work_text.value = f"{what} {done} / {total}"
        self._work.layout.display = None

    def _show_model_error(self) -> None:
        """The trainer's error (model_fn failed, NaN loss) in the error line, until it is resolved.

        A message of the person's own last key is not overwritten; a key clears it, then this shows
        the model error again: it stays in sight while the person goes on labelling.
        """
        s = self.session
        shown = getattr(self, "_model_error_text", "")
        if s.trainer_status == "error":
            text = (
                f"model error: {s.latest.message} · labelling goes on and every label is saved; "
                "press retry once it is fixed (or run the cell again with a fixed model_fn)"
            )
            if not self._error.value or self._error.value == shown:
                self._error.value = text
            self._model_error_text = text
        elif shown:
            if self._error.value == shown:
                self._error.value = ""
            self._model_error_text = ""

    def _refresh_skipped(self) -> None:
        skipped = self.session.skipped
        if len(skipped) == self._skipped_shown:
            return
        self._skipped_shown = len(skipped)
        items = "".join(
            f"<li><code>{html.escape(s.path)}</code>: {html.escape(s.reason)}</li>" for s in skipped
        )
        self._skipped.value = (
            f"<details><summary>{len(skipped)} file(s) skipped</summary><ul>{items}</ul></details>"
            if skipped
            else ""
        )

    def _render_plots(self, force: bool = False) -> None:
        s = self.session
        metrics = s.metrics
        if force or len(metrics) != self._plotted_metrics:
            self._plot.value = plots.metrics_png(metrics, s.config.early_stopping)
            self._plotted_metrics = len(metrics)
            if metrics:  # a page (or a browser test) can tell a curve from the placeholder
                self._plot.add_class("oal-plot-has-metrics")
        counts = s.counts()
        if force or counts != self._plotted_counts:
            self._distribution.value = plots.distribution_png(counts)
            self._plotted_counts = counts

    def _render_plots_safely(self) -> None:
        try:
            plots.warm_up()  # the slow import happens outside the lock the key handler may need
            with self._lock:
                self._render_plots(force=True)
        except Exception as e:
            self._show_error(e)

    def _redraw_distribution_soon(self) -> None:
        """Debounced: a burst of keys costs one redraw, in a timer thread, never in the handler."""
        if self._distribution_timer is not None:
            self._distribution_timer.cancel()
        self._distribution_timer = threading.Timer(DISTRIBUTION_DELAY_S, self._redraw_distribution)
        self._distribution_timer.daemon = True
        self._distribution_timer.start()

    def _redraw_distribution(self) -> None:
        try:
            with self._lock:
                counts = self.session.counts()
                if counts != self._plotted_counts:
                    self._distribution.value = plots.distribution_png(counts)
                    self._plotted_counts = counts
        except Exception as e:
            self._show_error(e)

    def _on_change(self, kind: str) -> None:
        """The session's callback, from the trainer's thread: texts, prediction, plots."""
        try:
            with self._lock:
                if self._view == "editor":
                    return
                if self._view == "done":
                    if kind == "stopped":
                        self._show_done()  # e.g. the model was saved after a slow stop
                    return
                self._status.value = self.session.status
                self._show_work()
                self._retry_button.layout.display = None if self.session.trainer_status == "error" else "none"
                self._show_model_error()
                self._show_prediction()
                if kind in ("metrics", "stopped", "order"):
                    self._render_plots()
                if kind == "order":
                    self.session.prefetch()
            if kind == "stopped":
                self._finish()
        except Exception as e:
            self._show_error(e)

    def _show_error(self, error: BaseException) -> None:
        log.error("oal_widget panel error", exc_info=error)
        where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
        at = f" (at {where[0].name}, line {where[0].lineno})" if where else ""
        self._error.value = f"error: {type(error).__name__}: {error}{at}"

    # --- label editor -------------------------------------------------------------------------
    def _on_new_label_submit(self, change) -> None:
        if change["new"].strip():
            self._editor_run(self._editor_add)

    def _editor_run(self, fn) -> None:
        try:
            self._error.value = ""
            fn()
        except Exception as e:
            self._show_error(e)

    def _editor_add(self) -> None:
        name = self._new_label.value.strip()
        if not name:
            return  # e.g. Add clicked after leaving the box already added the name
        if name in self._editor_labels:
            self._error.value = f"label {name!r} is already in the list"
            return
        self._editor_labels.append(name)
        self._new_label.value = ""
        self._render_editor()

    def _editor_move(self, index: int, delta: int) -> None:
        j = index + delta
        if 0 <= j < len(self._editor_labels):
            labels = self._editor_labels
            labels[index], labels[j] = labels[j], labels[index]
            self._render_editor()

    def _editor_remove(self, index: int) -> None:
        del self._editor_labels[index]
        self._render_editor()

    def _render_editor(self) -> None:
        keys = self._keys_by_action()
        rows = []
        for i, name in enumerate(self._editor_labels):
            key = keys.get(("label", i))
            text = widgets.Label(f"{key} · {name}" if key else f"(button only) · {name}")
            text.add_class("oal-editor-label")
            up = widgets.Button(description="up", layout=widgets.Layout(width="auto"), disabled=i == 0)
            down = widgets.Button(
                description="down",
                layout=widgets.Layout(width="auto"),
                disabled=i == len(self._editor_labels) - 1,
            )
            remove = widgets.Button(description="remove", layout=widgets.Layout(width="auto"))
            remove.add_class("oal-remove-label")
            up.on_click(lambda _b, i=i: self._editor_run(lambda: self._editor_move(i, -1)))
            down.on_click(lambda _b, i=i: self._editor_run(lambda: self._editor_move(i, +1)))
            remove.on_click(lambda _b, i=i: self._editor_run(lambda: self._editor_remove(i)))
            rows.append(widgets.HBox([text, up, down, remove]))
        self._editor_rows.children = rows
        self._start_button.disabled = len(self._editor_labels) < 2
        self._start_button.description = (
            "start labelling" if len(self._editor_labels) >= 2 else "start labelling (add at least 2 labels)"
        )

    def _editor_start(self) -> None:
        self.session.set_labels(list(self._editor_labels))
        self._show_labelling()


def merge_keymap(keymap: Mapping | None) -> dict[str, object]:
    """``DEFAULT_KEYS`` with ``keymap`` merged over it; ``ValueError`` names a bad key or action."""
    merged = dict(DEFAULT_KEYS)
    if keymap is None:
        return merged
    if not isinstance(keymap, Mapping):
        raise ValueError(
            f"keymap={keymap!r} is invalid: expected a dict like {{'a': ('label', 0), 'x': 'skip'}}"
        )
    for key, action in keymap.items():
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"keymap key {key!r} is invalid: expected the browser's KeyboardEvent.key, e.g. 'a', 'Enter'"
            )
        if action is None:
            merged.pop(key, None)
            continue
        merged[key] = _check_action(key, action)
    return merged


def _check_action(key: str, action) -> object:
    if isinstance(action, str) and action in ACTIONS:
        return action
    if (
        isinstance(action, (tuple, list))
        and len(action) == 2
        and action[0] == "label"
        and isinstance(action[1], int)
        and not isinstance(action[1], bool)
        and action[1] >= 0
    ):
        return ("label", action[1])
    raise ValueError(
        f"keymap[{key!r}]={action!r} is invalid: expected one of {sorted(ACTIONS)}, "
        "('label', index) with index 0 for the first label, or None to remove the key"
    )


def _label(cls: str) -> widgets.Label:
    label = widgets.Label("")
    label.add_class(cls)
    return label


def _with_key(text: str, key: str | None) -> str:
    names = {"ArrowLeft": "←", "ArrowRight": "→", "Backspace": "⌫", "Enter": "⏎"}
    return f"{text} ({names.get(key, key)})" if key else text
