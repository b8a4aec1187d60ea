"""What the trainer leaves on disk: ``model.keras`` and ``metrics.csv``, written atomically.

A continued session reads the earlier ``metrics.csv`` so its curve goes on where it stopped.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from ..workdir import METRICS_FILE, MODEL_FILE, atomic_save_model, atomic_write_csv
from .evaluation import METRICS_COLUMNS

log = logging.getLogger(__name__)


def save(workdir: Path, model, history: list[dict]) -> dict[str, str]:
    """Write the model (when given) and the metrics; returns ``{"model": ..., "metrics": ...}``."""
    saved = {}
    if model is None and not history:
        return saved
    if model is not None:
        saved["model"] = str(atomic_save_model(model, Path(workdir) / MODEL_FILE))
    saved["metrics"] = str(write_metrics(workdir, history))
    return saved


def write_metrics(workdir: Path, history: list[dict]) -> Path:
    return atomic_write_csv(Path(workdir) / METRICS_FILE, METRICS_COLUMNS, history)


def load_metrics(workdir: Path) -> list[dict]:
    """The rows of an earlier ``metrics.csv`` ([] when there is none or it cannot be read)."""
    path = Path(workdir) / METRICS_FILE
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as f:
            return [_row(r) for r in csv.DictReader(f)]
    except (OSError, KeyError, TypeError, ValueError) as e:
        log.warning("ignored the earlier %s (%s); the curve starts afresh", path, e)
        return []


def _row(r: dict) -> dict:
    """A metrics row as numbers; columns an older file lacks are filled from those it has."""
    row = {
        k: (int(v) if k.startswith("n_") else float(v))
        for k, v in r.items()
        if k in METRICS_COLUMNS and v != ""
    }
    for key in ("n_labels", "accuracy", "loss", "n_test", "seconds"):
        if key not in row:
            raise KeyError(key)
    row.setdefault("n_train", row["n_labels"])
    row.setdefault("n_eval", row["n_test"])
    for metric in ("accuracy", "loss"):
        row.setdefault(f"{metric}_low", row[metric])
        row.setdefault(f"{metric}_high", row[metric])
    row.setdefault("test_accuracy", row["accuracy"])
    return row
