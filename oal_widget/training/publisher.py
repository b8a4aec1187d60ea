"""How the trainer tells the world: immutable ``Update``s, made under its lock, delivered after it.

``latest`` is current the moment an update is made; ``on_update`` receives every update in the order
they were made, from whichever thread released the trainer's lock last, never while that lock is held
(so a slow listener cannot stall training, and a listener calling the trainer cannot deadlock it).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..messages import Update

log = logging.getLogger(__name__)

#: Updates kept on ``updates`` when nobody reads them (the oldest are dropped).
MAX_QUEUED_UPDATES = 1000
#: Progress of long work (caching, embedding) is published at most this often, and once when it ends.
WORK_PUBLISH_S = 0.25


class Publisher:
    def __init__(self, on_update=None):
        self.on_update = on_update
        self.latest = Update(status="waiting", message="trainer not started")
        self.updates: queue.Queue = queue.Queue(maxsize=MAX_QUEUED_UPDATES)
        self._outbox: list[Update] = []
        self._outbox_lock = threading.Lock()
        self._deliver_lock = threading.RLock()  # a listener may call the trainer, which delivers again
        self._failures = 0
        self._work_at = 0.0

    def make(self, status: str, n_labels: int, metrics, **fields) -> Update:
        update = Update(status=status, n_labels=n_labels, metrics=tuple(metrics), **fields)
        with self._outbox_lock:
            self.latest = update
            if self.updates.full():  # keep the newest: nobody may be reading this queue
                with contextlib.suppress(queue.Empty):
                    self.updates.get_nowait()
            self.updates.put_nowait(update)
            self._outbox.append(update)
        return update

    def work_due(self, done: int, total: int) -> bool:
        """Throttle for progress updates; the end of the work is always due."""
        now = time.monotonic()
        if done < total and now - self._work_at < WORK_PUBLISH_S:
            return False
        self._work_at = now
        return True

    def deliver(self) -> None:
        """Hand every update made so far to ``on_update``, in order. Call it with the trainer's lock free."""
        with self._deliver_lock:
            with self._outbox_lock:
                pending, self._outbox = self._outbox, []
            if self.on_update is None:
                return
            for update in pending:
                try:
                    self.on_update(update)
                except Exception:
                    # Once with the traceback; a listener broken for good must not flood the log.
                    self._failures += 1
                    if self._failures == 1:
                        log.exception("on_update raised; training goes on (later failures: debug level)")
                    else:
                        log.debug("on_update raised again", exc_info=True)


class Publishing:
    """The trainer's side of publishing: its lock, and updates that are delivered when it is released.

    The attributes it reads are declared below; the class it is the base of (``core.TrainingCore``)
    sets them up.
    """

    _lock: threading.RLock
    _depth: int
    publisher: Publisher
    labels: Any  # a ``labelset.LabelSet`` (``.train``)
    history: list[dict]
    _state: Callable[[], str]

    @property
    def latest(self) -> Update:
        """The last update made."""
        return self.publisher.latest

    @contextlib.contextmanager
    def _locked(self):
        """The trainer's lock; when the outermost holder leaves, the updates it made are delivered."""
        with self._lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                outermost = self._depth == 0
        if outermost:
            self.publisher.deliver()

    def _note(self, status: str, **fields) -> Update:
        """Make an Update now (``latest`` is current at once); it is delivered when the lock is released."""
        with self._lock:
            update = self.publisher.make(status, len(self.labels.train), self.history, **fields)
        if self._depth == 0:
            self.publisher.deliver()
        return update

    def _note_if_changed(self, status: str) -> None:
        if self.latest.status != status or self.latest.n_labels != len(self.labels.train):
            self._note(status)

    def _note_work(self, what: str, done: int, total: int) -> None:
        """Progress of long work as ``Update.work``; the message stays (e.g. the build note)."""
        if self.publisher.work_due(done, total):
            status = (
                self.latest.status if self.latest.status in ("training", "evaluating", "querying") else None
            )
            self._note(status or self._state(), message=self.latest.message, work=(what, done, total))
