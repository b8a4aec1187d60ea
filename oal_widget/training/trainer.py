"""The training thread: train on ALL labels so far, evaluate, query, early-stop, save.

The trainer never touches widgets. It reads commands from ``inbox`` (``messages.py``) and
publishes immutable ``Update`` objects (``latest``, ``on_update`` and the ``updates`` queue).
``run()`` is a thin loop over a synchronous API (``build``, ``handle``, ``train_round``,
``evaluate``, ``query``, ``save``) that the simulator and the tests drive without the thread.

TensorFlow is imported in ``build()`` only (from ``run()``), so creating a Trainer is cheap and
the panel can appear before the ~7 s import.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import logging
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..config import Config
from ..data.cache import CACHE_DIR
from ..messages import Labelled, Pause, Resume, Retry, Stop, Unlabelled, Update

log = logging.getLogger(__name__)

#: Images per forward pass when predicting, so memory stays bounded on big pools.
PREDICT_BATCH = 256
#: Embeddings per forward pass of the head in frozen-backbone mode (8192 x 1280 float32 = 42 MB): the
#: head is tiny, so per-call overhead would dominate with image-sized batches.
HEAD_BATCH = 8192
#: How long the idle loop blocks on the inbox before looking again (never forever: pitfall 3).
IDLE_WAIT_S = 0.2
#: Updates kept on ``Trainer.updates`` when nobody reads them (the oldest are dropped).
MAX_QUEUED_UPDATES = 1000
METRICS_COLUMNS = ("n_labels", "accuracy", "loss", "n_test", "seconds")
_EPS = 1e-7
#: shrink_perturb: weights become SHRINK * w + PERTURB * (a fresh initialisation) (Ash & Adams 2020).
SHRINK, PERTURB = 0.4, 0.1
#: Schedules other than ``warm`` reset first at this many training labels, then at each doubling.
RESET_MIN_LABELS = 20
#: After a reset, this many passes over the training labels (at least CATCH_UP_MIN_STEPS steps) are added
#: to the next round(s): a shrunk or new model is worse than the warm one until it has caught up.
CATCH_UP_EPOCHS = 10
CATCH_UP_MIN_STEPS = 100
#: Progress of long work (caching, embedding) is published at most this often, and once when it ends.
WORK_PUBLISH_S = 0.25


def _default_model_fn():
    from . import models

    return models.default_model_fn


class Trainer(threading.Thread):
    """Trains a Keras model in a daemon thread on every label it is sent.

    Args:
        pool: an ``ImagePool`` (``.paths``, ``.array(path)``, ``.arrays(paths)``).
        label_names: class names; the class index is the position.
        config: the session's ``Config``.
        test_paths: the test split; never trained on, even if sent with ``split="train"``.
        workdir: where ``model.keras`` and ``metrics.csv`` are written.
        model_fn: ``(num_classes, input_shape) -> compiled keras.Model``; default
            ``models.default_model_fn``.
        on_update: called with every ``Update`` from the publishing thread; exceptions are logged.
        resume_model: a saved ``.keras`` to continue from when it exists and fits the classes/shape.
    """

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
        super().__init__(name="oal-trainer", daemon=True)
        self.pool = pool
        self.label_names = list(label_names)
        if not self.label_names or len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"label_names={self.label_names!r} is invalid: expected distinct class names")
        self._index = {name: i for i, name in enumerate(self.label_names)}
        self.config = config
        self.test_paths = frozenset(test_paths)
        self.workdir = Path(workdir)
        self.model_fn = model_fn
        self.on_update = on_update
        self.resume_model = Path(resume_model) if resume_model is not None else None

        self.inbox: queue.Queue = queue.Queue()
        self.updates: queue.Queue = queue.Queue(maxsize=MAX_QUEUED_UPDATES)
        self.latest = Update(status="waiting", message="trainer not started")
        self.model = None
        #: Every evaluation so far (plain floats/ints).
        self.history: list[dict] = []
        #: Why the trainer should stop (a Stop command or an early-stopping threshold); None = go on.
        self.stop_reason: str | None = None
        #: Every path that has appeared in a training batch (lets tests check test images never do).
        self.trained_paths: set[str] = set()
        #: The model of the last ``final_fit`` (trained from scratch on every label), or None.
        self.final_model = None

        self._train: dict[str, int] = {}  # path -> class index, insertion order = labelling order
        self._test: dict[str, int] = {}
        self._lock = threading.RLock()  # the sync API may be called while the thread runs
        self._publish_lock = threading.Lock()
        self._rng = np.random.default_rng(config.seed)
        self._t0 = time.monotonic()
        self._paused = False
        self._error: str | None = None  # set: the model is unusable until Retry
        self._finished = False
        self._in_thread = False  # True inside run(): train_round then drains the inbox between steps
        # Monotonic count of new training labels; eval/query are due when enough of them were trained on.
        self._added = 0
        self._trained_added = 0  # value of _added at the start of the last COMPLETE round
        self._added_at_eval = 0
        self._added_at_query = 0
        self._idle = 0  # complete rounds since the last new label
        self._queries = 0
        # Label efficiency (issue 4): the query strategy object (a bandit keeps state across queries),
        # the accuracy before the pending bandit arm's labels, the schedule's reset point and catch-up.
        self._strategy = None
        self._pending_arms: list = []  # (arm, accuracy before its labels) of each bandit draw
        self._labels_at_reset = 0
        self._catch_up = 0
        self._steps_since_eval = 0
        self._told_no_test = False
        self._callback_failures = 0
        # Performance (issue 5): new labels go into the very next batch; the time from send() to the end
        # of that step is kept in label_latency.
        self._sent_at: dict[str, float] = {}
        self._fresh: dict[str, None] = {}  # training labels not in any batch yet, oldest first
        #: (path, seconds from ``send`` to the end of the first training step that included it), newest 1000.
        self.label_latency: collections.deque = collections.deque(maxlen=1000)
        # Frozen-backbone mode (issue 5): the head over cached embeddings, for the model it was split from.
        self._head = None
        self._frozen_model = None
        self._embeddings = None
        self._prefill = None  # the idle-time walk over the pool (embed or decode ahead)
        self._prefill_for = None
        self._work_published = 0.0

    # --- public state ------------------------------------------------------------------------
    @property
    def training_set_size(self) -> int:
        """Training labels the next batch is drawn from (grows with every new label: pitfall 1)."""
        return len(self._train)

    @property
    def test_set_size(self) -> int:
        """Labelled test images the evaluation uses."""
        return len(self._test)

    @property
    def error(self) -> str | None:
        """The error message while the trainer waits for Retry, else None."""
        return self._error

    def send(self, command) -> None:
        """Queue a command for the thread; never blocks."""
        if (
            isinstance(command, Labelled) and self.ident is not None
        ):  # labels handed over at start don't count
            self._sent_at[command.path] = time.monotonic()
        self.inbox.put_nowait(command)

    # --- the thread ----------------------------------------------------------------------------
    def run(self) -> None:
        """Thin loop: drain commands without blocking while there is work; block briefly when idle."""
        self._in_thread = True
        try:
            if self.stop_reason is None:
                self._guard(self.build)
            while self.stop_reason is None:
                self._drain()
                if self.stop_reason is not None:
                    break
                if self._has_work():
                    self._guard(self._work)
                elif self._prefill_pending():  # idle: decode / embed the pool ahead, a short chunk at a time
                    self._guard(self.prefill_step)
                else:
                    self._publish_idle()
                    try:
                        command = self.inbox.get(timeout=IDLE_WAIT_S)
                    except queue.Empty:
                        continue
                    self._guard(self.handle, command)
        except BaseException as e:  # never lose an error silently, even a surprising one
            self._fail(f"the trainer stopped unexpectedly: {type(e).__name__}: {e}")
            self.stop_reason = self.stop_reason or f"unexpected error: {type(e).__name__}: {e}"
        finally:
            self._finish(self.stop_reason or "stopped")

    def stop(self, timeout: float = 10.0) -> Update:
        """Stop, save and return the final Update, within ``timeout`` seconds from any state.

        Never started: stops (and saves a model built by ``build()``) in the calling thread.
        If the thread cannot finish in time (e.g. it is still importing TensorFlow, which cannot be
        interrupted), this returns an Update with status ``"stopping"`` at the deadline; the thread
        then saves and publishes ``"stopped"`` as soon as the import returns.
        """
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
                n_labels=len(self._train),
                metrics=tuple(self.history),
                message=f"the trainer is still busy ({self.latest.status}); it will save as soon as it can",
            )
        return self.latest

    # --- synchronous API -------------------------------------------------------------------------
    def build(self) -> bool:
        """Import TensorFlow and build (or reload) the model. False, with an error Update, if it failed."""
        with self._lock:
            self._publish("importing", message="importing TensorFlow and building the model")
            from . import models  # imports TensorFlow: the slow part

            shape = self.config.input_shape
            n = len(self.label_names)
            note = ""
            model = None
            if self.resume_model is not None and self.resume_model.exists():
                try:
                    with self._scope():
                        model = models.reload_model(self.resume_model)
                    models.check_model(model, n, shape, source=f"the saved model {self.resume_model}")
                    note = f"continuing from {self.resume_model}"
                    self._load_metrics()
                except Exception as e:
                    model = None
                    note = f"could not continue from {self.resume_model} ({e}); training a new model"
                    log.warning(note)
            if model is None:
                model_fn = self.model_fn or models.default_model_fn
                name = getattr(model_fn, "__name__", "model_fn")
                if name == "<lambda>":
                    name = "model_fn"
                try:
                    with self._scope():  # a user's tf.distribute strategy: variables mirrored per device
                        model = model_fn(n, shape)
                except Exception as e:
                    problem = f"{name} raised {type(e).__name__}: {e}"
                else:
                    try:
                        models.check_model(model, n, shape, source=name)
                        problem = None
                    except Exception as e:
                        problem = str(e)
                if problem is not None:
                    self.model = None
                    self._fail(f"{problem}. Labels are kept: fix {name} and press Retry")
                    return False
            self.model = model
            try:
                note = "; ".join(filter(None, (note, self._setup_frozen())))
            except ValueError as e:
                self._fail(
                    f"{e}. Labels are kept: set frozen_backbone='auto' or fix the model_fn, and press Retry"
                )
                return False
            self._error = None
            self._idle = 0
            self._publish(self._state(), message=note)
            return True

    def handle(self, command) -> None:
        """Apply one command from the inbox (labels, undo, pause, resume, retry, stop)."""
        with self._lock:
            if isinstance(command, Labelled):
                self._on_labelled(command)
            elif isinstance(command, Unlabelled):
                if self._train.pop(command.path, None) is not None:
                    self._idle = 0  # the training set changed: train on it again
                self._test.pop(command.path, None)
            elif isinstance(command, Pause):
                self._paused = True
                self._publish("paused", message="paused: labels are still received")
            elif isinstance(command, Resume):
                self._paused = False
                self._idle = 0
                self._publish(self._state())
            elif isinstance(command, Retry):
                self.build()
            elif isinstance(command, Stop):
                self.stop_reason = self.stop_reason or command.reason
            else:
                self._publish(
                    "error",
                    message=f"unknown command {command!r} ignored; send one of the commands in messages.py",
                )

    def train_round(self) -> bool:
        """``config.train_steps`` gradient steps on batches drawn from ALL training labels.

        Returns True when the round completed; False when there was nothing to do, or a Stop,
        Pause or error cut it short. In the thread, the inbox is read between steps.
        """
        with self._lock:
            if not self._can_train():
                return False
            started_with = self._added
            self._publish_if_changed("training")
            self._maybe_reset()
            steps, self._catch_up = self.config.train_steps + self._catch_up, 0
            for done in range(steps):
                self._catch_up = max(0, steps - self.config.train_steps - done)  # kept if cut short
                if self._in_thread:
                    self._drain()
                    if not self._can_train() or self.stop_reason is not None:
                        return False
                if not self._step():
                    return False
            self._trained_added = started_with
            self._idle += 1
            return True

    def evaluate(self) -> dict | None:
        """Evaluate on the labelled test images; append to ``history`` and rewrite ``metrics.csv``.

        Returns the metrics row, or None when no test image is labelled yet (or no model exists).
        Checks the early-stopping thresholds and sets ``stop_reason`` when one is crossed.
        """
        with self._lock:
            if self.model is None or self._error is not None:
                return None
            X, y = self._labelled_arrays(self._test)
            if len(y) == 0:
                if not self._told_no_test:
                    self._told_no_test = True
                    self._publish(self._state(), message="no labelled test image yet: metrics will follow")
                return None
            self._told_no_test = False
            self._publish("evaluating")
            probs = self._predict(X)
            p_true = np.clip(probs[np.arange(len(y)), y], _EPS, 1.0)
            row = {
                "n_labels": len(self._train),
                "accuracy": float(np.mean(np.argmax(probs, axis=1) == y)),
                "loss": float(-np.mean(np.log(p_true))),
                "n_test": len(y),
                "seconds": round(time.monotonic() - self._t0, 3),
            }
            self.history.append(row)
            self._added_at_eval = self._trained_added
            self._steps_since_eval = 0
            self._write_metrics()
            self._reward_bandit(row["accuracy"])
            reason = self._threshold_crossed(row)
            if reason is not None:
                self.stop_reason = self.stop_reason or reason
            self._publish(self._state(), message=reason or "")
            return row

    def query(self) -> Update:
        """Score the unlabelled pool and publish the new order (a permutation of the candidates).

        Candidates are the pool's paths not labelled and not in the test split. Unlabelled test
        images are predicted too (the panel shows a prediction for them) but are not ranked.
        Images that fail to decode are kept at the end of the order, never dropped.
        """
        from ..al import rank

        with self._lock:
            if self.model is None or self._error is not None:
                return self.latest
            self._publish("querying")
            candidates, unlabelled_test = [], []
            for p in self.pool.paths:  # one pass: this runs over 100,000 paths per query
                if p in self.test_paths:
                    if p not in self._test:
                        unlabelled_test.append(p)
                elif p not in self._train and p not in self._test:
                    candidates.append(p)
            # Large pools: score a bounded random sample (issue 5); the rest follows unscored.
            candidates, rest = self._query_sample(candidates)
            # Test images only get a prediction to show; a tenth of the sample is plenty between queries.
            unlabelled_test, _ = self._query_sample(unlabelled_test, max(1, self.config.query_sample // 10))
            probs, scored = self._predict_paths(candidates)
            test_probs, test_scored = self._predict_paths(unlabelled_test)
            rng = np.random.default_rng(self.config.seed + self._queries)
            self._queries += 1
            strategy = self._query_strategy(rng)
            ranked = list(
                rank(
                    scored,
                    probs,
                    strategy,
                    self.config.policy,
                    rng,
                    epsilon=self.config.epsilon,
                    **self._query_inputs(strategy, scored),
                )
            )
            scored_set = set(scored)
            order = ranked + rest + [p for p in candidates if p not in scored_set]
            predictions = {}
            names = np.array(self.label_names, dtype=object)
            for paths, p in ((scored, probs), (test_scored, test_probs)):
                if len(paths):  # vectorised: tolist() gives plain str/float (JSON-safe) in one call each
                    best = np.argmax(p, axis=1)
                    confidence = p[np.arange(len(p)), best].astype(float).tolist()
                    shown = zip(names[best].tolist(), confidence, strict=True)
                    predictions.update(zip(paths, shown, strict=True))
            self._added_at_query = self._trained_added
            return self._publish(self._state(), order=tuple(order), predictions=predictions)

    def save(self) -> dict:
        """Write ``model.keras`` (when a model exists) and ``metrics.csv`` atomically; returns their paths."""
        return self._save(with_model=True)

    def _save(self, with_model: bool) -> dict:
        with self._lock:
            saved = {}
            model = self.model if with_model else None
            if model is None and not self.history:
                return saved
            self.workdir.mkdir(parents=True, exist_ok=True)
            if model is not None:
                target = self.workdir / "model.keras"
                # Keras insists on the .keras suffix; a temp file in the same folder + os.replace means a
                # kill during save never leaves a half-written model.keras.
                fd, tmp = tempfile.mkstemp(dir=self.workdir, prefix=".model-", suffix=".keras")
                os.close(fd)
                try:
                    model.save(tmp, overwrite=True)
                    os.replace(tmp, target)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                saved["model"] = str(target)
            saved["metrics"] = str(self._write_metrics())
            return saved

    # --- final model and diagnostics (issue 7) ------------------------------------------------
    def final_fit(self, epochs: int = 30, out=None, progress=None, cancel=None, labels=None) -> dict:
        """Train a NEW model from scratch on every training label, evaluate it on the test split, save it.

        Uses the session's ``model_fn``, ``input_shape``, ``batch_size`` and ``seed``; ``epochs``
        passes over the labels, in batches loaded chunk by chunk (bounded memory). Runs in the
        calling thread (the panel uses a worker thread) and leaves the online model alone, so
        labelling and online training go on. Writes ``<out>/model.keras`` and
        ``<out>/model_card.json`` (default ``out``: ``<workdir>/final``) and returns the card.
        ``progress(done_steps, total_steps)`` is called after each step; setting the
        ``threading.Event`` ``cancel`` stops the fit with ``RuntimeError`` (nothing is saved).
        ``labels`` (path -> label name, e.g. the store's) replaces the labels the trainer was sent;
        the test split decides which of them are test images.
        """
        import json
        import platform

        from .. import __version__
        from ..reports import diagnostics
        from . import models

        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs={epochs!r} is invalid: expected a whole number >= 1, e.g. 30")
        if labels is not None:
            index = {p: self._index[lab] for p, lab in labels.items() if lab in self._index}
            train = {p: k for p, k in index.items() if p not in self.test_paths}
            test = {p: k for p, k in index.items() if p in self.test_paths}
        else:
            with self._lock:  # a snapshot: labels that arrive during the fit are for the next one
                train, test = dict(self._train), dict(self._test)
        if not train:
            raise ValueError("no training labels yet: label some images before the final fit")
        started = time.monotonic()
        n, shape = len(self.label_names), self.config.input_shape
        model_fn = self.model_fn or models.default_model_fn
        name = getattr(model_fn, "__name__", "model_fn")
        model = model_fn(n, shape)
        models.check_model(model, n, shape, source=name)
        rng = np.random.default_rng(self.config.seed)
        paths = list(train)
        batch = self.config.batch_size
        per_epoch = math.ceil(len(paths) / batch)
        total, done = epochs * per_epoch, 0
        for _ in range(epochs):
            order = rng.permutation(len(paths))
            for i in range(0, len(paths), batch):
                if cancel is not None and cancel.is_set():
                    raise RuntimeError("the final fit was cancelled; nothing was saved")
                X, loaded = self.pool.arrays([paths[j] for j in order[i : i + batch]])
                if loaded:
                    y = np.array([train[p] for p in loaded], dtype="int64")
                    loss = float(model.train_on_batch(X, y, return_dict=True)["loss"])
                    if not math.isfinite(loss):
                        raise ValueError(
                            f"the final fit's loss became {loss}: lower the learning rate in {name}, "
                            "or check the images"
                        )
                done += 1
                if progress is not None:
                    progress(done, total)
        test_paths, probs = [], []
        listed = list(test)
        for i in range(0, len(listed), PREDICT_BATCH):
            X, loaded = self.pool.arrays(listed[i : i + PREDICT_BATCH])
            if loaded:
                probs.append(np.asarray(model.predict_on_batch(X), dtype="float64"))
                test_paths.extend(loaded)
        probs_arr = np.concatenate(probs) if probs else np.zeros((0, n))
        y_test = [test[p] for p in test_paths]
        result = diagnostics.diagnose(test_paths, probs_arr, y_test, self.label_names)

        folder = Path(out) if out is not None else self.workdir / "final"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "model.keras"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model-", suffix=".keras")
        os.close(fd)
        try:
            model.save(tmp, overwrite=True)
            os.replace(tmp, target)  # never a half-written model.keras
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        counts = {split: dict.fromkeys(self.label_names, 0) for split in ("train", "test")}
        for split, labels in (("train", train), ("test", {p: test[p] for p in test_paths})):
            for k in labels.values():
                counts[split][self.label_names[k]] += 1
        import keras

        card = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "labels": list(self.label_names),
            "counts": counts,
            "metrics": {
                k: result[k] for k in ("n_test", "accuracy", "loss", "per_class_accuracy", "confusion")
            },
            "most_wrong": result["most_wrong"],
            "online_model_last_evaluation": dict(self.history[-1]) if self.history else None,
            "settings": {
                **self.config.to_dict(),
                "model_fn": name,
                "epochs": epochs,
                "steps": total,
                "input_shape": list(shape),
            },
            "versions": {
                "oal_widget": __version__,
                "python": platform.python_version(),
                "keras": keras.__version__,
                "tensorflow": _version("tensorflow"),
                "numpy": np.__version__,
            },
            "images_root": str(self.pool.root),
            "seconds": round(time.monotonic() - started, 3),
            "files": {"model": str(target), "card": str(folder / "model_card.json")},
        }
        card_tmp = folder / ".model_card.json.tmp"
        card_tmp.write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(card_tmp, folder / "model_card.json")
        self.final_model = model
        return card

    def diagnose(self, n_wrong: int = 8) -> dict | None:
        """Confusion matrix, per-class accuracy and most wrong images of the live model on the test split.

        None while there is no model (or it is in the error state). Holds the trainer's lock for one
        prediction pass over the labelled test images (the online model is not thread-safe).
        """
        from ..reports import diagnostics

        with self._lock:
            if self.model is None or self._error is not None:
                return None
            probs, scored = self._predict_paths(list(self._test))
            y = [self._test[p] for p in scored]
            return diagnostics.diagnose(scored, probs, y, self.label_names, n_wrong)

    # --- internals -----------------------------------------------------------------------------
    def _on_labelled(self, command: Labelled) -> None:
        index = self._index.get(command.label)
        if index is None:
            self._publish(
                "error",
                message=(
                    f"label {command.label!r} for {command.path} is not one of {self.label_names}; "
                    "the trainer ignored it (training goes on)"
                ),
            )
            return
        if command.split not in ("train", "test"):
            self._publish(
                "error",
                message=f"split {command.split!r} for {command.path} is invalid: expected 'train' or 'test'",
            )
            return
        # The test split is fixed: a test image is never trained on, whatever the sender says.
        is_test = command.split == "test" or command.path in self.test_paths
        if is_test:
            self._train.pop(command.path, None)
            self._test[command.path] = index
        else:
            self._test.pop(command.path, None)
            if command.path not in self._train:
                self._added += 1
                self._fresh[command.path] = None
            self._train[command.path] = index
            self._idle = 0  # new data: train again even if the trainer had gone idle

    def _drain(self) -> None:
        while True:
            try:
                command = self.inbox.get_nowait()
            except queue.Empty:
                return
            self._guard(self.handle, command)

    def _has_work(self) -> bool:
        return self._can_train() and self._idle < self.config.idle_rounds

    def _can_train(self) -> bool:
        return (
            self.model is not None
            and self._error is None
            and not self._paused
            and self.stop_reason is None
            and len(self._train) > 0
        )

    def _work(self) -> None:
        """One round, then the evaluation and the query when enough new labels were trained on."""
        if not self.train_round():
            return
        if self._trained_added - self._added_at_eval >= self.config.eval_every:
            self.evaluate()
        if self.stop_reason is None and self._trained_added - self._added_at_query >= self.config.query_every:
            self.query()

    def _step(self) -> bool:
        paths = list(self._train)
        size = min(self.config.batch_size, len(paths))
        chosen = [
            paths[i] for i in self._rng.choice(len(paths), size=size, replace=False, p=self._batch_weights())
        ]
        chosen = self._with_fresh(chosen)
        X, loaded = self._inputs(chosen)
        for path in set(chosen) - set(loaded):
            # The pool recorded why in pool.skipped; keep it out of every later batch.
            self._train.pop(path, None)
            log.warning("dropped %s from training: it could not be decoded", path)
        if not loaded:
            return len(self._train) > 0
        y = np.array([self._train[p] for p in loaded], dtype="int64")
        try:
            loss = self._fit_batch(X, y)
        except Exception as e:
            self._fail(
                f"a training step failed: {type(e).__name__}: {e}. Labels are kept; "
                "check model_fn (loss, input shape) and press Retry"
            )
            return False
        self.trained_paths.update(loaded)
        self._note_trained(loaded)
        self._steps_since_eval += 1
        if not math.isfinite(loss):
            self._fail(
                f"the training loss became {loss} with {len(self._train)} labels. Labels are kept; "
                "lower the learning rate in model_fn (or check the images) and press Retry"
            )
            return False
        return True

    # --- label efficiency (issue 4): query inputs, cold start, bandit, schedule, class balance -------
    def _query_strategy(self, rng: np.random.Generator):
        """The strategy for this query: ``random`` during the cold start, else the configured one
        (a bandit draws one of its arms here and is rewarded at the next evaluation)."""
        from ..al import get_strategy
        from ..al.adaptive import AdaptiveStrategy

        if self._strategy is None:
            self._strategy = get_strategy(self.config.strategy)  # fresh bandit state per trainer
        if self._in_cold_start():
            return "random"
        if isinstance(self._strategy, AdaptiveStrategy):
            arm = self._strategy.choose(rng)
            baseline = self.history[-1]["accuracy"] if self.history else None
            self._pending_arms.append((arm, baseline))
            return arm.strategy
        return self._strategy

    def _in_cold_start(self) -> bool:
        """Random order until every class has ``cold_start`` training labels; capped at 3x that per class
        overall, so a rare class cannot keep the session random for ever."""
        per_class = self.config.cold_start
        if per_class <= 0:
            return False
        k = len(self.label_names)
        if len(self._train) >= 3 * per_class * k:
            return False
        counts = np.bincount(np.fromiter(self._train.values(), dtype=np.int64), minlength=k)
        return bool(counts.min() < per_class)

    def _query_inputs(self, strategy, paths: list[str]) -> dict:
        """Extra inputs only when used: MC-dropout passes for BALD-like strategies, embeddings for kcenter."""
        from ..al import get_strategy, needs_mc_samples

        inputs = {}
        if self.config.diversity != "none":
            inputs.update(diversity=self.config.diversity, batch=self.config.query_every)
        if self.config.policy in ("power", "softmax"):
            inputs["temperature"] = self.config.temperature
        need_mc = needs_mc_samples(get_strategy(strategy))
        need_emb = self.config.diversity == "kcenter"
        if not paths or not (need_mc or need_emb):
            return inputs
        mc, emb = [], []
        embed = self._embedding_model() if need_emb else None
        for i in range(0, len(paths), PREDICT_BATCH):
            X, _ = self.pool.arrays(paths[i : i + PREDICT_BATCH])  # cached: these decoded a moment ago
            if need_mc:
                # training=True keeps dropout on: each pass is a sample from the approximate posterior.
                mc.append(
                    np.stack(
                        [np.asarray(self.model(X, training=True)) for _ in range(self.config.mc_samples)]
                    )
                )
            if need_emb:
                emb.append(np.asarray(embed.predict_on_batch(X)).reshape(len(X), -1))
        if need_mc:
            inputs["mc_probs"] = np.concatenate(mc, axis=1).astype("float64")
        if need_emb:
            inputs["embeddings"] = np.concatenate(emb).astype("float64")
        return inputs

    def _embedding_model(self):
        from . import models

        if getattr(self, "_embed_for", None) is not self.model:  # rebuilt when the model was replaced
            self._embed = models.embedding_model(self.model)
            self._embed_for = self.model
        return self._embed

    def _reward_bandit(self, accuracy: float) -> None:
        """Credit the bandit's pending arm with the accuracy gain its labels brought."""
        pending, self._pending_arms = self._pending_arms, []
        for arm, baseline in pending:
            if baseline is not None:
                self._strategy.reward(arm, accuracy - baseline)

    def _batch_weights(self) -> np.ndarray | None:
        """With ``class_balance``, each class gets the same share of every batch (None: uniform)."""
        if not self.config.class_balance or len(self._train) < 2:
            return None
        y = np.fromiter(self._train.values(), dtype=np.int64, count=len(self._train))
        w = 1.0 / np.bincount(y)[y]
        return w / w.sum()

    def _maybe_reset(self) -> None:
        """``shrink_perturb``/``refit``: when the training labels have doubled since the last reset, shrink
        the weights towards a fresh initialisation (or start afresh), then schedule a catch-up fit.

        A warm model that saw its first labels for thousands of steps generalises worse than one
        trained on all labels together (Ash & Adams 2020); the reset restores that at a bounded cost.
        """
        n = len(self._train)
        if self.config.schedule == "warm" or n < RESET_MIN_LABELS or n < 2 * self._labels_at_reset:
            return
        self._labels_at_reset = n
        try:
            with self._scope():  # under a distribution strategy, like the model build() made
                fresh = (self.model_fn or _default_model_fn())(len(self.label_names), self.config.input_shape)
        except Exception as e:  # keep training the current model; the reset is an optimisation
            log.warning("%s reset skipped: model_fn raised %s: %s", self.config.schedule, type(e).__name__, e)
            return
        if self.config.schedule == "refit":
            self.model = fresh
        else:
            old_w, new_w = self.model.trainable_weights, fresh.trainable_weights
            if [tuple(w.shape) for w in old_w] != [tuple(w.shape) for w in new_w]:
                log.warning("shrink_perturb skipped: model_fn builds a model unlike the current one")
                return
            for w, f in zip(old_w, new_w, strict=True):
                w.assign(SHRINK * np.asarray(w) + PERTURB * np.asarray(f))
        epochs_steps = math.ceil(CATCH_UP_EPOCHS * n / self.config.batch_size)
        self._catch_up = max(self._catch_up, epochs_steps, CATCH_UP_MIN_STEPS)

    # --- performance (issue 5): query sample, fresh labels first, devices, latency ---------------------
    def _query_sample(self, paths: list[str], limit: int | None = None) -> tuple[list[str], list[str]]:
        """(a random sample of at most ``query_sample`` paths to score, the others shuffled).

        Like baal's ``max_sample``: scoring 100,000 images on every query would take far longer than
        the labels it re-orders; a fresh sample each query still reaches every image over time.
        """
        limit = self.config.query_sample if limit is None or self.config.query_sample == 0 else limit
        if limit == 0 or len(paths) <= limit:
            return paths, []
        rng = np.random.default_rng((self.config.seed, self._queries, len(paths)))
        picked = rng.permutation(len(paths))
        return [paths[i] for i in picked[:limit]], [paths[i] for i in picked[limit:]]

    def _with_fresh(self, chosen: list[str]) -> list[str]:
        """The batch with every label not yet trained on put in first (a new label is in the next step)."""
        fresh = [p for p in self._fresh if p in self._train][: len(chosen)]
        if not fresh:
            return chosen
        taken = set(fresh)
        return fresh + [p for p in chosen if p not in taken][: len(chosen) - len(fresh)]

    def _note_trained(self, paths: list[str]) -> None:
        now = time.monotonic()
        for path in paths:
            if path in self._fresh:  # a fresh label's first step
                del self._fresh[path]
                sent = self._sent_at.pop(path, None)
                if sent is not None:
                    self.label_latency.append((path, now - sent))

    def _scope(self):
        """The user's ``tf.distribute`` strategy scope (variables created in it are mirrored), or nothing."""
        strategy = self.config.distribute
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    def _replicas(self) -> int:
        strategy = self.config.distribute
        return int(getattr(strategy, "num_replicas_in_sync", 1)) if strategy is not None else 1

    def _fit_batch(self, X: np.ndarray, y: np.ndarray) -> float:
        """One gradient step; returns the loss. Under a strategy with R replicas the batch is padded to a
        multiple of R (repeating its own images): Keras fails on a replica that gets no example."""
        r = self._replicas()
        if r > 1 and len(X) % r:
            extra = np.arange(r - len(X) % r) % len(X)
            X, y = np.concatenate([X, X[extra]]), np.concatenate([y, y[extra]])
        model = self._frozen() or self.model  # frozen backbone: X are embeddings, the head shares the weights
        return float(model.train_on_batch(X, y, return_dict=True)["loss"])

    def _forward(self, X: np.ndarray) -> np.ndarray:
        """Probabilities for a batch. Under a strategy, ``predict_on_batch`` returns one copy per replica
        (Keras 3.x on TensorFlow), so the distributed ``predict`` is used instead. ``X`` comes from
        ``_inputs`` (embeddings in frozen-backbone mode): call ``self.model`` directly on images."""
        model = self._frozen() or self.model
        if self._replicas() > 1:
            X = X.astype(np.float32) if X.dtype == np.float16 else X
            return model.predict(X, batch_size=max(len(X), 1), verbose=0)
        if X.dtype == np.float16:  # stored embeddings: TF's cast is about twice as fast as numpy's astype
            import tensorflow as tf

            X = tf.cast(tf.convert_to_tensor(X), tf.float32)
        return model.predict_on_batch(X)

    # --- frozen backbone and long work (issue 5) -------------------------------------------------------
    @property
    def frozen_backbone(self) -> bool:
        """True when training and queries run the head over cached embeddings (frozen-backbone mode)."""
        return self._head is not None and self._frozen_model is self.model  # no side effect: any thread

    def prefill_step(self) -> tuple[str, int, int] | None:
        """One short chunk of the work done while idle: embed (frozen-backbone mode) or decode into the
        disk cache the pool's next images. Returns (what, done, total), or None when nothing is left.
        Progress is published as ``Update.work``."""
        from .frozen import Prefill

        with self._lock:
            target = self._prefill_target()
            if target is None:
                return None
            if self._prefill_for is not target:
                if target is self._embeddings:
                    self._prefill = Prefill("embedding images", self.pool.paths, self._embeddings.vectors)
                else:
                    self._prefill = Prefill("caching images", self.pool.paths, self.pool.arrays)
                self._prefill_for = target
            if self._prefill.finished:
                return None
            work = self._prefill.step()
            self._publish_work(*work)
            return work

    def _prefill_target(self):
        if self.model is None or self._error is not None or self._paused or self.stop_reason is not None:
            return None
        return self._embeddings if self._frozen() is not None else self.pool.disk_cache

    def _prefill_pending(self) -> bool:
        target = self._prefill_target()
        return target is not None and (self._prefill_for is not target or not self._prefill.finished)

    def _setup_frozen(self) -> str:
        """Split ``self.model`` into backbone and head when frozen-backbone mode applies (``config``
        ``frozen_backbone``); returns a note for the status line. ValueError when it is required and
        the model does not qualify."""
        from . import frozen as embeddings

        self._head, self._frozen_model = None, self.model
        setting = self.config.frozen_backbone
        if setting is False or self.model is None:
            return ""
        reason = embeddings.frozen_reason(self.model)
        if reason is not None:
            if setting is True:
                raise ValueError(f"frozen_backbone=True, but the model cannot use it: {reason}")
            return ""
        with self._scope():
            backbone, head = embeddings.split(self.model)
        if self._replicas() > 1:  # predict_on_batch returns one copy per replica (see _forward)

            def predict(X):
                return backbone.predict(X, batch_size=max(len(X), 1), verbose=0)
        else:
            predict = backbone.predict_on_batch
        digest = embeddings.weights_digest(backbone)
        if self._embeddings is not None and self._embeddings.digest == digest:
            self._embeddings.use(backbone, predict)  # e.g. a refit model with the same backbone weights
        else:
            self._embeddings = embeddings.Embeddings(
                self.pool, backbone, self.workdir / CACHE_DIR, predict=predict, digest=digest
            )
        self._head = head
        return f"frozen backbone: the head trains on cached embeddings ({self._embeddings.dim} per image)"

    def _frozen(self):
        """The head model in frozen-backbone mode (split again if the model was replaced), else None."""
        if self._frozen_model is not self.model:
            try:
                self._setup_frozen()
            except ValueError as e:  # e.g. a reset built an unfit model: train the full model instead
                log.warning("%s; training the full model", e)
        return self._head

    def _inputs(self, paths: list[str], stored: bool = False) -> tuple[np.ndarray, list[str]]:
        """What the model in use takes for the paths that load: images, or in frozen-backbone mode
        their cached embeddings (computed now for those missing); ``stored``: embeddings in their
        stored dtype (float16), which ``_forward`` casts on the device."""
        if self._frozen() is None:
            return self.pool.arrays(paths)
        if stored:
            from .frozen import EMBEDDING_DTYPE

            return self._embeddings.vectors(paths, dtype=EMBEDDING_DTYPE)
        return self._embeddings.vectors(paths)

    def _predict_batch(self) -> int:
        return HEAD_BATCH if self._frozen() is not None else PREDICT_BATCH

    def _embed_ahead(self, paths: list[str]) -> None:
        """Frozen-backbone mode: embed the missing ones of many paths at once, publishing progress."""
        if self._frozen() is None:
            return
        missing = self._embeddings.missing(paths)
        if missing:
            self._embeddings.vectors(
                missing, progress=lambda done, total: self._publish_work("embedding images", done, total)
            )

    def _publish_work(self, what: str, done: int, total: int) -> None:
        """Progress of long work as ``Update.work``: throttled, but the end is always published."""
        now = time.monotonic()
        if done < total and now - self._work_published < WORK_PUBLISH_S:
            return
        self._work_published = now
        status = self.latest.status if self.latest.status in ("training", "evaluating", "querying") else None
        # The message stays: progress must not wipe what the last update said (e.g. the build note).
        self._publish(status or self._state(), message=self.latest.message, work=(what, done, total))

    def _labelled_arrays(self, labels: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        X, loaded = self._inputs(list(labels))
        return X, np.array([labels[p] for p in loaded], dtype="int64")

    def _predict(self, X: np.ndarray) -> np.ndarray:
        step = self._predict_batch()
        chunks = [np.asarray(self._forward(X[i : i + step])) for i in range(0, len(X), step)]
        return np.concatenate(chunks).astype("float64") if chunks else np.zeros((0, len(self.label_names)))

    def _predict_paths(self, paths: list[str]) -> tuple[np.ndarray, list[str]]:
        """Probabilities of the paths that decode, chunk by chunk (bounded memory), and those paths."""
        probs, scored = [], []
        self._embed_ahead(paths)
        step = self._predict_batch()
        for i in range(0, len(paths), step):
            X, loaded = self._inputs(paths[i : i + step], stored=True)
            if loaded:
                probs.append(self._predict(X))
                scored.extend(loaded)
        if not probs:
            return np.zeros((0, len(self.label_names))), []
        return np.concatenate(probs), scored

    def _threshold_crossed(self, row: dict) -> str | None:
        if row["n_test"] < self.config.min_test_labels:
            return None
        for metric, (lower, upper) in self.config.early_stopping.items():
            value = row[metric]
            if lower is not None and value <= lower:
                return f"{metric} {round(value, 4)} <= {lower}"
            if upper is not None and value >= upper:
                return f"{metric} {round(value, 4)} >= {upper}"
        return None

    def _write_metrics(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        target = self.workdir / "metrics.csv"
        fd, tmp = tempfile.mkstemp(dir=self.workdir, prefix=".metrics-", suffix=".csv")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.history)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def _load_metrics(self) -> None:
        """A continued session keeps its curve: read the rows of an earlier metrics.csv (once)."""
        path = self.workdir / "metrics.csv"
        if self.history or not path.is_file():
            return
        try:
            with path.open(newline="") as f:
                rows = [
                    {
                        "n_labels": int(r["n_labels"]),
                        "accuracy": float(r["accuracy"]),
                        "loss": float(r["loss"]),
                        "n_test": int(r["n_test"]),
                        "seconds": float(r["seconds"]),
                    }
                    for r in csv.DictReader(f)
                ]
        except (OSError, KeyError, TypeError, ValueError) as e:
            log.warning("ignored the earlier %s (%s); the curve starts afresh", path, e)
            return
        self.history = rows
        if rows:  # seconds go on from where the earlier session ended
            self._t0 = time.monotonic() - rows[-1]["seconds"]

    def _finish(self, reason: str) -> Update:
        """Final evaluation if it adds anything, save, publish 'stopped'. Runs once."""
        with self._lock:
            if self._finished:
                return self.latest
            self._publish("stopping", message=reason)
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
            with_model = self._error is None
            if self.model is not None and not with_model:
                message += "; the model was not saved because of the error"
            try:
                saved = self._save(with_model)
            except Exception as e:
                log.exception("saving failed")
                saved = {}
                message += f"; saving to {self.workdir} failed ({type(e).__name__}: {e}): check the folder"
            self._finished = True
            return self._publish("stopped", message=message, saved=saved)

    def _train_fresh(self) -> None:
        """At stop: steps (at most a round) until every label has been in a batch, so the saved model
        knows the last image labelled, or every label when the person was faster than the TF import."""
        for _ in range(self.config.train_steps):
            if self.model is None or self._error is not None or self._paused or not self._train:
                return
            if not any(p in self._train for p in self._fresh):
                return
            if not self._step():
                return

    def _guard(self, fn, *args) -> None:
        """Run a step of the loop; an unexpected exception becomes an error Update, never a dead thread."""
        try:
            fn(*args)
        except Exception as e:
            log.exception("trainer step failed")
            self._fail(
                f"unexpected error in the trainer: {type(e).__name__}: {e}. Labels are kept; "
                "press Retry or Stop (and please report it)"
            )

    def _fail(self, message: str) -> None:
        self._error = message
        self._publish("error", message=message)

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
        if not self._train or self._idle >= self.config.idle_rounds:
            return "waiting"
        return "training"

    def _publish_idle(self) -> None:
        state = self._state()
        if state == "error":
            return  # the error Update already says what to do; don't overwrite its message
        self._publish_if_changed(state)

    def _publish_if_changed(self, status: str) -> None:
        if self.latest.status != status or self.latest.n_labels != len(self._train):
            self._publish(status)

    def _publish(self, status: str, **fields) -> Update:
        with self._publish_lock:
            update = Update(status=status, n_labels=len(self._train), metrics=tuple(self.history), **fields)
            self.latest = update
            if self.updates.full():  # keep the newest: nobody may be reading this queue
                try:
                    self.updates.get_nowait()
                except queue.Empty:
                    pass
            self.updates.put_nowait(update)
        if self.on_update is not None:
            try:
                self.on_update(update)
            except Exception:
                # Once with the traceback; a callback broken for good must not flood the log.
                self._callback_failures += 1
                if self._callback_failures == 1:
                    log.exception("on_update raised; training goes on (later failures are logged at debug)")
                else:
                    log.debug("on_update raised again", exc_info=True)
        return update


def _version(package: str) -> str | None:
    """An installed distribution's version, for the model card (None when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
