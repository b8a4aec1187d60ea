"""The panel's "final fit" and "model insight" parts: a mixin of ``Annotator`` (issue 7).

Everything slow (the final fit, predicting the test split) runs in a worker thread, never on the
kernel's main thread, so keys keep working; results reach the widgets by setting their values
(fine from a thread on ipykernel >= 6; no ``Output`` widget is used).
"""

from __future__ import annotations

import concurrent.futures
import html
import threading

import ipywidgets as widgets

from ..reports import diagnostics

#: Images shown in the "most wrong" strip.
N_WRONG = 8
THUMB_SIDE = "96px"


class InsightMixin:
    """Final fit, export, confusion matrix, most wrong images and the forecast, for ``Annotator``."""

    # --- Python API ---------------------------------------------------------------------------
    def final_fit(self, epochs: int = 30, wait: bool = False):
        """Train a new model from scratch on every label and save ``<workdir>/final/model.keras`` + card.

        Runs in a worker thread; returns a ``concurrent.futures.Future`` whose result is the model
        card (a dict). ``wait=True`` blocks until it is done and returns the card: do not use that in
        the cell that shows the panel (keys are not processed while a cell runs).
        """
        with self._insight_lock:
            running = self._final_future
            if running is not None and not running.done():
                return running.result() if wait else running
            future: concurrent.futures.Future = concurrent.futures.Future()
            self._final_future = future
        self._final_button.disabled = True
        self._final_status.value = f"final fit: training a new model on every label ({epochs} epochs)…"
        shown = [-1]

        def progress(done: int, total: int) -> None:
            percent = done * 100 // total
            if percent != shown[0]:  # a widget update per percent, not per step
                shown[0] = percent
                self._final_status.value = f"final fit: {percent}% ({done} / {total} steps)"

        def work():
            try:
                card = self.session.final_fit(epochs=epochs, progress=progress, cancel=self._final_cancel)
            except BaseException as e:
                self._final_status.value = f"final fit failed: {type(e).__name__}: {e}"
                future.set_exception(e)
            else:
                acc = card["metrics"]["accuracy"]
                shown_acc = "no test labels" if acc is None else f"test accuracy {acc:.1%}"
                self._final_status.value = (
                    f"final fit: {shown_acc} on {card['metrics']['n_test']} test images; "
                    f"saved {card['files']['model']} and model_card.json"
                )
                future.set_result(card)
            finally:
                self._final_button.disabled = False

        threading.Thread(target=work, name="oal-final-fit", daemon=True).start()
        return future.result() if wait else future

    def export(self, out, format: str | None = None, *, split: str = "all"):
        """Write the labels as ``csv``, ``json`` or class ``folders`` (``image_dataset_from_directory``
        loads those as is). The format is guessed from ``out`` when not given. Returns an
        ``exports.ExportResult``."""
        return self.session.export(out, format, split=split)

    def diagnose(self, n_wrong: int = N_WRONG) -> dict | None:
        """Confusion matrix, per-class accuracy and most wrong test images of the live model; also shown
        in the panel. None while there is no model yet. Blocks for one pass over the test split."""
        result = self.session.diagnose(n_wrong)
        self._show_insight(result)
        return result

    def forecast(self, metric: str = "accuracy", target: float | None = None):
        """Labels the learning curve suggests are still needed (see ``forecast.forecast``)."""
        return self.session.forecast(metric, target)

    # --- widgets ------------------------------------------------------------------------------
    def _build_insight(self) -> None:
        self._insight_lock = threading.Lock()
        self._final_future: concurrent.futures.Future | None = None
        self._final_cancel = threading.Event()
        self._final_button = widgets.Button(
            description="final fit",
            tooltip="train a new model from scratch on every label; save it with a model card",
            layout=widgets.Layout(width="auto"),
        )
        self._final_button.add_class("oal-final-fit")
        self._final_button.on_click(lambda _b: self._insight_run(self.final_fit))
        self._insight_button = widgets.Button(
            description="model insight",
            tooltip="confusion matrix, per-class accuracy, most wrong images, labels still needed",
            layout=widgets.Layout(width="auto"),
        )
        self._insight_button.add_class("oal-insight-button")
        self._insight_button.on_click(lambda _b: self._insight_run(self._toggle_insight))
        self._final_status = widgets.Label("")
        self._final_status.add_class("oal-final-status")
        self._forecast = widgets.HTML()
        self._forecast.add_class("oal-forecast")
        self._confusion = widgets.HTML()
        self._confusion.add_class("oal-confusion")
        self._most_wrong = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self._most_wrong.add_class("oal-most-wrong")
        self._insight = widgets.VBox(
            [self._forecast, self._confusion, self._most_wrong], layout=widgets.Layout(display="none")
        )
        self._insight.add_class("oal-insight")
        self._insight_box = widgets.VBox(
            [widgets.HBox([self._final_button, self._insight_button, self._final_status]), self._insight]
        )

    def _insight_run(self, fn) -> None:
        try:
            fn()
        except Exception as e:
            self._show_error(e)

    def _toggle_insight(self) -> None:
        if self._insight.layout.display != "none":
            self._insight.layout.display = "none"
            return
        self._insight.layout.display = None
        self._confusion.value = "<p>model insight: predicting the test split…</p>"
        self._forecast.value = _forecast_html(self.session)

        def work():
            try:
                self._show_insight(self.session.diagnose(N_WRONG))
            except Exception as e:
                self._confusion.value = (
                    f"<p>model insight failed: {html.escape(f'{type(e).__name__}: {e}')}</p>"
                )

        threading.Thread(target=work, name="oal-insight", daemon=True).start()

    def _show_insight(self, result: dict | None) -> None:
        self._insight.layout.display = None
        self._forecast.value = _forecast_html(self.session)
        if result is None:
            self._confusion.value = "<p>no model yet: the trainer is still starting (or in error)</p>"
            self._most_wrong.children = []
            return
        tiles = []
        for item in result["most_wrong"]:
            try:
                png = self.session.display_png(item["path"])
            except Exception:
                continue  # an unreadable file: the list says so elsewhere
            image = widgets.Image(value=png, format="png", layout=widgets.Layout(width=THUMB_SIDE))
            caption = widgets.HTML(
                f"<small><code>{html.escape(item['path'])}</code><br>label {html.escape(item['label'])}"
                f" · model {html.escape(item['predicted'])} ({item['confidence']:.0%})</small>"
            )
            tiles.append(widgets.VBox([image, caption], layout=widgets.Layout(width="150px")))
        self._most_wrong.children = tiles
        if not tiles:
            self._most_wrong.children = [widgets.HTML("<p>no test image is misclassified</p>")]
        self._confusion.value = diagnostics.confusion_html(result)  # last: the table means "all shown"


def _forecast_html(session) -> str:
    from ..reports.forecast import MIN_POINTS

    f = session.forecast()
    if f is None:
        return (
            f"<p>forecast: needs {MIN_POINTS} evaluations of the learning curve "
            f"(has {len(session.history)})</p>"
        )
    band = f"{f.asymptote_low:.2f}–{f.asymptote_high:.2f}"
    text = f"{f.metric} now {f.current:.3f} at {f.n_labels} labels; the curve levels off near {band}"
    if f.target is None:
        text += ". Set early_stopping={'accuracy': (None, 0.95)} to forecast the labels needed to reach it"
    else:
        text += f". {f.message}"
    return f"<p>forecast: {html.escape(text)}</p>"
