"""A simulated annotator driving the product's own Trainer and Store: learning curves per strategy.

The oracle's answer for an image is its TOP-LEVEL sub-folder under the images folder. Training is a
fixed amount per label (one ``train_round()`` each) and everything is seeded, so a curve depends on
the strategy and the seed, not on the machine's speed.
"""

from __future__ import annotations

import csv
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .config import Config
from .data.cache import CACHE_DIR
from .data.pool import ImagePool, split_test
from .data.store import Store
from .messages import Labelled
from .training.trainer import Trainer

CSV_COLUMNS = ("n_labels", "accuracy", "loss", "n_test", "seconds", "strategy", "seed")
#: Appended after CSV_COLUMNS: cumulative seconds in train_round() and in query(), and queries so far.
TIMING_COLUMNS = ("train_seconds", "query_seconds", "queries")


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
    """Label up to ``budget`` training images in the trainer's order; return one row per evaluation.

    The whole test split is labelled first (outside the budget). Rows have ``n_labels`` (training
    labels so far), ``accuracy``, ``loss``, ``n_test``, ``seconds`` (since the start), ``strategy``
    and ``seed``, then the cumulative ``TIMING_COLUMNS``; ``out`` also gets them as CSV (the timing
    columns only with ``timing=True``). ``settings`` are further ``Config`` fields. ``bar`` shows a
    tqdm progress bar of the labels given (the command line does, unless ``--quiet``).
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
    pool = ImagePool(images_dir, config.input_shape)
    if not pool.paths:
        raise ValueError(f"no images found in {images_dir}: the simulator needs images in class sub-folders")
    flat = [p for p in pool.paths if "/" not in p]
    if flat:
        raise ValueError(
            f"{images_dir} holds images directly (e.g. {flat[0]}): the simulator needs class sub-folders, "
            "one per class, e.g. images/cat/1.png; move the images into them"
        )
    answer = {p: p.split("/", 1)[0] for p in pool.paths}  # the oracle: top-level folder = class
    label_names = sorted(set(answer.values()))
    if len(label_names) < 2:
        raise ValueError(
            f"{images_dir} has only the class folder {label_names}: the simulator needs at least 2"
        )

    _seed_everything(seed)
    with _workdir(workdir, images_dir) as wd:
        store = Store(wd, images_root=images_dir)
        if config.image_cache:
            pool.use_disk_cache(wd / CACHE_DIR)
        try:
            store.set_label_names(label_names)
            test = split_test(pool.paths, config.test_fraction, seed)
            store.add_test_paths(test)
            trainer = Trainer(
                pool,
                label_names,
                config,
                test_paths=test,
                workdir=wd,
                model_fn=model_fn,
                on_update=_work_printer(progress),
            )
            if not trainer.build():
                raise ValueError(trainer.error)
            rows = _run(store, trainer, pool, answer, test, config, budget, start, progress, bar)
            if workdir is not None:
                trainer.save()
        finally:
            store.close()
    if out is not None:
        _write_csv(out, rows, CSV_COLUMNS + TIMING_COLUMNS if timing else CSV_COLUMNS)
    return rows


def _run(store, trainer, pool, answer, test, config, budget, start, progress, bar=False) -> list[dict]:
    """The deterministic labelling loop: oracle labels, one round per label, eval and query on schedule."""
    if bar and progress is not None:
        from tqdm import tqdm

        bar = tqdm(total=min(budget, len(pool.paths) - len(test)), desc="labels", unit="label", leave=False)
        progress = bar.write  # lines go above the bar instead of breaking it
    else:
        bar = None

    def give(path, split):
        store.label(path, answer[path])
        trainer.handle(Labelled(path, answer[path], split))

    for path in test:
        give(path, "test")
    test_set = set(test)
    candidates = [p for p in pool.paths if p not in test_set]
    order = [candidates[i] for i in np.random.default_rng(config.seed).permutation(len(candidates))]
    labelled: set[str] = set()
    strategy_name = _name(config.strategy)
    rows: list[dict] = []
    evaluated_at = -1
    timing = {"train_seconds": 0.0, "query_seconds": 0.0, "queries": 0}

    def evaluate():
        row = trainer.evaluate()
        if row is None:
            return
        row = {
            **row,
            "seconds": round(time.monotonic() - start, 3),
            "strategy": strategy_name,
            "seed": config.seed,
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in timing.items()},
        }
        rows.append(row)
        if progress is not None:
            progress(
                f"{row['n_labels']:5d} labels  accuracy {row['accuracy']:.3f}  loss {row['loss']:.3f}  "
                f"({row['seconds']:.1f} s)"
            )

    given = 0
    while given < budget and order:
        path = order.pop(0)
        give(path, "train")
        labelled.add(path)
        given += 1
        if bar is not None:
            bar.update()
        t = time.perf_counter()
        trainer.train_round()
        timing["train_seconds"] += time.perf_counter() - t
        if trainer.error is not None:
            raise RuntimeError(f"training failed after {given} labels: {trainer.error}")
        if given % config.eval_every == 0:
            evaluate()
            evaluated_at = given
            if trainer.stop_reason is not None:
                if progress is not None:
                    progress(f"early stop: {trainer.stop_reason}")
                break
        if given % config.query_every == 0 and order:
            t = time.perf_counter()
            update = trainer.query()
            timing["query_seconds"] += time.perf_counter() - t
            timing["queries"] += 1
            ranked = [p for p in (update.order or ()) if p not in labelled]
            if ranked:
                order = ranked
    if given and evaluated_at != given:
        evaluate()
    if bar is not None:
        bar.close()
    return rows


def _work_printer(progress):
    """Plain progress lines for the trainer's long work (e.g. ``embedding images 1280/5000``); the
    trainer already throttles them to a few per second."""
    if progress is None:
        return None

    def on_update(update):
        if update.work is not None:
            what, done, total = update.work
            progress(f"{what} {done}/{total}")

    return on_update


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
        self._tmp = None

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
        if (wd / "annotations.sqlite").exists():
            raise ValueError(
                f"workdir {wd} already holds a store (annotations.sqlite): a simulation starts "
                "from no labels; choose an empty workdir"
            )
        wd.mkdir(parents=True, exist_ok=True)
        return wd

    def __exit__(self, *exc):
        if self._tmp is not None:
            self._tmp.cleanup()


def _name(value) -> str:
    return value if isinstance(value, str) else getattr(value, "__name__", repr(value))


def _write_csv(out, rows: list[dict], columns=CSV_COLUMNS) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
