"""The final fit: a NEW model trained from scratch on every training label, evaluated, saved with a card.

Runs in the caller's thread (the panel uses a worker) and never touches the online model, so labelling
and online training go on. Seeded by ``config.seed`` (weights and batch order), built under the device
setup's scope, loaded chunk by chunk (bounded memory), and cancellable between steps: by ``cancel``
or by the trainer stopping.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..reports import diagnostics
from ..workdir import FINAL_DIR, MODEL_CARD_FILE, MODEL_FILE, atomic_save_model, atomic_write_text
from .learner import PREDICT_BATCH, model_fn_name


class Cancelled(RuntimeError):
    """The final fit was cancelled; nothing was saved."""


def final_fit(
    learner, model_fn, train, test, *, workdir, epochs=30, out=None, progress=None, cancelled=None, history=()
) -> tuple[dict, Any]:
    """Train, evaluate and save; returns (the model card, the model). ``train``/``test``: path -> class index.

    ``progress(done_steps, total_steps)`` after each step; ``cancelled()`` True stops with ``Cancelled``.
    """
    import keras

    from .. import __version__
    from . import models

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs={epochs!r} is invalid: expected a whole number >= 1, e.g. 30")
    if not train:
        raise ValueError("no training labels yet: label some images before the final fit")
    config, pool, names = learner.config, learner.pool, learner.label_names
    started = time.monotonic()
    name = model_fn_name(model_fn or models.default_model_fn)
    # Seeded: the same labels and seed give the same model (Keras' seed is process-wide).
    keras.utils.set_random_seed(config.seed)
    model = learner.new_model(model_fn)  # under the device setup's scope; TrainingError says what to fix
    rng = np.random.default_rng(config.seed)
    paths, batch = list(train), config.batch_size
    total, done = epochs * math.ceil(len(paths) / batch), 0
    for _ in range(epochs):
        order = rng.permutation(len(paths))
        for i in range(0, len(paths), batch):
            if cancelled is not None and cancelled():
                raise Cancelled("the final fit was cancelled; nothing was saved")
            X, loaded = pool.arrays([paths[j] for j in order[i : i + batch]])
            if loaded:
                y = np.array([train[p] for p in loaded], dtype="int64")
                X, y = learner.devices.pad(X, y)
                loss = float(model.train_on_batch(X, y, return_dict=True)["loss"])
                if not math.isfinite(loss):
                    raise ValueError(
                        f"the final fit's loss became {loss}: lower the learning rate in {name}, "
                        "or check the images"
                    )
            done += 1
            if progress is not None:
                progress(done, total)
    predict = learner.devices.predictor(model)
    test_paths, probs = [], []
    listed = list(test)
    for i in range(0, len(listed), PREDICT_BATCH):
        X, loaded = pool.arrays(listed[i : i + PREDICT_BATCH])
        if loaded:
            probs.append(np.asarray(predict(X), dtype="float64"))
            test_paths.extend(loaded)
    probs_arr = np.concatenate(probs) if probs else np.zeros((0, len(names)))
    result = diagnostics.diagnose(test_paths, probs_arr, [test[p] for p in test_paths], names)

    folder = Path(out) if out is not None else Path(workdir) / FINAL_DIR
    target = atomic_save_model(model, folder / MODEL_FILE)
    counts = {split: dict.fromkeys(names, 0) for split in ("train", "test")}
    for split, labels in (("train", train), ("test", {p: test[p] for p in test_paths})):
        for k in labels.values():
            counts[split][names[k]] += 1
    card = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "labels": list(names),
        "counts": counts,
        "metrics": {k: result[k] for k in ("n_test", "accuracy", "loss", "per_class_accuracy", "confusion")},
        "most_wrong": result["most_wrong"],
        "online_model_last_evaluation": dict(history[-1]) if history else None,
        "settings": {
            **config.to_dict(),
            "model_fn": name,
            "epochs": epochs,
            "steps": total,
            "input_shape": list(config.input_shape),
        },
        "versions": {
            "oal_widget": __version__,
            "python": platform.python_version(),
            "keras": keras.__version__,
            "tensorflow": _version("tensorflow"),
            "numpy": np.__version__,
        },
        "images_root": str(pool.root),
        "seconds": round(time.monotonic() - started, 3),
        "files": {"model": str(target), "card": str(folder / MODEL_CARD_FILE)},
    }
    atomic_write_text(folder / MODEL_CARD_FILE, json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    return card, model


def _version(package: str) -> str | None:
    """An installed distribution's version, for the model card (None when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
