"""Evaluation of the online model: the estimate of its accuracy with an interval (``estimate.py``), the
test loss, and the early-stopping thresholds, which act on the interval, not on the point.

A row is plain numbers: ``n_labels`` (every label given: training and test), ``n_train``, ``n_test``,
``n_eval`` (labels the estimate rests on), ``accuracy`` with ``accuracy_low``/``accuracy_high``,
``test_accuracy`` (the plain proportion on the test images), ``loss`` with its interval, ``seconds``.
``correct`` (path -> bool) of the last evaluation lets the bandit be rewarded on the SAME images before
and after.
"""

from __future__ import annotations

import math

import numpy as np

from .estimate import estimate, mean_interval

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
#: Unlabelled images scored per evaluation for the estimate's pool term (a fresh random sample).
POOL_SAMPLE = 512


def score(learner, labels: dict[str, int]):
    """(paths that loaded, correct, confidence, probability of the true class) of labelled images."""
    X, loaded = learner.inputs(list(labels))
    if not loaded:
        return [], np.zeros(0, bool), np.zeros(0), np.zeros(0)
    y = np.array([labels[p] for p in loaded], dtype="int64")
    probs = learner.predict(X)
    return loaded, np.argmax(probs, axis=1) == y, probs.max(axis=1), probs[np.arange(len(y)), y]


def pool_confidence(learner, pool_paths, labels, rng: np.random.Generator, progress=None) -> np.ndarray:
    """The model's confidence on a random sample of the unlabelled pool (test images excluded)."""
    train, test, held_out = labels.train, labels.test, labels.test_paths
    candidates = [p for p in pool_paths if p not in train and p not in test and p not in held_out]
    if len(candidates) > POOL_SAMPLE:
        candidates = [candidates[i] for i in rng.choice(len(candidates), POOL_SAMPLE, replace=False)]
    probs, _ = learner.predict_paths(candidates, progress)
    return probs.max(axis=1) if len(probs) else np.zeros(0)


def evaluate(
    learner, labels, evidence, pool_paths, rng, progress=None
) -> tuple[dict, dict[str, bool]] | None:
    """(metrics, path -> correct on the test images); None when there is no evaluation label yet."""
    paths, hit, conf, p_true = score(learner, labels.test)
    recent = evidence.recent(len(labels.train))
    if not paths and not recent:
        return None
    correct = np.concatenate([hit.astype(float), [r[1] for r in recent]])
    confidence = np.concatenate([conf, [r[2] for r in recent]])
    pool = pool_confidence(learner, pool_paths, labels, rng, progress)
    est = estimate(correct, confidence, pool, n_test=len(paths))
    loss, loss_low, loss_high = mean_interval(
        -np.log(np.clip(np.concatenate([p_true, [r[3] for r in recent]]), _EPS, 1))
    )
    row = {
        "n_test": len(paths),
        "n_eval": est.n,
        "accuracy": est.accuracy,
        "accuracy_low": est.low,
        "accuracy_high": est.high,
        "test_accuracy": float(hit.mean()) if paths else math.nan,
        "loss": loss,
        "loss_low": loss_low,
        "loss_high": loss_high,
    }
    return row, dict(zip(paths, hit.tolist(), strict=True))


def threshold_crossed(row: dict, early_stopping, min_eval: int) -> str | None:
    """The reason to stop when a metric's interval left its band (with enough evaluation labels).

    ``accuracy >= 0.95`` stops only once the interval's LOW end reached 0.95: a lucky handful of test
    labels cannot end a session early."""
    if row.get("n_eval", row.get("n_test", 0)) < min_eval:
        return None
    for metric, (lower, upper) in early_stopping.items():
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


def diagnose(learner, test: dict[str, int], n_wrong: int = 8) -> dict:
    """Confusion matrix, per-class accuracy and most wrong images of the live model on ``test``."""
    from ..reports import diagnostics

    probs, scored = learner.predict_paths(list(test))
    return diagnostics.diagnose(scored, probs, [test[p] for p in scored], learner.label_names, n_wrong)
