"""How the classifier does on each class: the overall accuracy hides a weak (often a rare) class.

A class's accuracy is its recall: of the images of that class, the share the classifier gets right. It
rests on the held-out test labels of that class and the first-sight predictions of its latest training
labels (the classifier's guess before it learnt them: a slightly older model, so the figure errs low),
with Wilson's 95% band over however few there are: three labels give a band as wide as it should be.
Each class measured adds ``recall:<class>`` with ``_low`` / ``_high`` and ``n:<class>`` (the labels it
rests on) to an evaluation's row, which is what an early-stopping threshold such as
``{"recall:Bag": (None, 0.8)}`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .estimate import wilson

PREFIX = "recall:"
#: Every row key this module adds starts with one of these (``checkpoint`` writes them after the fixed ones).
KEY_PREFIXES = (PREFIX, "n:")


def recall_rows(predicted: np.ndarray, y: np.ndarray, label_names: Sequence[str]) -> dict[str, float]:
    """Per class with at least one label: its recall, band and count, as flat row keys.

    ``predicted`` / ``y``: the predicted and the true class index of every label it rests on."""
    predicted, y = np.asarray(predicted, int), np.asarray(y, int)
    out: dict[str, float] = {}
    for k, name in enumerate(label_names):
        mine = y == k
        n = int(mine.sum())
        if not n:
            continue
        hits = int((predicted[mine] == k).sum())
        low, high = wilson(hits, n)
        key = f"{PREFIX}{name}"
        out.update({key: hits / n, f"{key}_low": low, f"{key}_high": high, f"n:{name}": n})
    return out


def per_class(row: dict, label_names: Sequence[str]) -> list[dict]:
    """An evaluation row's classes, in label order: name, recall, low, high, n (None where unmeasured)."""
    out = []
    for name in label_names:
        key = f"{PREFIX}{name}"
        if key in row:
            out.append(
                {"name": name, "recall": row[key], "low": row[f"{key}_low"], "high": row[f"{key}_high"],
                 "n": int(row[f"n:{name}"])}
            )  # fmt: skip
        else:
            out.append({"name": name, "recall": None, "low": None, "high": None, "n": 0})
    return out


def check_class_thresholds(early_stopping, label_names: Sequence[str]) -> None:
    """``ValueError`` when an early-stopping threshold names a class that is not one of the labels."""
    unknown = [m for m in early_stopping if m.startswith(PREFIX) and m[len(PREFIX) :] not in label_names]
    if unknown:
        raise ValueError(
            f"setting early_stopping={dict(early_stopping)!r} names {unknown}, not classes of "
            f"{list(label_names)!r}: write '{PREFIX}' and one of the labels, e.g. '{PREFIX}{label_names[0]}'"
        )
