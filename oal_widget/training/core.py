"""The synchronous core of online training: the labels so far, the model, and one step of each job.

``build``, ``handle`` (a command), ``train_round``, ``evaluate``, ``query``, ``save``, ``final_fit`` and
``diagnose``, each under one lock, each making immutable ``Update``s that are delivered (``publisher``)
after the lock is released. ``simulate`` drives this core directly; ``trainer.Trainer`` runs it in a
thread. The jobs live in their own modules: ``learner`` (the model and its steps), ``cadence`` (when),
``evaluation``, ``querying``, ``schedules``, ``checkpoint``, ``final_fit``, ``frozen``, ``devices``.
TensorFlow is imported by ``build()`` only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..config import Config
from ..messages import Labelled, Pause, Reserve, Resume, Retry, Stop, Unlabelled, Update
from . import checkpoint, evaluation
from .cadence import Cadence
from .devices import Devices
from .first_sight import FirstSight
from .graph import GraphBlend
from .idle import IdleWork
from .labelset import LabelSet
from .learner import Learner, TrainingError
from .per_class import check_class_thresholds
from .publisher import Publisher, Publishing
from .querying import Querier
from .schedules import Schedule

log = logging.getLogger(__name__)


class TrainingCore(Publishing):
    """Online training on every label it is given, one synchronous step at a time (see ``Trainer``)."""

    def __init__(
        self,
        pool,
        label_names: Iterable[str],
        config: Config,
        *,
        test_paths: Iterable[str],
        workdir,
        model_fn: Callable | None = None,
        on_update: Callable[[Update], None] | None = None,
        resume_model=None,
    ):
        self.label_names = list(label_names)
        if not self.label_names or len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"label_names={self.label_names!r} is invalid: expected distinct class names")
        check_class_thresholds(config.early_stopping, self.label_names)
        self.pool = pool
        self.config = config
        self.workdir = Path(workdir)
        self.model_fn = model_fn
        self.publisher = Publisher(on_update)
        self._resume = Path(resume_model) if resume_model is not None else None

        #: Every Update too (the newest 1000 if nobody reads them).
        self.updates = self.publisher.updates
        #: Every evaluation so far (plain floats/ints).
        self.history: list[dict] = []
        #: Why the trainer should stop (a Stop command or an early-stopping threshold); None = go on.
        self.stop_reason: str | None = None
        #: The model of the last ``final_fit`` (trained from scratch on every label), or None.
        self.final_model = None

        self.labels = LabelSet(self.label_names, test_paths)
        self.learner = Learner(pool, self.label_names, config, self.workdir, Devices(config.distribute))
        self.cadence = Cadence(config.eval_every, config.query_every)
        self.querier = Querier(config, self.label_names)
        self.schedule = Schedule(config, model_fn)
        self._correct: dict[str, bool] = {}  # path -> right, at the last evaluation
        #: Label spreading over the images, blended with the network (``graph``).
        self.graph = GraphBlend(pool, self.learner, self.label_names, config.seed, config.propagation)
        self.sight = FirstSight(self.learner, self.graph, self.labels)
        #: path -> class probabilities the classifier gave a training image before it learnt its label.
        self.first_sight = self.sight.probs
        self._lock = threading.RLock()  # the sync API may be called while the thread runs
        self._depth = 0  # nesting of _locked(): updates are delivered when it returns to 0
        self._stopping = threading.Event()  # also cancels a final fit
        self._t0 = time.monotonic()
        self._paused = False
        self._error: str | None = None  # set: the model is unusable until Retry
        self._finished = False
        self._built_once = False
        self._idle = 0  # complete rounds since the last new label
        self._catch_up = 0  # extra steps owed by a schedule's reset
        self._steps_since_eval = 0
        self._told_no_test = False
        self.idle_work = IdleWork(pool, self.learner, self.graph)

    # --- public state ----------------------------------------------------------------------------

    @property
    def model(self):
        return self.learner.model

    @property
    def test_paths(self) -> frozenset[str]:
        """The fixed test split (labelled or not)."""
        return self.labels.test_paths

    @property
    def training_set_size(self) -> int:
        """Training labels the next batch is drawn from: it grows with every new label."""
        return len(self.labels.train)

    @property
    def trained_paths(self) -> set[str]:
        """Every path that has been in a training batch (never a test path)."""
        return self.learner.trained_paths

    @property
    def label_latency(self):
        """(path, seconds from the send of a new training label to the end of its first step), newest 1000."""
        return self.labels.latency

    @property
    def frozen_backbone(self) -> bool:
        """True when training and queries run the head over cached embeddings."""
        return self.learner.frozen_backbone

    @property
    def error(self) -> str | None:
        """The error message while the trainer waits for Retry, else None."""
        return self._error

    # --- synchronous API -----------------------------------------------------------------------------
    def build(self) -> bool:
        """Import TensorFlow and build (at the first build: or reload) the model. False, with an error
        Update, if it failed."""
        with self._locked():
            self._note("importing", message="importing TensorFlow and building the model")
            resume = self._resume if not self._built_once else None
            self._built_once = True
            try:
                note = self.learner.build(self.model_fn, resume)
            except TrainingError as e:
                self._fail(str(e))
                return False
            if resume is not None and note.startswith("continuing") and not self.history:
                self.history = checkpoint.load_metrics(self.workdir)
                if self.history:  # seconds go on from where the earlier session ended
                    self._t0 = time.monotonic() - self.history[-1]["seconds"]
            if not self.sight.restored:  # at the first build that succeeds
                checkpoint.load_first_sight(self.workdir, self.sight)
            self._error = None
            self._idle = 0
            self._note(self._state(), message=note)
            return True

    def handle(self, command) -> None:
        """Apply one command from the inbox (labels, undo, pause, resume, retry, stop)."""
        with self._locked():
            if isinstance(command, Labelled):
                problem = self.labels.problem(command.path, command.label, command.split)
                if problem is not None:
                    self._note("error", message=f"{problem} (training goes on)")
                else:
                    if self._first_sight(command):  # before the model learns it (``first_sight``)
                        self.sight.score(command.path, command.label, command.source)
                    if self.labels.add(command.path, command.label, command.split, command.sent_at):
                        self._idle = 0  # new or changed data: train again even if it had gone idle
            elif isinstance(command, Unlabelled):
                if self.labels.remove(command.path, command.paid):
                    self._idle = 0  # the training set changed: train on it again
            elif isinstance(command, Pause):
                self._paused = True
                self._note("paused", message="paused: labels are still received")
            elif isinstance(command, Resume):
                self._paused = False
                self._idle = 0
                self._note(self._state())
            elif isinstance(command, Retry):
                if command.model_fn is not None:  # build with the fixed function, never the old file
                    self.model_fn = self.schedule.model_fn = command.model_fn
                self.build()
            elif isinstance(command, Stop):
                self._stopping.set()
                self.stop_reason = self.stop_reason or command.reason
            elif isinstance(command, Reserve):  # near-duplicates of a test image: never trained on
                self.labels.extend_reserve(command.paths)
            else:
                self._note("error", message=f"unknown command {command!r} ignored (see messages.py)")

    def train_round(self) -> bool:
        """``config.train_steps`` gradient steps on batches drawn from ALL training labels.

        True when the round completed; False when there was nothing to do, or a Stop, Pause or error
        cut it short. In the thread, the inbox is read between steps.
        """
        with self._locked():
            if not self._can_train():
                return False
            started_with = (self.labels.added, self.labels.added_test)
            self._note_if_changed("training")
            self._catch_up += self.schedule.maybe_reset(self.learner, len(self.labels.train))
            steps, self._catch_up = self.config.train_steps + self._catch_up, 0
            for done in range(steps):
                self._catch_up = max(0, steps - self.config.train_steps - done)  # kept if cut short
                self._between_steps()
                if not self._can_train():
                    return False
                if not self._step():
                    return False
            self.cadence.round_done(*started_with)
            self._idle += 1
            return True

    def evaluate(self) -> dict | None:
        """Estimate the model's accuracy with its interval (``evaluation.evaluate``); append the row to
        ``history`` and rewrite ``metrics.csv``. None when there is no evaluation label yet (or no
        model). Checks the early-stopping thresholds, on the interval, and sets ``stop_reason``."""
        with self._locked():
            if self.model is None or self._error is not None:
                return None
            rng = np.random.default_rng((self.config.seed, len(self.history)))
            self._note("evaluating")
            result = evaluation.evaluate(self.classify, self.labels, self.sight.for_estimate(), rng)
            if result is None:
                if not self._told_no_test:
                    self._told_no_test = True
                    self._note(self._state(), message="no evaluation label yet: metrics will follow")
                return None
            self._told_no_test = False
            row, self._correct = result
            row["seconds"] = round(time.monotonic() - self._t0, 3)
            self.history.append(row)
            self.cadence.evaluated()
            self._steps_since_eval = 0
            checkpoint.write_progress(self.workdir, self.history, self.sight)
            if self._correct:
                self.querier.credit(self._correct)
            config = self.config
            reason = evaluation.threshold_crossed(row, config.early_stopping, config.min_test_labels)
            if reason is not None:
                self.stop_reason = self.stop_reason or reason
            self._note(self._state(), message=reason or "")
            return row

    def query(self) -> Update:
        """Score the unlabelled pool and publish the new order (a permutation of the candidates)."""
        with self._locked():
            if self.model is None or self._error is not None:
                return self.latest
            self._note("querying")
            order, predictions = self.querier.query(
                self.learner,
                self.graph,
                self.pool.paths,
                self.labels,
                self._correct,
                progress=self._embedding_progress,
            )
            self.learner.pseudo.refresh(*self.querier.scored, self.labels, self.sight.recent())  # until next
            self.cadence.queried()
            return self._note(self._state(), order=order, predictions=predictions)

    def first_order(self) -> Update | None:
        """The cold-start order (``Querier.first_order``), published before the first label is trained
        on; None when the cold start is over or off."""
        with self._locked():
            if not self.querier.wants_first_order(self.labels):
                return None
            order = self.querier.first_order(self.graph, self.pool.paths, self.labels)
            return self._note(self._state(), order=order) if order else None

    def save(self) -> dict:
        """Write ``model.keras`` (when a model exists) and ``metrics.csv`` atomically; returns their paths."""
        with self._locked():
            return checkpoint.save(self.workdir, self.model, self.history, self.sight)

    def prefill_step(self) -> tuple[str, int, int] | None:
        """One short chunk of idle work (``idle.IdleWork``): (what, done, total); None: nothing left."""
        with self._locked():
            if not self._may_prefill():
                return None
            work = self.idle_work.step()
            if work is not None:
                self._note_work(*work)
                if self.graph.learned_ready() and self.querier.typical and work[1] == work[2]:
                    self.querier.typical = []  # the pool's representation is ready: the cold start again
                    self.first_order()
            index = self.idle_work.take_index()
            if index is not None:  # "more like this" searches it from the session's thread
                self._note(self._state(), message=self.latest.message, neighbours=index)
            return work

    # --- final model and diagnostics ---------------------------------------------------------------
    def final_fit(self, epochs: int = 30, out=None, progress=None, cancel=None, labels=None) -> dict:
        """Train a NEW model from scratch on every training label, evaluate it on the test split, save it
        with a model card (``final_fit.final_fit``); returns the card. In the CALLER's thread; stopping
        the trainer, or setting the ``threading.Event`` ``cancel``, cancels it (nothing is saved).
        ``labels`` (path -> label name, e.g. the store's) replaces the labels the trainer was sent."""
        from .final_fit import final_fit

        with self._lock:  # a snapshot: labels that arrive during the fit are for the next one
            train, test = self.labels.split_by_index(labels)
        card, self.final_model = final_fit(
            self.learner,
            self.model_fn,
            train,
            test,
            workdir=self.workdir,
            epochs=epochs,
            out=out,
            progress=progress,
            cancelled=lambda: self._stopping.is_set() or (cancel is not None and cancel.is_set()),
            history=list(self.history),
        )
        return card

    def diagnose(self, n_wrong: int = 8) -> dict | None:
        """Confusion matrix, per-class accuracy and most wrong images of the live model on the test split
        (None without a model); one prediction pass under the trainer's lock (the model isn't thread-safe)."""
        with self._locked():
            if self.model is None or self._error is not None:
                return None
            return evaluation.diagnose(self.classify, self.labels.test, self.label_names, n_wrong)

    # --- helpers ---------------------------------------------------------------------------------------
    def _between_steps(self) -> None:
        """Called between the steps of a round (the thread reads its inbox there)."""

    def classify(self, paths) -> tuple[np.ndarray, list[str]]:
        """(probabilities, the paths that loaded): the classifier now, the network blended with the
        graph (under the trainer's lock: the online model is not thread-safe)."""
        with self._locked():
            probs, loaded = self.learner.predict_paths(paths, self._embedding_progress)
            return self.graph.blend(loaded, probs), loaded

    def _embedding_progress(self, done: int, total: int) -> None:
        self._note_work("embedding images", done, total)

    def _first_sight(self, c: Labelled) -> bool:
        new = c.split == "train" and c.path not in self.labels.test_paths and c.path not in self.labels.train
        return new and self.sight.wants(c.path, c.fresh) and self.model is not None and self._error is None

    def _can_train(self) -> bool:
        return (
            self.model is not None
            and self._error is None
            and not self._paused
            and self.stop_reason is None
            and len(self.labels.train) > 0
        )

    def _step(self) -> bool:
        try:
            if not self.learner.step(self.labels):
                return len(self.labels.train) > 0
        except TrainingError as e:
            self._fail(str(e))
            return False
        self._steps_since_eval += 1
        return True

    def _may_prefill(self) -> bool:
        return (
            self.model is not None and self._error is None and not self._paused and self.stop_reason is None
        )

    def _fail(self, message: str) -> None:
        with self._locked():
            self._error = message
            self._note("error", message=message)

    def _state(self) -> str:
        if self._finished:
            return "stopped"
        if self.stop_reason is not None:
            return "stopping"
        if self._error is not None:
            return "error"
        if self._paused:
            return "paused"
        if self.model is None:
            return "importing"
        if not self.labels.train or self._idle >= self.config.idle_rounds:
            return "waiting"
        return "training"
