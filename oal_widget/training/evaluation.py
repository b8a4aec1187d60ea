"""Evaluation of the online model: the estimate of its accuracy with an interval (``estimate.py``), the
test loss, and the early-stopping thresholds, which act on the interval, not on the point.

A row is plain numbers: ``n_labels`` (every label given: training and test), ``n_train``, ``n_test``,
``n_eval`` (labels the estimate rests on: held-out and first-sight), ``accuracy`` with
``accuracy_low``/``accuracy_high``, ``test_accuracy`` (the plain proportion on the test images),
``loss`` with its interval, ``seconds``.
``correct`` (path -> bool) of the last evaluation lets the bandit be rewarded on the SAME images before
and after.
"""

from __future__ import annotations

import math

import numpy as np

from .estimate import estimate, mean_interval
from .per_class import recall_rows

_EPS = 1e-7
METRICS_COLUMNS = (
    "n_labels",
    "n_train",
    "n_test",
    "n_eval",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "test_accuracy",
    "loss",
    "loss_low",
    "loss_high",
    "seconds",
)
#: Reserve images the estimate averages over (a fresh random sample; every labelled one besides).
RESERVE_SAMPLE = 2000


def evaluate(classify, labels, recent, rng) -> tuple[dict, dict[str, bool]] | None:
    """(row without ``seconds``, path -> correct on the test images); None: no evaluation label yet.

    ``classify(paths) -> (probs, paths that loaded)``: the classifier now (the network, blended with
    the graph); ``recent``: (first-sight probabilities, class) of the latest half of the training labels
    (``FirstSight.for_estimate``)."""
    held = [p for p in labels.test_paths if p in labels.test]
    if not held and not recent:
        return None
    others = [p for p in labels.test_paths if p not in labels.test]
    if len(others) > RESERVE_SAMPLE:
        others = [others[i] for i in rng.choice(len(others), RESERVE_SAMPLE, replace=False)]
    probs, scored = classify(held + others)
    index = {p: i for i, p in enumerate(scored)}
    held = [p for p in held if p in index]
    rows = np.array([index[p] for p in held], dtype=int)
    y = np.array([labels.test[p] for p in held], dtype=int)
    recent_probs = np.array([r[0] for r in recent]) if recent else None
    recent_y = np.array([r[1] for r in recent], dtype=int) if recent else None
    if not len(scored):  # no reserve at all: the recent labels alone
        probs, rows, y = recent_probs, np.arange(0), np.zeros(0, int)
    est = estimate(probs, rows, y, recent_probs, recent_y)
    if est is None:
        return None
    hit = probs[rows].argmax(1) == y if len(rows) else np.zeros(0, bool)
    p_true = probs[rows, y] if len(rows) else np.array([r[0][r[1]] for r in recent])
    loss, loss_low, loss_high = mean_interval(-np.log(np.clip(p_true, _EPS, 1)))
    row = {
        "n_labels": len(labels.train) + len(held) + len(labels.paid),
        "n_train": len(labels.train),
        "n_test": len(held),
        "n_eval": est.n,
        "accuracy": est.accuracy,
        "accuracy_low": est.low,
        "accuracy_high": est.high,
        "test_accuracy": float(hit.mean()) if len(hit) else math.nan,
        "loss": loss,
        "loss_low": loss_low,
        "loss_high": loss_high,
    }
    # Per class (``per_class``): the held-out labels and the first-sight ones, as the estimate rests on.
    first_pred = recent_probs.argmax(1) if recent_probs is not None else np.zeros(0, int)
    first_y = recent_y if recent_y is not None else np.zeros(0, int)
    predicted = np.concatenate([_argmax_rows(probs, rows), first_pred])
    row.update(recall_rows(predicted, np.concatenate([y, first_y]), labels.names))
    return row, dict(zip(held, hit.tolist(), strict=True))


def _argmax_rows(probs, rows) -> np.ndarray:
    return probs[rows].argmax(1) if len(rows) else np.zeros(0, int)


def threshold_crossed(row: dict, early_stopping, min_test: int) -> str | None:
    """The reason to stop when a metric's interval left its band, once ``min_test`` test images are
    labelled (``min_test_labels``: first-sight predictions do not count, they come from older models).

    ``accuracy >= 0.95`` stops only once the interval's LOW end reached 0.95: a lucky handful of test
    labels cannot end a session early."""
    if row.get("n_test", 0) < min_test:
        return None
    for metric, (lower, upper) in early_stopping.items():
        if metric not in row:
            continue  # a class without a test or first-sight label yet
        low, high = row.get(f"{metric}_low", row[metric]), row.get(f"{metric}_high", row[metric])
        if lower is not None and high <= lower:
            return f"{metric} {round(row[metric], 4)} <= {lower} (95% interval up to {round(high, 4)})"
        if upper is not None and low >= upper:
            return f"{metric} {round(row[metric], 4)} >= {upper} (95% interval from {round(low, 4)})"
    return None


def accuracy_on(correct: dict[str, bool], paths) -> float | None:
    """Accuracy on exactly ``paths`` (those in ``correct``), or None when none is there."""
    hits = [correct[p] for p in paths if p in correct]
    return float(np.mean(hits)) if hits else None


def diagnose(classify, test: dict[str, int], label_names, n_wrong: int = 8) -> dict:
    """Confusion matrix, per-class accuracy and most wrong images of the live classifier on ``test``."""
    from ..reports import diagnostics

    probs, scored = classify(list(test))
    return diagnostics.diagnose(scored, probs, [test[p] for p in scored], label_names, n_wrong)
