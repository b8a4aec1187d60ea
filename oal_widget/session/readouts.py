"""What the panel reads from a session: the image's state, progress, counts, the status line, the
trainer's latest update. Read-only; every answer is O(1) or reads the front of the order only.

A part of ``Session`` (its base class): the attributes it reads are declared below, with their types, and
``Session`` sets them up; it changes none of them.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..config import Config
from ..data.pool import ImagePool, Skipped
from ..data.store import LabelStore
from ..messages import Update
from .leases import Leases
from .mirror import Mirror
from .order import Order
from .status import status_line
from .thumbnails import Thumbnails
from .to_trainer import TrainerCommands
from .updates import TrainerState


class Readouts:
    _lock: threading.RLock
    _mirror: Mirror
    _order: Order
    _leases: Leases
    _unreadable: dict[str, str]
    _trainer_state: TrainerState
    _commands: TrainerCommands
    paused: bool
    _stopped: bool
    _closed: bool
    config: Config
    thumbnails: Thumbnails
    pool: ImagePool
    store: LabelStore
    label_names: list[str]
    needs_labels: bool

    _trainer_method: Callable[[str], Callable]
    _wanted: Callable[[str], bool]
    another_store: Callable[[], LabelStore]

    def _read(self, read: Callable[[LabelStore], Any]) -> Any:
        """``read(store)``; after ``close``/``retire`` on a store opened for that read alone."""
        if not self.store.closed:
            return read(self.store)
        with self.another_store() as store:
            return read(store)

    def is_test(self, path: str | None) -> bool:
        return path in self._mirror.book.test

    def is_readable(self, path: str) -> bool:
        """False once the file turned out unreadable when decoded for display."""
        return path not in self._unreadable

    def label_of(self, path: str | None) -> str | None:
        """The label an image has now (None: unlabelled, or labelled by another annotator and shown to
        this one blind, for a second opinion)."""
        return None if self._mirror.blind(path) else self._mirror.get(path)

    def prediction(self, path: str | None) -> tuple[str, float] | None:
        """(class name, confidence) from the trainer's latest query, or None (never for a second
        opinion: the model learnt from the first label)."""
        return None if self._mirror.blind(path) else self._trainer_state.prediction(path)

    def is_second_opinion(self, path: str | None) -> bool:
        """Labelled by another annotator, shown to this one blind (``double_label``)."""
        return self._mirror.blind(path)

    def diagnose(self, n_wrong: int = 8) -> dict | None:
        """Confusion matrix, per-class accuracy, most wrong test images of the live model; None: no model."""
        return self._trainer_method("diagnose")(n_wrong)

    def forecast(self, metric: str = "accuracy", target: float | None = None):
        """How many more labels the learning curve suggests to reach ``target`` (default: the
        early-stopping bound of ``metric``); a ``forecast.Forecast``, or None with under 4 evaluations."""
        from ..reports.forecast import forecast, target_of

        if target is None:
            target = target_of(self.config.early_stopping, metric)
        return forecast(self.history, metric, target, seed=self.config.seed)

    def agreement(self) -> list:
        """Per pair of annotators: images both labelled, percent agreement, Cohen's kappa."""
        return self._read(lambda store: store.agreement())

    def conflicts(self) -> list:
        """Images whose annotators disagree and nobody settled yet, with each annotator's label."""
        return self._read(lambda store: store.conflicts())

    def order(self) -> list[str]:
        """The images still to label, in the order they will be shown (current first). O(n)."""
        with self._lock:
            return self._order.paths()

    def upcoming(self, n: int = 3) -> list[str]:
        """The next ``n`` images after the current one (cheap: looks at the front only)."""
        with self._lock:
            return self._order.upcoming(n)

    def page(self, n: int) -> list[str]:
        """The next ``n`` images still unlabelled in the order, current first (a grid page). Cheap."""
        with self._lock:
            head = [self._order.current] if self._order.current is not None else []
            ahead = head + self._order.upcoming(2 * n)  # images stepped back over may be labelled
            mirror, unreadable = self._mirror, self._unreadable  # second opinions are given one at a time
            return [p for p in dict.fromkeys(ahead) if mirror.get(p) is None and p not in unreadable][:n]

    def reserve(self, paths: list[str], n: int) -> list[str]:
        """The first ``n`` of ``paths`` claimed for this session (a grid page), in their order: a page
        shows no image another session holds, and none of its images is shown to anyone else."""
        with self._lock:
            return self._leases.take(list(dict.fromkeys(paths)), n)  # renewed while it is the page

    def surest(self, n: int) -> list[str]:
        """The ``n`` unlabelled training images the last query predicted most confidently (a page of
        labels to accept at a glance); never a test image nor a second opinion (their label must be the
        person's own, and a second opinion is given blind)."""
        with self._lock:
            test, wanted, blind = self._mirror.book.test, self._wanted, self._mirror.second  # given blind
            predictions = self._trainer_state.latest_predictions.items()
            scored = [(c, p) for p, (_, c) in predictions if p not in test and p not in blind]
            return [p for _, p in heapq.nlargest(n, ((c, p) for c, p in scored if wanted(p)))]

    def more_like(self, path: str | None, n: int) -> list[str]:
        """Up to ``n`` images still to label most like ``path`` in the trainer's feature space, most similar
        first (a grid page): never a test image (its label grades the model) nor a second opinion (given
        blind); [] until the trainer has indexed the pool (``more_like_ready``)."""
        index = self._trainer_state.neighbours
        if index is None or path is None:
            return []
        with self._lock:
            test, blind, wanted = self._mirror.book.test, self._mirror.second, self._wanted
            return index.nearest(path, n, keep=lambda p: p not in test and p not in blind and wanted(p))

    def shadowed(self, path: str) -> bool:
        """A test image with a near-duplicate among the training labels: its label grades nothing."""
        with self._lock:
            return self._mirror.shadowed(path)

    def near_duplicates(self, path: str | None) -> list[str]:
        """``path``'s near-duplicates still to label (``session.duplicates``); never a test image nor a
        second opinion (given blind)."""
        with self._lock:
            mirror, wanted = self._mirror, self._wanted
            test = mirror.book.test
            return [p for p in mirror.near(path) if p not in test and not mirror.blind(p) and wanted(p)]

    @property
    def more_like_ready(self) -> bool:
        """True once the trainer has the features of every image (it computes them while idle)."""
        return self._trainer_state.neighbours is not None

    @property
    def predicted_at(self) -> int | None:
        """Training labels the model of the last query had (None: no query yet)."""
        return self._trainer_state.predicted_at

    def predicted_at_of(self, path: str | None) -> int | None:
        """Training labels the model had when it predicted ``path`` (each image keeps its latest)."""
        return self._trainer_state.predicted_at_of(path)

    def prediction_with_at(self, path: str | None) -> tuple[tuple[str, float] | None, int | None]:
        """``prediction(path)`` and ``predicted_at_of(path)`` read together (never two queries' parts);
        (None, None) for a second opinion."""
        return (None, None) if self._mirror.blind(path) else self._trainer_state.prediction_with_at(path)

    def first_sight(self) -> dict:
        """path -> the class probabilities the model gave a training image BEFORE it learnt from its label
        (out of sample: what the review queue ranks by); {} while the trainer keeps none."""
        seen = getattr(self._commands.trainer, "first_sight", None)
        for _ in range(3):  # the trainer's thread adds to it: copy again if it grew during the copy
            try:
                return dict(seen or {})
            except RuntimeError:
                continue
        return {}

    def counts_by_source(self) -> dict[str, int]:
        """Standing labels per source (person, accepted, review, imported), from the store."""
        return self._read(lambda store: store.counts_by_source())

    def display_png(self, path: str) -> bytes:
        """PNG bytes of ``path`` for the panel (decoded ahead); ``ImageError`` for unreadable files."""
        return self.thumbnails.png(path)

    def ready_png(self, path: str, wait: float = 0.0) -> bytes | None:
        """``display_png`` once the prefetch has decoded ``path`` (waiting at most ``wait`` seconds for
        it), else None; never decodes, never sets a file aside."""
        return self.thumbnails.ready(path, wait=wait)

    def prefetch(self, n: int = 3) -> None:
        """Decode the next ``n`` images in the background so showing them costs no decoding."""
        self.thumbnails.prefetch(self.upcoming(n))

    def progress(self) -> dict[str, int]:
        with self._lock:
            book = self._mirror.book
            unreadable = sum(1 for p in self._unreadable if p not in book)
            return {
                "labelled": book.n_labelled,
                "total": len(book.pool) - unreadable,
                "test_labelled": book.n_test_labelled,
                "test_total": book.test_total,
            }

    def counts(self) -> dict[str, int]:
        """Images per label, in label order."""
        with self._lock:
            return self._mirror.book.per_label(self.label_names)

    @property
    def latest(self) -> Update:
        """The trainer's latest update (as applied)."""
        return self._trainer_state.latest

    @property
    def work(self) -> tuple[str, int, int] | None:
        """Long work the trainer is doing (caching or embedding images): (what, done, total); None
        when there is none (finished, or the trainer stopped)."""
        work = self._trainer_state.work
        if work is None or work[1] >= work[2] or self.stopped or self.latest.status == "stopping":
            return None
        return work

    @property
    def trainer_status(self) -> str:
        """The trainer's raw status (one of ``messages.STATUSES``)."""
        return self.latest.status

    @property
    def status(self) -> str:
        """One readable line: what the trainer does now and why."""
        return status_line(
            self.latest,
            needs_labels=self.needs_labels,
            started=self._commands.trainer is not None,
            stopped=self._stopped,
            paused=self.paused,
            test_total=self._mirror.book.test_total,
        )

    @property
    def metrics(self) -> tuple[Mapping[str, float], ...]:
        return self.latest.metrics

    @property
    def history(self) -> list[dict]:
        """Every evaluation so far as plain dicts."""
        return [dict(row) for row in self.latest.metrics]

    @property
    def stopped(self) -> bool:
        return self._stopped or self.latest.status == "stopped"

    @property
    def trainer_stopped(self) -> bool:
        """No trainer runs for this session (never started, or stopped and saved)."""
        return self._commands.trainer is None or self.latest.status == "stopped"

    @property
    def done(self) -> bool:
        """Every image labelled, or the trainer stopped (by the person or by a threshold)."""
        return self._order.current is None or self.stopped

    @property
    def skipped(self) -> list[Skipped]:
        """Files that cannot be used (found by the scan, the trainer or the display), one per path."""
        seen: dict[str, Skipped] = {}
        for item in list(self.pool.skipped):
            seen.setdefault(item.path, item)
        for path, reason in list(self._unreadable.items()):
            seen.setdefault(path, Skipped(path, reason))
        return list(seen.values())

    def passed_over(self) -> set[str]:
        """Images passed over because another session held them when this one looked (they come back
        when that session lets go of them)."""
        return self._leases.passed_over()

    def known_labels(self) -> dict[str, str]:
        """path -> label as this session knows it (the store's, as of its last write or refresh)."""
        with self._lock:
            return self._mirror.labels()

    @property
    def closed(self) -> bool:
        """``close()`` or ``retire()`` was called."""
        return self._closed

    def labels(self) -> dict[str, str]:
        """path -> label, read from the store (the source of truth)."""
        return dict(self._read(lambda store: store.labels()))
