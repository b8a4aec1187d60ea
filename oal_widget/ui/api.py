"""The panel's Python API, what a notebook cell calls on an ``Annotator`` besides ``stop``: its labels,
history, model and workdir, the final fit, exports, insight. A part of ``Annotator`` (its base class):
the attributes it reads are declared below, and the panel sets them up."""

from __future__ import annotations

import threading

from ..session.session import Session
from .insight import Insight


class PanelApi:
    session: Session
    insight: Insight
    _lock: threading.RLock

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

    def final_fit(self, epochs: int = 30, wait: bool = False):
        """Train a new model from scratch on every label and save ``<workdir>/final/model.keras`` + card.

        Runs in a worker thread; returns a ``concurrent.futures.Future`` whose result is the model
        card (a dict). ``wait=True`` blocks until it is done and returns the card: do not use that in
        the cell that shows the panel (keys are not processed while a cell runs).
        """
        future = self.insight.final_fit(epochs)
        return future.result() if wait else future

    def export(self, out, format: str | None = None, *, split: str = "all"):
        """Write the labels as ``csv``, ``json`` or class ``folders`` (``image_dataset_from_directory``
        loads those as is). The format is guessed from ``out`` when not given. Returns an
        ``exports.ExportResult``."""
        return self.session.export(out, format, split=split)

    def diagnose(self, n_wrong: int = 8) -> dict | None:
        """Confusion matrix, per-class accuracy and most wrong test images of the live model; also shown
        in the panel. None while there is no model yet. Blocks for one pass over the test split."""
        result = self.session.diagnose(n_wrong)
        with self._lock:
            self.insight.show(result)
        return result

    def forecast(self, metric: str = "accuracy", target: float | None = None):
        """Labels the learning curve suggests are still needed (see ``forecast.forecast``)."""
        return self.session.forecast(metric, target)
