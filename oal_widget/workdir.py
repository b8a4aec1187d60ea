"""The workdir (``<images>/.oal`` by default): the names of the files in it, and the one way to write them.

Every file is written to a temporary name in the same folder and moved over the target with
``os.replace``, so a kill at any moment leaves either the old file or the new one, never half of one.
Standard library only.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

#: The label store (SQLite, WAL mode): labels, label names, test split, undo history.
STORE_FILE = "annotations.sqlite"
#: The online model, saved on stop; a restart continues from it.
MODEL_FILE = "model.keras"
#: One row per evaluation.
METRICS_FILE = "metrics.csv"
#: Each training label's prediction before the model learnt it (the review queue, the estimate), saved on
#: stop so a continued session keeps them.
FIRST_SIGHT_FILE = "first_sight.npz"
#: Decoded images and frozen-backbone embeddings (memory-mapped; safe to delete).
CACHE_DIR = "cache"
#: Where ``final_fit`` saves its model and card.
FINAL_DIR = "final"
MODEL_CARD_FILE = "model_card.json"


def default_workdir(images: Path) -> Path:
    return Path(images) / ".oal"


def atomic_write(target, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``target``, then move it over ``target``.

    The temporary name keeps ``target``'s suffix (Keras insists on ``.keras``). Returns ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=target.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def atomic_write_text(target, text: str) -> Path:
    return atomic_write(target, lambda tmp: None if tmp.write_text(text, encoding="utf-8") else None)


def atomic_write_csv(target, columns: Sequence[str], rows: Iterable[Mapping]) -> Path:
    """A CSV with a header of ``columns``; keys of a row not among them are ignored."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(target, write)


def atomic_save_model(model, target) -> Path:
    """``model.save`` to ``target`` (a ``.keras`` file) without ever leaving a half-written one."""
    return atomic_write(target, lambda tmp: model.save(tmp, overwrite=True))
