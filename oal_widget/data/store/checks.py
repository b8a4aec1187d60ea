"""Checks of what callers pass in (paths, label names, provenance, leases) and the store's clock format."""

from __future__ import annotations

import getpass
import math
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import overload

#: Where a label came from: the person's own choice, a model suggestion the person accepted, a
#: correction from the review queue, a file imported, or the label of a near-duplicate the person confirmed.
SOURCES = ("person", "accepted", "review", "imported", "duplicate")
#: Sources whose label the model suggested: they may carry ``model_labels``.
MODEL_SOURCES = frozenset({"accepted", "review"})
#: Sources that set the standing label whoever labelled the image first (a deliberate decision).
SETTLING_SOURCES = frozenset({"review", "imported"})
#: The annotator of labels written before provenance was recorded (schema 1).
UNKNOWN_ANNOTATOR = ""


@overload
def iso(value: None) -> None: ...
@overload
def iso(value: str | datetime) -> str: ...
def iso(value):
    """A time as the store writes it: UTC ISO 8601 with milliseconds (text sorts by time)."""
    if value is None or isinstance(value, str):
        return value
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_path(path) -> str:
    """``path`` if it is relative to the images folder with ``/`` separators; else ``ValueError``."""
    parts = path.split("/") if isinstance(path, str) else []
    if not parts or path.startswith("/") or ".." in parts or not all(parts):
        raise ValueError(
            f"image path {path!r} is invalid: expected a path relative to the images folder "
            "with '/' separators, e.g. 'cats/img_001.png'"
        )
    return path


def check_label_names(names) -> list[str]:
    """``names`` as a list if it is a non-empty list of unique, non-blank strings; else ``ValueError``."""
    if isinstance(names, (str, bytes, Mapping)) or not isinstance(names, Iterable):
        raise ValueError(f"labels={names!r} is invalid: expected a list of names, e.g. labels=['cat', 'dog']")
    names = list(names)
    if not names:
        raise ValueError("labels=[] is invalid: give at least one name, e.g. labels=['cat', 'dog']")
    for i, name in enumerate(names, 1):
        if not isinstance(name, str):
            raise ValueError(
                f"labels: label #{i} {name!r} is a {type(name).__name__}, expected a string "
                f"(e.g. labels=['0', '1'] rather than [0, 1])"
            )
        if not name.strip():
            raise ValueError(f"labels: label #{i} {name!r} is blank: every label needs a visible name")
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"labels: {name!r} appears more than once: every label must be unique")
        seen.add(name)
    return names


def check_source(source) -> str:
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is invalid: expected one of {', '.join(map(repr, SOURCES))}")
    return source


def check_model_labels(model_labels, source: str) -> int | None:
    """None, or how many labels the model had seen when it suggested a label (``accepted`` / ``review``)."""
    if model_labels is None:
        return None
    if isinstance(model_labels, bool) or not isinstance(model_labels, int) or model_labels < 0:
        raise ValueError(
            f"model_labels={model_labels!r} is invalid: expected None or the number of labels (>= 0) "
            "the model had seen when it suggested the label"
        )
    if source not in MODEL_SOURCES:
        raise ValueError(
            f"model_labels={model_labels} with source={source!r}: only a label the model suggested "
            "(source 'accepted' or 'review') has model_labels; a person's own choice or an import has None"
        )
    return model_labels


def check_lease(lease_s) -> float:
    if isinstance(lease_s, bool) or not isinstance(lease_s, (int, float)) or not math.isfinite(lease_s):
        raise ValueError(f"lease_s={lease_s!r} is invalid: expected seconds > 0, e.g. lease_s=600")
    if lease_s <= 0:
        raise ValueError(f"lease_s={lease_s!r} is invalid: expected seconds > 0, e.g. lease_s=600")
    return float(lease_s)


def check_share(share) -> float:
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ValueError(f"double_label={share!r} is invalid: expected a share between 0 and 1, e.g. 0.05")
    return float(share)


def check_annotator(annotator) -> str:
    """``annotator``, or the login name when None (``getpass.getuser()``)."""
    if annotator is None:
        try:
            annotator = getpass.getuser()
        except (OSError, KeyError):  # no login name in some containers
            annotator = f"uid{os.getuid()}"
    if not isinstance(annotator, str) or not annotator.strip():
        raise ValueError(
            f"annotator={annotator!r} is invalid: expected the person's name, e.g. annotator='alice'"
        )
    return annotator
