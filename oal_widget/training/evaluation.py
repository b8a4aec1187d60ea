"""Evaluation of the online model on the labelled test images, and the early-stopping thresholds.

A row is plain numbers (``n_labels``, ``accuracy``, ``loss``, ``n_test``, ``seconds``); ``correct``
(path -> bool) of the last evaluation lets the bandit be rewarded on the SAME images before and after.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-7
METRICS_COLUMNS = ("n_labels", "accuracy", "loss", "n_test", "seconds")


def evaluate(learner, test: dict[str, int]) -> tuple[dict, dict[str, bool]] | None:
    """(metrics without ``n_labels``/``seconds``, path -> correct) on the labelled test images; None: none."""
    X, loaded = learner.inputs(list(test))
    if not loaded:
        return None
    y = np.array([test[p] for p in loaded], dtype="int64")
    probs = learner.predict(X)
    hit = np.argmax(probs, axis=1) == y
    p_true = np.clip(probs[np.arange(len(y)), y], _EPS, 1.0)
    row = {
        "accuracy": float(np.mean(hit)),
        "loss": float(-np.mean(np.log(p_true))),
        "n_test": len(y),
    }
    return row, dict(zip(loaded, hit.tolist(), strict=True))


def threshold_crossed(row: dict, early_stopping, min_test_labels: int) -> str | None:
    """The reason to stop when a metric left its band (with enough test labels), else None."""
    if row["n_test"] < min_test_labels:
        return None
    for metric, (lower, upper) in early_stopping.items():
        value = row[metric]
        if lower is not None and value <= lower:
            return f"{metric} {round(value, 4)} <= {lower}"
        if upper is not None and value >= upper:
            return f"{metric} {round(value, 4)} >= {upper}"
    return None


def accuracy_on(correct: dict[str, bool], paths) -> float | None:
    """Accuracy on exactly ``paths`` (those in ``correct``), or None when none is there."""
    hits = [correct[p] for p in paths if p in correct]
    return float(np.mean(hits)) if hits else None


def diagnose(learner, test: dict[str, int], n_wrong: int = 8) -> dict:
    """Confusion matrix, per-class accuracy and most wrong images of the live model on ``test``."""
    from ..reports import diagnostics

    probs, scored = learner.predict_paths(list(test))
    return diagnostics.diagnose(scored, probs, [test[p] for p in scored], learner.label_names, n_wrong)
