"""Trainer updates in the session: queued on the trainer's thread, applied on ONE thread, and what they
said (the latest update, the last predictions and long work, the final update with the files saved).

Headless, an update is applied as it arrives (under the session's lock). A panel passes ``on_ready``
and applies them itself on the thread that handles keys, so a key never races an update.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping

from ..messages import Update

log = logging.getLogger(__name__)


class Updates:
    """Args: the ``TrainerState`` to keep them in, the ``Order`` a query re-ranks, the session's lock,
    ``on_change(kind)`` after applying, ``on_ready()`` (None: apply at once)."""

    def __init__(self, state, order, lock, on_change=None, on_ready=None):
        self.state, self.order, self.lock = state, order, lock
        self.on_change, self.on_ready = on_change, on_ready
        self._queue: queue.SimpleQueue = queue.SimpleQueue()

    def put(self, update: Update) -> None:
        """The trainer's callback (its thread, outside its lock): hand the update over. Never raises."""
        self._queue.put(update)
        try:
            if self.on_ready is not None:
                self.on_ready()
            else:
                self.apply_pending()
        except Exception:
            log.exception("handing a trainer update over failed")

    def apply_pending(self) -> set[str]:
        """Apply every queued update, in order; the kinds of change (each passed to ``on_change``)."""
        kinds = set()
        with self.lock:  # two threads draining at once must not apply the updates out of order
            while True:
                try:
                    update = self._queue.get_nowait()
                except queue.Empty:
                    break
                kinds.add(self.apply(update))
        for kind in sorted(kinds):
            if self.on_change is not None:
                try:
                    self.on_change(kind)
                except Exception:
                    log.exception("on_change(%r) failed", kind)
        return kinds

    def apply(self, update: Update) -> str:
        with self.lock:
            if update.order is not None:
                self.order.rank(update.order)
            return self.state.take(update)


class TrainerState:
    def __init__(self):
        self.latest = Update(status="waiting", message="the trainer has not started")
        #: The last query's predictions (what the grid's surest pages draw from).
        self.latest_predictions: Mapping[str, tuple[str, float]] = {}
        #: Every image's latest prediction, from whichever query scored it last (an image undone, or not
        #: in the last query's sample, keeps its own), with the training labels its model had: one tuple
        #: per image, replaced whole, so a reader on another thread never pairs two queries' parts.
        self.predictions: dict[str, tuple[str, float, int | None]] = {}
        #: Training labels the model of the last query had.
        self.predicted_at: int | None = None
        self.work: tuple[str, int, int] | None = None
        #: The pool's features for "more like this" (``al.neighbours.Neighbours``) once built.
        self.neighbours = None
        self.final: Update | None = None

    def take(self, update: Update) -> str:
        """Keep ``update``; the kind of change: "stopped", "metrics", "order" or "status"."""
        previous, self.latest = self.latest, update
        if update.status == "stopped":
            self.final = update
        if update.predictions:  # only query updates carry them
            self.latest_predictions = update.predictions
            n = update.n_labels
            self.predictions.update({p: (str(v[0]), float(v[1]), n) for p, v in update.predictions.items()})
            self.predicted_at = update.n_labels
        if update.work is not None:  # only progress updates carry it: keep the last one
            self.work = update.work
        if update.neighbours is not None:
            self.neighbours = update.neighbours
        if update.status == "stopped":
            return "stopped"
        if len(update.metrics) != len(previous.metrics):
            return "metrics"
        return "order" if update.order is not None else "status"

    def stopped_with(self, final: Update | None) -> None:
        """The Update that ``Trainer.stop`` returned (it may still be "stopping": then it saves later)."""
        if final is not None and (self.final is None or final.status == "stopped"):
            self.final = final
            if self.latest.status != "stopped":
                self.latest = final

    def prediction(self, path) -> tuple[str, float] | None:
        predicted = self.predictions.get(path) if path is not None else None
        return None if predicted is None else (predicted[0], predicted[1])

    def predicted_at_of(self, path) -> int | None:
        """Training labels the model had when it made ``path``'s prediction (None: none yet)."""
        predicted = self.predictions.get(path) if path is not None else None
        return None if predicted is None else predicted[2]

    def prediction_with_at(self, path) -> tuple[tuple[str, float] | None, int | None]:
        """``path``'s prediction and the labels its model had, read together (one tuple)."""
        predicted = self.predictions.get(path) if path is not None else None
        return (None, None) if predicted is None else ((predicted[0], predicted[1]), predicted[2])

    def halfwidth(self) -> float | None:
        """Half the width of the last estimate's interval (None before the first): fewer test labels are
        asked once the estimate is precise."""
        metrics = self.latest.metrics
        if not metrics or "accuracy_low" not in metrics[-1]:
            return None
        return (metrics[-1]["accuracy_high"] - metrics[-1]["accuracy_low"]) / 2

    def saved(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.final.saved.items()} if self.final is not None else {}
