"""What the trainer leaves on disk: ``model.keras``, ``metrics.csv`` and ``first_sight.npz``, written
atomically.

A continued session reads the earlier ``metrics.csv`` so its curve goes on where it stopped, and the
earlier first-sight predictions, so its review queue and its estimate still have them (the stored labels
handed over at start are not scored again: the continued model has learnt them).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from ..workdir import (
    FIRST_SIGHT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    atomic_save_model,
    atomic_write,
    atomic_write_csv,
)
from .evaluation import METRICS_COLUMNS
from .per_class import KEY_PREFIXES as PER_CLASS

log = logging.getLogger(__name__)


def save(workdir: Path, model, history: list[dict], sight=None) -> dict[str, str]:
    """Write the model (when given), the metrics and the first-sight predictions (when there are any);
    returns ``{"model": ..., "metrics": ..., "first_sight": ...}`` for those written."""
    saved: dict[str, str] = {}
    if model is None and not history:
        return saved
    if model is not None:
        saved["model"] = str(atomic_save_model(model, Path(workdir) / MODEL_FILE))
    saved["metrics"] = str(write_metrics(workdir, history))
    written = write_first_sight(workdir, sight)
    if written is not None:
        saved["first_sight"] = str(written)
    return saved


def write_progress(workdir: Path, history: list[dict], sight) -> None:
    """After an evaluation: the metrics and the first-sight predictions, so a killed kernel keeps them."""
    write_metrics(workdir, history)
    write_first_sight(workdir, sight)


def write_first_sight(workdir: Path, sight) -> Path | None:
    """``first_sight.npz`` of ``sight``; None when there is nothing to write."""
    if sight is None or not sight.probs:
        return None
    arrays = sight.arrays()
    return atomic_write(Path(workdir) / FIRST_SIGHT_FILE, lambda tmp: np.savez(tmp, **arrays))


def load_first_sight(workdir: Path, sight) -> int:
    """Restore an earlier session's first-sight predictions into ``sight``; returns how many (0 when
    there is no file, it cannot be read, or it is of other classes: nothing is lost but the queue)."""
    path = Path(workdir) / FIRST_SIGHT_FILE
    sight.restored = True
    if not path.is_file():
        return 0
    try:
        with np.load(path, allow_pickle=False) as f:
            return sight.restore({k: f[k] for k in f.files})
    except Exception as e:  # a damaged or foreign file (zip, pickle, shape errors) costs the queue only
        log.warning(
            "ignored %s (%s: %s): the review queue starts afresh; the next evaluation rewrites it",
            path,
            type(e).__name__,
            e,
        )
        return 0


def write_metrics(workdir: Path, history: list[dict]) -> Path:
    """``metrics.csv``: the columns every row has, then each class's (``recall:<class>``, ``n:<class>``)."""
    per_class = dict.fromkeys(k for row in history for k in row if k.startswith(PER_CLASS))
    return atomic_write_csv(Path(workdir) / METRICS_FILE, [*METRICS_COLUMNS, *per_class], history)


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
        k: (int(v) if k.startswith(("n_", "n:")) else float(v))
        for k, v in r.items()
        if (k in METRICS_COLUMNS or k.startswith(PER_CLASS)) and v != ""
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
