"""Where the model is wrong: confusion matrix, per-class accuracy and the most wrong images.

Pure numpy over predicted probabilities, so it is tested without TensorFlow; the trainer computes
the probabilities (``Trainer.diagnose``) and the panel renders the result (``confusion_html``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = images of true class ``i`` predicted as ``j`` (int64, ``num_classes`` square)."""
    y_true = np.asarray(y_true, dtype="int64")
    y_pred = np.asarray(y_pred, dtype="int64")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape")
    cm = np.zeros((num_classes, num_classes), dtype="int64")
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> list[float | None]:
    """Recall of each true class (diagonal / row sum); None for a class with no test image."""
    cm = np.asarray(cm)
    totals = cm.sum(axis=1)
    return [float(cm[i, i] / totals[i]) if totals[i] else None for i in range(len(cm))]


def most_wrong(
    paths: Sequence[str], probs: np.ndarray, y_true, label_names: Sequence[str], n: int = 8
) -> list[dict]:
    """The ``n`` misclassified images the model is most sure about, worst first.

    Each: ``path``, ``label`` (true), ``predicted``, ``confidence`` (of the prediction) and
    ``p_true`` (probability given to the true class). Plain Python values (JSON-safe).
    """
    probs = np.asarray(probs, dtype="float64")
    y_true = np.asarray(y_true, dtype="int64")
    if len(paths) == 0:
        return []
    pred = probs.argmax(axis=1)
    p_true = probs[np.arange(len(y_true)), y_true]
    wrong = np.flatnonzero(pred != y_true)
    worst = wrong[np.argsort(p_true[wrong], kind="stable")][:n]
    return [
        {
            "path": str(paths[i]),
            "label": str(label_names[y_true[i]]),
            "predicted": str(label_names[pred[i]]),
            "confidence": float(probs[i, pred[i]]),
            "p_true": float(p_true[i]),
        }
        for i in worst
    ]


def diagnose(paths: Sequence[str], probs: np.ndarray, y_true, label_names: Sequence[str], n_wrong: int = 8):
    """Everything the panel shows about the test split, as plain Python values (JSON-safe)."""
    probs = np.asarray(probs, dtype="float64").reshape(len(paths), len(label_names))
    y_true = np.asarray(y_true, dtype="int64")
    k = len(label_names)
    pred = probs.argmax(axis=1) if len(paths) else np.zeros(0, dtype="int64")
    cm = confusion_matrix(y_true, pred, k)
    p_true = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0) if len(paths) else np.ones(0)
    return {
        "label_names": list(label_names),
        "n_test": int(len(paths)),
        "accuracy": float(np.mean(pred == y_true)) if len(paths) else None,
        "loss": float(-np.mean(np.log(p_true))) if len(paths) else None,
        "confusion": cm.tolist(),
        "per_class_accuracy": dict(zip(label_names, per_class_accuracy(cm), strict=True)),
        "most_wrong": most_wrong(paths, probs, y_true, label_names, n_wrong),
    }


def confusion_html(result: dict) -> str:
    """The confusion matrix (rows: true, columns: predicted) and per-class accuracy as an HTML table."""
    names = result["label_names"]
    cm = result["confusion"]
    acc = result["per_class_accuracy"]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for i, name in enumerate(names):
        cells = []
        for j, count in enumerate(cm[i]):
            style = "font-weight:bold" if i == j else ("color:#c62828" if count else "color:#aaa")
            cells.append(f'<td style="{style};text-align:right">{count}</td>')
        share = acc[name]
        shown = "–" if share is None else f"{share:.0%}"
        rows.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}<td>{shown}</td></tr>")
    overall = "–" if result["accuracy"] is None else f"{result['accuracy']:.1%}"
    return (
        f"<p>Test split: {result['n_test']} labelled images, accuracy {overall} "
        "(rows: true label, columns: predicted).</p>"
        f'<table class="oal-confusion-table"><tr><th>true \\ predicted</th>{head}<th>accuracy</th></tr>'
        + "".join(rows)
        + "</table>"
    )
