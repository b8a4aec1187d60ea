"""``Annotator``: the labelling panel, a thin ipywidgets + ipyevents view over ``Session``.

Two threads change widgets, never at once: the kernel's main thread (keys and buttons, through
ipyevents and ipywidgets' comms) and the panel's UI thread (``ui_thread.py``: trainer updates, plots,
results of slow work). Both take the panel's lock. The trainer's callback only queues its update and
posts one job; the session applies updates on the UI thread, under the lock, so a key never races an
update (the prediction on screen is the one Enter accepts). Plots are rendered without the lock, when
keys pause, and only their PNG bytes are set under it. An ``Output`` widget is never used from a thread.

Why keys never reach JupyterLab: ipyevents adds its keydown listener to ``document`` in the capture
phase while the pointer is over the panel, and calls ``stopPropagation()`` and ``preventDefault()`` on
every key it forwards; JupyterLab 4 listens for shortcuts on ``document`` in the bubbling phase, so a
key meant for the panel never arrives there. Jupyter Notebook 7 listens on ``document`` in the capture
phase, registered at start-up, so it sees every key BEFORE ipyevents. Its command-mode shortcuts use
selectors ending in ``:focus:not(:read-write)``, so the panel keeps a tiny invisible ``Text`` (the key
sink) focused while the pointer is over it: no shortcut matches a focused text input, ipyevents still
gets the key and its ``preventDefault()`` stops the character being typed. The package's only
JavaScript is the page's half of the image slots (``slot_switch.py``): it shows the next image on a
label key before the key arrives here; after every key and click the panel answers it (``_arm``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping

import ipyevents
import ipywidgets as widgets

from ..config import Config
from ..session.session import Session
from . import keys as keys_module
from . import registry
from .api import PanelApi
from .done import done_html
from .errors import error_line, plain
from .insight import Insight
from .keys import ACTIONS, DEFAULT_KEYS, merge_keymap
from .keysink import KeySink
from .label_editor import LabelEditor, folder_names
from .labelling import LabellingView, SkippedList, label
from .modes import Modes
from .plots_view import PlotsView
from .style import KEYS_HINT, STYLE
from .ui_thread import UiThread

__all__ = ["ACTIONS", "DEFAULT_KEYS", "Annotator", "merge_keymap"]

#: Plots wait for this long a pause in the keys: a render holds the GIL and a core for 50-250 ms (two
#: figures, matplotlib) and sends ~50 KB of PNG for the page to decode, so the key it meets shows its
#: image late. A person pauses often (at a key a second or slower: after every key); only a
#: run of fast keys waits PLOT_LATEST_S at most: at 4 keys a second one render per 120 keys, under the
#: 1% of a p99. The status line says the newest accuracy meanwhile.
PLOT_QUIET_S = 0.4
PLOT_LATEST_S = 30.0


def _then_answer_the_page(handler):
    """A key or click handler of the panel, then, whatever it did, ``_arm`` under the lock (the page may
    have switched images on the key). Never raises into ipyevents or ipywidgets."""

    @functools.wraps(handler)
    def answered(self, *args):
        try:
            return handler(self, *args)
        finally:
            try:
                with self._lock:
                    self._arm(args[0].get("timeStamp") if args and isinstance(args[0], Mapping) else None)
            except Exception as e:
                self.show_error(e)

    return answered


class Annotator(PanelApi, widgets.VBox):
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
        store: where the labels live: None, a SQLite file in the workdir; a
            ``postgresql://user@host:port/dbname`` URL, a PostgreSQL database a team shares.
        project: the data set's name in that database (default: the images folder's name).
        annotator: who labels (default: the login name); every label records it.
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
        store=None,
        project=None,
        annotator=None,
        **settings,
    ):
        if strategy is not None:
            settings["strategy"] = strategy
        if workdir is not None:
            settings["workdir"] = workdir
        try:  # cheap checks first: nothing started if they fail, nor an older panel retired
            self._keymap = merge_keymap(keymap)
            Config().replace(**settings)
        except ValueError as e:
            plain(e)  # the message alone in a notebook: it says what to change
            raise
        # A re-run of the cell: the older panel on this folder lets go of its claims and connection first.
        key = registry.workdir_key(images, settings.get("workdir"))
        on_screen = registry.retire_previous(key)
        self._lock = threading.RLock()  # taken by the key handler and by every UI-thread job
        self._ui = UiThread(self._lock, on_error=self.show_error)
        try:  # the session first: a wrong folder or setting raises before any widget exists
            self.session = Session(
                images,
                labels,
                model_fn=model_fn,
                trainer_factory=trainer_factory,
                on_update_ready=lambda: self._ui.post(self._apply_updates, key="updates"),
                start=False,
                import_labels=import_labels,
                store=store,
                project=project,
                annotator=annotator,
                resume_at=on_screen,
                **settings,
            )
        except BaseException as e:
            self._ui.close()
            registry.abandon(key, e)  # the retired panel's trainer still stops and saves, and it says why
            plain(e)  # the message alone in a notebook: it says what to change
            raise
        super().__init__()
        self.add_class("oal-panel")
        self._view = "none"
        self._finishing = False
        self._build_widgets()
        # ONE key watcher, created before display, watching from the start: ipyevents listens once the
        # pointer ENTERS the panel, so it must already listen when the label editor's "start labelling"
        # is clicked (the pointer is inside then). In the editor it types the label's name (it takes the
        # keys from the text box: ipyevents prevents their default).
        self.event = ipyevents.Event(source=self, watched_events=["keydown"], prevent_default_action=True)
        self.event.on_dom_event(self._on_key)
        # Pointer events only (no prevent_default: clicks and the notebook's own handling are untouched).
        # mouseup: a click (on a button, the image) may have moved the focus off the key sink.
        moves = ["mouseenter", "mouseup", "mouseleave"]
        self._pointer_event = ipyevents.Event(source=self, watched_events=moves, prevent_default_action=False)
        self._pointer_event.on_dom_event(self._on_pointer)
        if self.session.needs_labels:
            self._show_editor()
        else:
            self._show_labelling()
        # Last: the trainer thread's TensorFlow import competes for the GIL with building widgets.
        registry.take_over(self)
        self._ui.post(self.redraw)  # the status line as it is once the trainer started

    # --- Python API (the rest is in api.PanelApi) -------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> dict[str, str]:
        """Stop the trainer (it saves) and show the end screen. Returns where files were saved."""
        saved = self.session.stop(timeout)
        with self._lock:
            self._show_done()
        return saved

    # --- widgets -----------------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        w = widgets
        self._style = w.HTML(STYLE)
        self._hint = w.HTML(KEYS_HINT)
        self._hint.add_class("oal-keys-hint")
        self._title = w.Label("oal_widget")
        self._sink = KeySink()  # takes the keys in Notebook 7 (see the module docstring)
        self._keysink = self._sink.text
        self._header = w.HBox(
            [self._title, self._hint, self._keysink],
            layout=w.Layout(justify_content="space-between", width="100%"),
        )
        self._error = label("oal-error")
        self.labelling = LabellingView(self._keymap, self._run, self._error, self._ui)
        # The grid, the review queue and the label filter (keys and buttons as in the single view).
        self.modes = Modes(
            self.session, self._keymap, self._run, self._on_tile, self._ui, self.labelling.labels
        )
        proposed = folder_names(self.session.pool.paths) if self.session.needs_labels else ()
        self.editor = LabelEditor(self._keymap, self._start_labelling, self.show_error, self._error, proposed)
        self.insight = Insight(self.session, self._ui.post, self.show_error, self._lock)
        self.plots = PlotsView()
        self._skipped = SkippedList()
        self._help = w.HTML(layout=w.Layout(display="none"))
        self._help.add_class("oal-help")
        self._main = w.VBox()
        # Holds the single, grid or review view; as tall as the image while one view replaces another,
        # so the panel never shrinks from under a resting pointer (ipyevents would stop listening).
        self._slot = w.VBox(layout=w.Layout(min_height="400px"))
        self._show_mode()
        self._main.add_class("oal-main")
        self._done = w.HTML(layout=w.Layout(display="none"))
        self._done.add_class("oal-done")
        self.children = [self._style, self._header, self._error, self._done]

    # --- views -------------------------------------------------------------------------------------------
    def _show_editor(self) -> None:
        with self._lock:
            self._view = "editor"
            self.children = [self._style, self._header, self.editor.box, self._error, self._done]

    def _start_labelling(self, labels) -> None:
        self.session.set_labels(labels)
        self._show_labelling()
        self._keysink.focus()  # the pointer is over the panel: it clicked "start labelling"

    def _show_labelling(self) -> None:
        with self._lock:
            self._view = "label"
            self.labelling.set_labels(self.session.label_names)
            self.modes.set_labels(self.session.label_names)
            self._help.value = keys_module.help_html(self._keymap, self.session.label_names)
            self.children = [self._style, self._header, self._main, self._error, self._done]
            names = self.session.label_names
            self._title.value = f"oal_widget · {self.session.images.name} · labels: {len(names)}"
            self._show_current()
            self._refresh()
        # The first figures (~1 s with matplotlib's import) come after the panel is on screen.
        self._ui.post(lambda: self._render_plots(force=True), key="plots")
        self.session.prefetch()
        if self.session.done:
            self._finish()

    def post(self, job) -> None:
        """Run ``job`` on the panel's UI thread (where background work reports to the widgets)."""
        self._ui.post(job)

    def show_done(self, note: str = "") -> None:
        """The end screen (takes the lock)."""
        with self._lock:
            self._show_done(note)

    def _show_done(self, note: str = "") -> None:
        self._view = "done"
        self._done.value = done_html(self.session, note)
        self._done.layout.display = None
        self.labelling.disable()
        self._hint.layout.display = "none"  # keys do nothing on the end screen
        self.children = [self._style, self._header, self._done, self.plots.box, self.insight.box, self._error]
        self._ui.post(lambda: self._render_plots(force=True), key="plots")  # the final curve

    # --- keys and buttons (kernel main thread) -----------------------------------------------------------
    @_then_answer_the_page
    def _on_key(self, event: Mapping) -> None:
        """ipyevents' callback. Never raises into ipyevents."""
        try:
            key = keys_module.pressed(event)
            if key is not None and self._view == "editor":
                with self._lock:
                    return self.editor.key(key)
            if key is None or self._view != "label" or self._finishing:
                return
            with self._lock:
                if self.modes.filter.active:  # typing a label's name: every key goes to the filter
                    picked = self.modes.filter_key(key)
                    return self._do(picked) if picked is not None else None
                action = self._keymap.get(key)
                if action is not None:
                    self._do(action)
        except Exception as e:
            self.show_error(e)

    def _on_tile(self, index: int) -> None:
        """A click on a grid tile (ipyevents, kernel main thread): the cursor goes there."""
        try:
            if self._view == "label" and not self._finishing:
                with self._lock:
                    self.modes.tile(index)
        except Exception as e:
            self.show_error(e)

    def _on_pointer(self, event: Mapping) -> None:
        """Focus the key sink while the pointer is over the labelling panel, release it when it leaves."""
        try:
            self._sink.pointer(event.get("type", event.get("event")), self._view in ("label", "editor"))
        except Exception as e:
            self.show_error(e)

    @_then_answer_the_page
    def _run(self, action) -> None:
        """A button click: the same actions as the keys."""
        try:
            if self._view == "label" and not self._finishing:
                with self._lock:
                    self._do(action)
        except Exception as e:
            self.show_error(e)

    def _do(self, action) -> None:
        """One action, with the lock held: the session acts, then the view shows the result."""
        s = self.session
        if action == "help":
            self._help.layout.display = None if self._help.layout.display == "none" else "none"
            return
        if action == "stop":
            self._stop_in_background()
            return
        if action == "filter":
            return self.modes.start_filter()
        if action in ("grid", "review", "close"):
            self._error.value = ""
            self.modes.switch(action)
        elif action == "like":
            self._error.value = self.modes.more_like()
        else:
            self._error.value = self.modes.do(action, self.labelling.shown)
        self._show_mode()  # the view may have changed (a switch, or a page of near-duplicates)
        s.refresh()  # labels from another panel on this workdir leave the order (cheap if none)
        self._show_current()
        self._refresh()
        s.prefetch()
        self._ui.post(self._render_plots, key="plots", after=PLOT_QUIET_S, latest=PLOT_LATEST_S)
        if s.current is None:
            self._finish()

    def _show_mode(self) -> None:
        """The mode's view (single, grid or review) in the main area, the help above it (where one looks)."""
        self._slot.children = [self.modes.box(self.labelling.box)]
        extra = [self.modes.filter_line, self.plots.box, self._skipped.html, self.insight.box]
        self._main.children = [self._help, self._slot, *extra]

    def _stop_in_background(self, reason: str | None = None) -> None:
        """With the lock held: disable the panel, stop (it saves) in a thread, then the end screen."""
        if self._finishing:
            return
        self._finishing = True
        self.labelling.disable()
        self.modes.disable()
        self.labelling.status.value = "stopping: training a last round, evaluating and saving…"

        def stop():
            try:
                self.session.stop(reason=reason)
            except Exception as e:
                self._ui.post(lambda e=e: self.show_error(e))
            self._ui.post(self.show_done)

        threading.Thread(target=stop, name="oal-stop", daemon=True).start()

    def _finish(self) -> None:
        """Every image is labelled (or the trainer stopped itself): save and show the end screen."""
        with self._lock:
            if self.session.stopped and not self._finishing:
                self._finishing = True
                self._show_done()
            elif not self._finishing:
                self._stop_in_background("every image is labelled")

    # --- showing state (lock held) -----------------------------------------------------------------------
    def _arm(self, key_time=None) -> None:
        """After every key and click: the page's switch answered, the page armed anew (``slot_switch.py``)."""
        live = self._view == "label" and not self._finishing and self.modes.keys_label
        self.labelling.after_key(self.session, live, self._note_unreadable, key_time)

    def _show_current(self) -> None:
        if self.modes.mode == "single":
            self.labelling.show_current(self.session, self._note_unreadable)
        else:
            self.modes.show()

    def _note_unreadable(self, error) -> None:
        self._error.value = f"skipped {error}"
        self._skipped.refresh(self.session)

    def _refresh(self) -> None:
        self.labelling.refresh(self.session)
        self._skipped.refresh(self.session)

    def redraw(self) -> None:
        """The view as the session is now (takes the lock)."""
        with self._lock:
            if self._view == "label":
                self._refresh()

    def show_error(self, error: BaseException) -> None:
        self._error.value = error_line(error)

    # --- the UI thread's jobs ------------------------------------------------------------------------------
    def _apply_updates(self) -> None:
        """Apply the trainer's queued updates to the session and the view, under the lock."""
        with self._lock:
            kinds = self.session.apply_pending()
            if self._view == "done":
                if "stopped" in kinds:
                    self._show_done()  # e.g. the model was saved after a slow stop
                return
            if self._view != "label":
                return
            self.labelling.refresh_status(self.session)
            if self.modes.mode == "single":
                self.labelling.show_update(self.session)
            else:
                self.modes.refresh()
            if "order" in kinds:
                self.session.prefetch()
        if kinds & {"metrics", "stopped", "order"}:
            self._ui.post(self._render_plots, key="plots", after=PLOT_QUIET_S, latest=PLOT_LATEST_S)
        if "stopped" in kinds:
            self._finish()

    def _render_plots(self, force: bool = False) -> None:
        self.plots.render(self.session, self._lock, force)
