"""The panel's "final fit" and "model insight" parts, composed into the panel (not mixed into it).

Everything slow (the final fit, predicting the test split) runs in a worker thread, never on the
kernel's main thread, so keys keep working; results and progress are posted to the panel's UI thread,
the only other place widgets change.
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


class Insight:
    """Args: the ``Session``, ``post(fn)`` (run on the UI thread), ``on_error(exception)``, and the panel's
    lock (a click changes widgets like a key does: never beside the UI thread's jobs)."""

    def __init__(self, session, post, on_error, panel_lock=None):
        self.session, self._post, self._on_error = session, post, on_error
        self._panel_lock = panel_lock if panel_lock is not None else threading.RLock()
        self._lock = threading.Lock()
        self.final_future: concurrent.futures.Future | None = None
        self.final_button = widgets.Button(
            description="final fit",
            tooltip="train a new model from scratch on every label; save it with a model card",
            layout=widgets.Layout(width="auto"),
        )
        self.final_button.add_class("oal-final-fit")
        self.final_button.on_click(lambda _b: self._guard(self.final_fit))
        self.insight_button = widgets.Button(
            description="model insight",
            tooltip="confusion matrix, per-class accuracy, most wrong images, labels still needed",
            layout=widgets.Layout(width="auto"),
        )
        self.insight_button.add_class("oal-insight-button")
        self.insight_button.on_click(lambda _b: self._guard(self.toggle))
        self.final_status = widgets.Label("")  # wraps (the panel's CSS): a long saved path shows whole
        self.final_status.add_class("oal-final-status")
        self.forecast = widgets.HTML()
        self.forecast.add_class("oal-forecast")
        self.sources = widgets.HTML()
        self.sources.add_class("oal-sources")
        self.classes = widgets.HTML()
        self.classes.add_class("oal-classes")
        self.confusion = widgets.HTML()
        self.confusion.add_class("oal-confusion")
        self.most_wrong = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.most_wrong.add_class("oal-most-wrong")
        self.agreement = widgets.HTML()
        self.agreement.add_class("oal-agreement")
        self.details = widgets.VBox(
            [self.forecast, self.classes, self.sources, self.agreement, self.confusion, self.most_wrong],
            layout=widgets.Layout(display="none"),
        )
        self.details.add_class("oal-insight")
        buttons = widgets.HBox(
            [self.final_button, self.insight_button, self.final_status],
            layout=widgets.Layout(flex_flow="row wrap", align_items="center"),
        )
        self.box = widgets.VBox([buttons, self.details])

    def _guard(self, fn) -> None:
        """A button's click (the kernel's main thread): under the panel's lock, like a key."""
        try:
            with self._panel_lock:
                fn()
        except Exception as e:
            self._on_error(e)

    # --- the final fit -----------------------------------------------------------------------------------
    def final_fit(self, epochs: int = 30) -> concurrent.futures.Future:
        """Start the final fit in a worker thread; its Future's result is the model card."""
        with self._lock:
            running = self.final_future
            if running is not None and not running.done():
                return running
            future: concurrent.futures.Future = concurrent.futures.Future()
            self.final_future = future
        self.final_button.disabled = True
        self.final_status.value = f"final fit: training a new model on every label ({epochs} epochs)…"
        shown = [-1]

        def say(text: str) -> None:
            self._post(lambda: setattr(self.final_status, "value", text))

        def progress(done: int, total: int) -> None:
            percent = done * 100 // total
            if percent != shown[0]:  # a widget update per percent, not per step
                shown[0] = percent
                say(f"final fit: {percent}% ({done} / {total} steps)")

        def work():
            try:
                card = self.session.final_fit(epochs=epochs, progress=progress)
            except BaseException as e:
                say(f"final fit failed: {type(e).__name__}: {e}")
                future.set_exception(e)
            else:
                acc = card["metrics"]["accuracy"]
                shown_acc = "no test labels" if acc is None else f"test accuracy {acc:.1%}"
                say(
                    f"final fit: {shown_acc} on {card['metrics']['n_test']} test images; "
                    f"saved {card['files']['model']} and model_card.json"
                )
                future.set_result(card)
            finally:
                self._post(lambda: setattr(self.final_button, "disabled", False))

        threading.Thread(target=work, name="oal-final-fit", daemon=True).start()
        return future

    # --- model insight -------------------------------------------------------------------------------------
    def toggle(self) -> None:
        if self.details.layout.display != "none":
            self.details.layout.display = "none"
            return
        self.details.layout.display = None
        self.confusion.value = "<p>model insight: predicting the test split…</p>"
        self.forecast.value = forecast_html(self.session)

        def work():
            try:
                sources = sources_html(self.session)  # store queries: here, not on the UI thread
                agreement = agreement_html(self.session)
                classes = classes_html(self.session)
                self._post(
                    lambda: (
                        setattr(self.sources, "value", sources),
                        setattr(self.agreement, "value", agreement),
                        setattr(self.classes, "value", classes),
                    )
                )
                result = self.session.diagnose(N_WRONG)
                tiles = self._tiles(result)  # decoding thumbnails: here, not on the UI thread
                self._post(lambda: self.show(result, tiles))
            except Exception as e:
                text = f"<p>model insight failed: {html.escape(f'{type(e).__name__}: {e}')}</p>"
                self._post(lambda: setattr(self.confusion, "value", text))

        threading.Thread(target=work, name="oal-insight", daemon=True).start()

    def _tiles(self, result) -> list:
        tiles = []
        for item in (result or {}).get("most_wrong", ()):
            try:
                png = self.session.display_png(item["path"])
            except Exception:
                continue  # an unreadable file: the list says so elsewhere
            look = widgets.Layout(width=THUMB_SIDE, height=THUMB_SIDE, object_fit="contain")
            image = widgets.Image(value=png, format="png", layout=look)
            caption = widgets.HTML(
                f"<small><code>{html.escape(item['path'])}</code><br>label {html.escape(item['label'])}"
                f" · model {html.escape(item['predicted'])} ({item['confidence']:.0%})</small>"
            )
            tiles.append(widgets.VBox([image, caption], layout=widgets.Layout(width="150px")))
        return tiles

    def show(self, result: dict | None, tiles=None) -> None:
        self.details.layout.display = None
        self.forecast.value = forecast_html(self.session)
        self.sources.value = sources_html(self.session)
        self.agreement.value = agreement_html(self.session)
        self.classes.value = classes_html(self.session)
        if result is None:
            self.confusion.value = "<p>no model yet: the trainer is still starting (or in error)</p>"
            self.most_wrong.children = []
            return
        tiles = self._tiles(result) if tiles is None else tiles
        self.most_wrong.children = tiles or [widgets.HTML("<p>no test image is misclassified</p>")]
        self.confusion.value = diagnostics.confusion_html(result)  # last: the table means "all shown"


def classes_html(session) -> str:
    """Per class: labels given, the model's accuracy on it with its band, images it assigns to it."""
    from ..session.classes import class_table

    rows = []
    for c in class_table(session):
        if c["recall"] is None:
            measured = "<td>not measured yet</td>"
        else:
            measured = f"<td>{c['recall']:.0%} ({c['low']:.0%}–{c['high']:.0%}, {c['n']} labels)</td>"
        few = " class='oal-class-few'" if c["train"] < FEW else ""
        rows.append(
            f"<tr{few}><td>{html.escape(c['name'])}</td><td>{c['train']} + {c['test']} test</td>"
            f"{measured}<td>{c['predicted']}</td></tr>"
        )
    return (
        "<div><b>per class</b><table><tr><th>class</th><th>labels</th><th>model right on it (95% band)</th>"
        "<th>unlabelled it predicts</th></tr>" + "".join(rows) + "</table>"
        "<p>A class with few labels: on one of its images, <i>more like this</i> shows a page of the images "
        "most like it. To stop once a class is learnt: "
        "<code>early_stopping={'recall:&lt;class&gt;': (None, 0.8)}</code>.</p></div>"
    )


#: Classes with fewer training labels than this are marked in the table.
FEW = 5


def sources_html(session) -> str:
    """Labels per source, and how to look at the accepted ones (they are where a model's bias creeps in)."""
    counts = session.counts_by_source()
    shown = " · ".join(f"{html.escape(source)} {n}" for source, n in counts.items())
    reviewable = len(session.first_sight())
    return (
        f"<p>labels by source: {shown}. Accepted labels are the model's predictions you took: check them "
        f"per class in an export (the <code>source</code> column). Press r for the review queue: it ranks "
        f"{reviewable} training labels by how likely they are wrong (your own labels; an accepted one "
        f"ranks as sure as the prediction you took).</p>"
    )


#: Conflicts listed in the panel (all of them are in ``session.conflicts()`` and the exports).
N_CONFLICTS = 20


def agreement_html(session) -> str:
    """Agreement per pair of annotators (percent, Cohen's kappa) and the conflicts left to settle."""
    pairs = session.agreement()
    if not pairs:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(p.a)} / {html.escape(p.b)}</td><td>{p.n}</td><td>{p.percent:.0f}%</td>"
        f"<td>{'-' if p.kappa is None else f'{p.kappa:.2f}'}</td></tr>"
        for p in pairs
    )
    conflicts = session.conflicts()
    listed = "".join(
        f"<li><code>{html.escape(c.path)}</code>: "
        + ", ".join(f"{html.escape(who)} {html.escape(label)!r}" for who, label in sorted(c.labels.items()))
        + f" (stands: {html.escape(str(c.standing))})</li>"
        for c in conflicts[:N_CONFLICTS]
    )
    more = f"<p>… and {len(conflicts) - N_CONFLICTS} more</p>" if len(conflicts) > N_CONFLICTS else ""
    return (
        "<div><b>agreement between annotators</b> (images both labelled)<table>"
        "<tr><th>pair</th><th>images</th><th>agree</th><th>Cohen's kappa</th></tr>" + rows + "</table>"
        f"<p>{len(conflicts)} conflict(s) to settle (<code>annotator.session.settle(path, label)</code>):</p>"
        f"<ul>{listed}</ul>{more}</div>"
    )


def forecast_html(session) -> str:
    from ..reports.forecast import MIN_POINTS, standing_curve

    f = session.forecast()
    if f is None:  # evaluations undone since do not count (the curve drawn leaves them out too)
        return (
            f"<p>forecast: needs {MIN_POINTS} evaluations of the learning curve "
            f"(has {len(standing_curve(session.history))})</p>"
        )
    band = f"{f.asymptote_low:.2f}–{f.asymptote_high:.2f}"
    text = f"{f.metric} {f.current:.3f} at the last evaluation ({f.n_labels} labels)"
    given = session.progress()["labelled"]
    if given != f.n_labels:
        text += f"; {given} labels now, the next evaluation follows them"
    text += f"; the curve levels off near {band}"
    if f.target is None:
        text += ". Set early_stopping={'accuracy': (None, 0.95)} to forecast the labels needed to reach it"
    else:
        text += f". {f.message}"
    return f"<p>forecast: {html.escape(text)}</p>"
