"""A simulated person labelling with the product's own session, order and trainer: what a person pays.

The oracle's answer for an image is its TOP-LEVEL sub-folder. Before anything else an **oracle set**
(20% of the images, at most 2,000, seeded; near-duplicates stay on one side of it) is set aside: the
simulated person never labels it, the model never trains on it, no strategy sees it; ``true_accuracy``
is the model's accuracy on it. The session's own near-duplicate search ends before the first label. The
person then labels ``budget`` images in all, test and training alike, in exactly the order the panel
shows them (the same ``Session``, order and evaluation code; only the trainer runs synchronously: one
training round per label, so a curve depends on the settings and the seed, not on the machine).

Per class: with ``out`` (``--out curve.csv``) a second CSV beside it, ``curve_per_class.csv``, has one row
per evaluation and class (``PER_CLASS_COLUMNS``): the labels the person has given of that class (test
ones too), its oracle images and the model's recall on them (its true per-class accuracy) and precision.
The overall figure hides a weak class, a rare one most of all.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .config import Config
from .data.duplicates import find_groups, whole_groups_only
from .data.pool import ImagePool, split_test
from .messages import Update
from .session.session import Session
from .training.core import TrainingCore
from .workdir import STORE_FILE, atomic_write_csv

CSV_COLUMNS = (
    "n_labels",
    "n_train",
    "n_test",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "true_accuracy",
    "loss",
    "seconds",
    "n_eval",
    "test_accuracy",
    "strategy",
    "seed",
)
#: Appended with ``timing=True``: cumulative seconds in train_round() and in query(), queries so far, and
#: the trainer's cost per training label (training and querying; semi-supervised steps included): what it
#: must keep below a person's pace.
TIMING_COLUMNS = ("train_seconds", "query_seconds", "queries", "trainer_s_per_label")
#: The per-class CSV (``per_class_path(out)``): one row per evaluation and class.
PER_CLASS_COLUMNS = (
    "n_labels",
    "class",
    "labels",
    "train_labels",
    "oracle_images",
    "recall",
    "precision",
    "seed",
)
ORACLE_FRACTION, ORACLE_MAX = 0.2, 2000


class SyncTrainer(TrainingCore):
    """The trainer without its thread: a command is handled when sent; ``start`` builds the model and
    does the idle work the thread would do while the person looks at the first image (decoding, or
    embedding every image in frozen-backbone mode)."""

    def send(self, command) -> None:
        self.handle(command)

    def start(self) -> None:
        if not self.build():
            raise ValueError(self.error)
        self.first_order()
        while self.prefill_step() is not None:
            pass

    def stop(self, timeout: float = 10.0) -> Update:
        return self._note("stopped", saved=self.save())


def simulate(
    images_dir,
    strategy=None,
    policy=None,
    budget: int = 200,
    seed: int = 0,
    out=None,
    workdir=None,
    eval_every: int = 10,
    query_every: int = 10,
    input_shape=(32, 32, 1),
    progress: Callable[[str], object] | None = print,
    model_fn: Callable | None = None,
    timing: bool = False,
    bar: bool = False,
    **settings,
) -> list[dict]:
    """Give ``budget`` labels (test and training) in the panel's order; one row per evaluation.

    Rows have ``CSV_COLUMNS`` (``accuracy`` is what the panel shows, ``true_accuracy`` the oracle
    set's) and the cumulative ``TIMING_COLUMNS``; ``out`` gets them as CSV (timing columns only with
    ``timing=True``), and ``per_class_path(out)`` the per-class rows (``PER_CLASS_COLUMNS``).
    ``settings`` are further ``Config`` fields. ``bar`` shows a tqdm bar of the labels.
    The store lives in ``workdir`` (default: a temporary folder), never in ``images_dir``.
    """
    start = time.monotonic()
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"images folder {images_dir} does not exist or is not a folder")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget={budget!r} is invalid: expected a whole number of labels >= 1")
    defaults = Config()
    config = Config(
        input_shape=tuple(input_shape),
        seed=seed,
        eval_every=eval_every,
        query_every=query_every,
        strategy=defaults.strategy if strategy is None else strategy,
        policy=defaults.policy if policy is None else policy,
        **settings,
    )
    found = ImagePool(images_dir, config.input_shape)
    answer, label_names = _oracle_answers(images_dir, found.paths)
    groups = find_groups(found)  # near-duplicates never sit on both sides of the oracle set
    oracle = split_test(found.paths, ORACLE_FRACTION, seed + 1, groups=groups)  # not the test split's seed
    oracle = oracle[:ORACLE_MAX] if len(oracle) <= ORACLE_MAX else _sample(oracle, ORACLE_MAX, seed)
    held = whole_groups_only(oracle, groups)
    oracle = sorted(held)
    pool = ImagePool(images_dir, config.input_shape, paths=[p for p in found.paths if p not in held])
    _seed_everything(seed)
    with _workdir(workdir, images_dir) as wd:
        session = Session(
            images_dir,
            label_names,
            config=config.replace(workdir=wd),
            model_fn=model_fn,
            trainer_factory=_factory(progress),
            pool=pool,
        )
        session.duplicates.join()  # before the first label: the curve depends on the seed alone
        try:
            run = _Run(session, answer, oracle, found, start, progress, bar and min(budget, len(pool.paths)))
            rows = run.label(budget)
            if workdir is not None:
                session.trainer.save()
        finally:
            session.close(stop=False)
    if out is not None:
        atomic_write_csv(Path(out), CSV_COLUMNS + TIMING_COLUMNS if timing else CSV_COLUMNS, rows)
        atomic_write_csv(per_class_path(out), PER_CLASS_COLUMNS, run.per_class)
    return rows


def per_class_path(out) -> Path:
    """Where ``simulate(out=...)`` writes the per-class rows: ``<out stem>_per_class.csv`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_per_class{out.suffix or '.csv'}")


class _Run:
    """The labelling loop: oracle labels, one round per label, evaluation and query on the cadence."""

    def __init__(self, session, answer, oracle, found, start, progress, bar: int):
        self.s, self.answer, self.start = session, answer, start
        self.trainer = session.trainer
        self.oracle = OracleSet(
            self.trainer.learner, self.trainer.graph, found, oracle, answer, session.label_names
        )
        self.progress, self.bar = progress, None
        self.timing = {"train_seconds": 0.0, "query_seconds": 0.0, "queries": 0}
        self.rows: list[dict] = []
        self.per_class: list[dict] = []
        if bar and progress is not None:
            from tqdm import tqdm

            self.bar = tqdm(total=bar, desc="labels", unit="label", leave=False)
            self.progress = self.bar.write  # lines go above the bar instead of breaking it

    def label(self, budget: int) -> list[dict]:
        s, trainer = self.s, self.trainer
        given = 0
        while given < budget and s.current is not None:
            s.label(self.answer[s.current])
            given += 1
            if self.bar is not None:
                self.bar.update()
            t = time.perf_counter()
            trainer.train_round()
            self.timing["train_seconds"] += time.perf_counter() - t
            if trainer.error is not None:
                raise RuntimeError(f"training failed after {given} labels: {trainer.error}")
            if trainer.cadence.eval_due:
                self.evaluate()
                if trainer.stop_reason is not None:
                    self.say(f"early stop: {trainer.stop_reason}")
                    break
            if trainer.cadence.query_due and s.current is not None:
                t = time.perf_counter()
                trainer.query()  # the session takes the new order as the panel does
                self.timing["query_seconds"] += time.perf_counter() - t
                self.timing["queries"] += 1
        if given and (not self.rows or self.rows[-1]["n_labels"] != given):
            self.evaluate()
        if self.bar is not None:
            self.bar.close()
        return self.rows

    def evaluate(self) -> None:
        row = self.trainer.evaluate()
        if row is None:
            return
        predicted = self.oracle.predict(self.trainer.model)
        given = self.s.progress()  # what the person paid: a test label shadowed by a near-duplicate too
        row = {
            **row,
            "n_labels": given["labelled"],
            "n_train": given["labelled"] - given["test_labelled"],
            "n_test": given["test_labelled"],
            "true_accuracy": self.oracle.accuracy(predicted),
            "seconds": round(time.monotonic() - self.start, 3),
            "strategy": _name(self.s.config.strategy),
            "seed": self.s.config.seed,
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in self.timing.items()},
            "trainer_s_per_label": round(
                (self.timing["train_seconds"] + self.timing["query_seconds"]) / max(1, row["n_train"]), 4
            ),
        }
        self.rows.append(row)
        self.per_class.extend(self._per_class(row["n_labels"], predicted))
        self.say(
            f"{row['n_labels']:5d} labels ({row['n_test']} test)  shown {row['accuracy']:.3f} "
            f"[{row['accuracy_low']:.2f}, {row['accuracy_high']:.2f}]  true {row['true_accuracy']:.3f}  "
            f"({row['seconds']:.1f} s)"
        )

    def _per_class(self, n_labels: int, predicted: np.ndarray) -> list[dict]:
        labels = self.trainer.labels
        k = len(self.s.label_names)
        train = np.bincount(np.fromiter(labels.train.values(), dtype=np.int64), minlength=k)
        test = np.bincount(np.fromiter(labels.test.values(), dtype=np.int64), minlength=k)
        rows = []
        for c, name in enumerate(self.s.label_names):
            recall, precision = self.oracle.recall_precision(predicted, c)
            rows.append(
                {
                    "n_labels": n_labels,
                    "class": name,
                    "labels": int(train[c] + test[c]),
                    "train_labels": int(train[c]),
                    "oracle_images": int(np.sum(self.oracle.y == c)),
                    "recall": recall,
                    "precision": precision,
                    "seed": self.s.config.seed,
                }
            )
        return rows

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)


class OracleSet:
    """The images nobody labels: the classifier's true accuracy is measured on them (the network blended
    with the graph, as the session's classifier). In frozen-backbone mode their embeddings are computed
    once (the backbone never changes) and only the head runs."""

    def __init__(self, learner, graph, found, paths, answer, label_names):
        self.learner, self.graph = learner, graph
        self.X, loaded = found.arrays(paths)
        index = {name: i for i, name in enumerate(label_names)}
        self.y = np.array([index[answer[p]] for p in loaded], dtype="int64")
        self._embedded = None
        self._features = None

    def accuracy(self, predicted: np.ndarray) -> float:
        """Share of the oracle images whose ``predict`` is their class (NaN: no oracle images)."""
        return float(np.mean(predicted == self.y)) if len(self.y) else math.nan

    def recall_precision(self, predicted: np.ndarray, c: int) -> tuple[float, float]:
        """(share of class ``c``'s oracle images predicted ``c``, share of those predicted ``c`` that are);
        NaN where undefined."""
        mine, said = self.y == c, predicted == c
        recall = float(np.mean(said[mine])) if mine.any() else math.nan
        precision = float(np.mean(mine[said])) if said.any() else math.nan
        return recall, precision

    def predict(self, model) -> np.ndarray:
        """The classifier's class index for every oracle image."""
        if len(self.y) == 0:
            return np.zeros(0, dtype=np.int64)
        head = self.learner.head()
        if head is not None:
            if self._embedded is None:
                backbone = self.learner.frozen.embeddings.backbone
                self._embedded = _predict(backbone, self.X)
            probs = _predict(head, self._embedded)
        else:
            probs = _predict(model, self.X)
        if self.graph.weight:
            if self._features is None:  # the features of a space never change once fitted
                self._features = self.graph.features_of(self.X, self._embedded)
            probs = self.graph.blend_features(self._features, probs)
        return np.argmax(probs, axis=1)


def _factory(progress):
    """SyncTrainers whose long work (``embedding images 1280/5000``) is also printed as plain lines."""

    def factory(**kwargs):
        deliver = kwargs.pop("on_update")

        def on_update(update):
            if update.work is not None and progress is not None:
                what, done, total = update.work
                progress(f"{what} {done}/{total}")
            deliver(update)

        return SyncTrainer(**kwargs, on_update=on_update)

    return factory


def _predict(model, X, batch: int = 256) -> np.ndarray:
    chunks = [np.asarray(model.predict_on_batch(X[i : i + batch])) for i in range(0, len(X), batch)]
    return np.concatenate(chunks)


def _oracle_answers(images_dir: Path, paths) -> tuple[dict[str, str], list[str]]:
    if not paths:
        raise ValueError(f"no images found in {images_dir}: the simulator needs images in class sub-folders")
    flat = [p for p in paths if "/" not in p]
    if flat:
        raise ValueError(
            f"{images_dir} holds images directly (e.g. {flat[0]}): the simulator needs class sub-folders, "
            "one per class, e.g. images/cat/1.png; move the images into them"
        )
    answer = {p: p.split("/", 1)[0] for p in paths}  # the oracle: top-level folder = class
    names = sorted(set(answer.values()))
    if len(names) < 2:
        raise ValueError(f"{images_dir} has only the class folder {names}: the simulator needs at least 2")
    return answer, names


def _sample(paths: list[str], k: int, seed: int) -> list[str]:
    picked = np.random.default_rng((seed, 1)).choice(len(paths), size=k, replace=False)
    return sorted(paths[i] for i in picked)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    import keras  # TensorFlow: the trainer needs it anyway

    keras.utils.set_random_seed(seed)


class _workdir:
    """The given workdir (refused inside the images folder or over an existing store), or a temp one."""

    def __init__(self, workdir, images_dir: Path):
        self._given = workdir
        self._images = images_dir.resolve()
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Path:
        if self._given is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="oal-simulate-")
            return Path(self._tmp.name)
        wd = Path(self._given).resolve()
        if wd == self._images or self._images in wd.parents:
            raise ValueError(
                f"workdir {wd} is inside the images folder {self._images}: the simulator never writes there; "
                "choose a workdir outside it (or none for a temporary one)"
            )
        if (wd / STORE_FILE).exists():
            raise ValueError(
                f"workdir {wd} already holds a store ({STORE_FILE}): a simulation starts "
                "from no labels; choose an empty workdir"
            )
        wd.mkdir(parents=True, exist_ok=True)
        return wd

    def __exit__(self, *exc):
        if self._tmp is not None:
            self._tmp.cleanup()


def _name(value) -> str:
    return value if isinstance(value, str) else getattr(value, "__name__", repr(value))
