"""The training thread: a ``TrainingCore`` run in a daemon thread, fed through an inbox.

The trainer never touches widgets. It reads commands from ``inbox`` (``messages.py``) and publishes
immutable ``Update`` objects (``latest``, ``on_update`` and the ``updates`` queue) after releasing its
lock. The loop never blocks on the inbox for ever and stops in bounded time from any state (the
original framework could deadlock on stop), saving ``model.keras`` and ``metrics.csv``.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import weakref

from ..messages import Stop, Update
from . import checkpoint
from .core import TrainingCore

log = logging.getLogger(__name__)

#: How long the idle loop blocks on the inbox before looking again (never forever: a stop must get through).
IDLE_WAIT_S = 0.2
#: At interpreter exit (a kernel shut down) a running trainer stops and saves within this bound: a daemon
#: thread torn down inside TensorFlow's C++ would abort the process instead.
EXIT_STOP_S = 10.0
_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for trainer in list(_LIVE):
        if trainer.is_alive():
            trainer.stop(timeout=EXIT_STOP_S)


class Trainer(TrainingCore, threading.Thread):
    """Trains a Keras model in a daemon thread on every label it is sent.

    Args:
        pool: an ``ImagePool`` (``.paths``, ``.arrays(paths)``).
        label_names: class names; the class index is the position.
        config: the session's ``Config``.
        test_paths: the test split; never trained on, even if sent with ``split="train"``.
        workdir: where ``model.keras`` and ``metrics.csv`` are written.
        model_fn: ``(num_classes, input_shape) -> compiled keras.Model``; default ``models.default_model_fn``.
        on_update: called with every ``Update`` after the trainer released its lock; must be quick (the
            session only queues it); exceptions are logged.
        resume_model: a saved ``.keras`` to continue from (at the first build only) when it fits.
    """

    def __init__(self, pool, label_names, config, **kwargs):
        threading.Thread.__init__(self, name="oal-trainer", daemon=True)
        TrainingCore.__init__(self, pool, label_names, config, **kwargs)
        self.inbox: queue.Queue = queue.Queue()
        self._in_thread = False
        _LIVE.add(self)

    def send(self, command) -> None:
        """Queue a command for the thread; never blocks."""
        self.inbox.put_nowait(command)

    # --- the thread ----------------------------------------------------------------------------------
    def run(self) -> None:
        """Thin loop: drain commands without blocking while there is work; block briefly when idle.

        Every step is guarded: an exception becomes an error Update, never a dead thread."""
        self._in_thread = True
        try:
            if self.stop_reason is None:
                self._guard(self.build)
                self._guard(self.first_order)
            while self.stop_reason is None:
                self._drain()
                if self.stop_reason is None:
                    self._guard(self._tick)
        except BaseException as e:  # never lose an error silently, even a surprising one
            self._fail(f"the trainer stopped unexpectedly: {type(e).__name__}: {e}")
            self.stop_reason = self.stop_reason or f"unexpected error: {type(e).__name__}: {e}"
        finally:
            self._finish(self.stop_reason or "stopped")

    def _tick(self) -> None:
        if self._has_work():
            self._work()
        elif self._prefill_pending():  # idle: decode / embed the pool ahead, a short chunk at a time
            self.prefill_step()
        else:
            self._publish_idle()
            try:
                command = self.inbox.get(timeout=IDLE_WAIT_S)
            except queue.Empty:
                return
            self.handle(command)

    def stop(self, timeout: float = 10.0) -> Update:
        """Stop, save and return the final Update, within ``timeout`` seconds from any state.

        Never started: stops (and saves a model built by ``build()``) in the calling thread. If the
        thread cannot finish in time (e.g. it is still importing TensorFlow, which cannot be
        interrupted), this returns an Update with status ``"stopping"`` at the deadline; the thread then
        saves and publishes ``"stopped"`` as soon as the import returns.
        """
        self._stopping.set()
        if self._finished:
            return self.latest
        if self.ident is None:  # never started: nobody else will finish
            self.stop_reason = self.stop_reason or Stop().reason
            return self._finish(self.stop_reason)
        self.send(Stop())
        if threading.current_thread() is self:  # e.g. from on_update: cannot join ourselves
            return self.latest
        self.join(timeout)
        if self.is_alive():
            return Update(
                status="stopping",
                n_labels=len(self.labels.train),
                metrics=tuple(self.history),
                message=f"the trainer is still busy ({self.latest.status}); it will save as soon as it can",
            )
        return self.latest

    def _finish(self, reason: str) -> Update:
        """Final evaluation if it adds anything, save, publish 'stopped'. Runs once."""
        with self._locked():
            if self._finished:
                return self.latest
            self._note("stopping", message=reason)
            message = reason
            try:
                self._train_fresh()
            except Exception as e:
                log.exception("final training steps failed")
                message += f"; the last training steps failed ({type(e).__name__}: {e})"
            if self.model is not None and self._error is None and self._steps_since_eval > 0:
                try:
                    self.evaluate()
                except Exception as e:
                    log.exception("final evaluation failed")
                    message += f"; the final evaluation failed ({type(e).__name__}: {e})"
            # A failed model (e.g. NaN weights) must not overwrite a good model.keras.
            model = self.model if self._error is None else None
            if self.model is not None and model is None:
                message += "; the model was not saved because of the error"
            try:
                saved = checkpoint.save(self.workdir, model, self.history, self.sight)
            except Exception as e:
                log.exception("saving failed")
                saved = {}
                message += f"; saving to {self.workdir} failed ({type(e).__name__}: {e}): check the folder"
            self._finished = True
            return self._note("stopped", message=message, saved=saved)

    def _train_fresh(self) -> None:
        """At stop: steps (at most a round) until every label has been in a batch, so the saved model
        knows the last image labelled, or every label when the person was faster than the TF import."""
        for _ in range(self.config.train_steps):
            if self.model is None or self._error is not None or self._paused or not self.labels.train:
                return
            if not self.labels.has_fresh or not self._step():
                return

    # --- the loop's helpers --------------------------------------------------------------------------
    def _between_steps(self) -> None:
        if self._in_thread:
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                command = self.inbox.get_nowait()
            except queue.Empty:
                return
            self._guard(self.handle, command)

    def _has_work(self) -> bool:
        return self._can_train() and self._idle < self.config.idle_rounds

    def _work(self) -> None:
        """One round, then the evaluation and the query when enough new labels were trained on."""
        if not self.train_round():
            return
        if self.cadence.eval_due:
            self.evaluate()
        if self.stop_reason is None and self.cadence.query_due:
            self.query()

    def _prefill_pending(self) -> bool:
        return self._may_prefill() and self.idle_work.pending()

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as e:
            log.exception("trainer step failed")
            self._fail(
                f"unexpected error in the trainer: {type(e).__name__}: {e}. Labels are kept; "
                "press Retry or Stop (and please report it)"
            )

    def _publish_idle(self) -> None:
        state = self._state()
        if state != "error":  # the error Update already says what to do; don't overwrite its message
            with self._locked():
                self._note_if_changed(state)
