"""What the panel and the trainer say to each other: immutable messages, no behaviour.

The panel (or the simulator) puts *commands* on the trainer's inbox (a ``queue.Queue``); the
trainer publishes ``Update`` objects. Neither side ever touches the other's state directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Trainer states, in the order a session usually passes through them.
STATUSES = (
    "importing",  # TensorFlow is being imported / the model built
    "waiting",  # no labels yet, or idle after enough rounds without new labels
    "training",
    "evaluating",
    "querying",
    "paused",
    "stopping",
    "stopped",
    "error",  # model_fn or a training step failed; labelling goes on, the trainer waits for a retry
)


# --- commands: panel -> trainer -------------------------------------------------------------
@dataclass(frozen=True)
class Labelled:
    """An image got a label (or a new one). ``label`` is the class name, ``split`` 'train' or 'test'.

    ``sent_at`` (``time.monotonic()`` when the person gave it; None for labels handed over at start) lets
    the trainer measure label-to-model latency without anyone setting its attributes. ``source``: who
    chose the label (``person``, ``accepted`` a model prediction, ``review``, ``imported``); only a
    person's own label can grade the model (a prediction accepted was chosen by the prediction).
    ``fresh`` is False for the stored labels handed over at start: a continued model has learnt them,
    so its view of them is no first sight.
    """

    path: str
    label: str
    split: str = "train"
    sent_at: float | None = field(default=None, compare=False)
    source: str = field(default="person", compare=False)
    fresh: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class Unlabelled:
    """An image lost its label (undo), or has one the trainer must neither learn nor be graded by
    (``paid``: a class it does not know, a test label shadowed by a training near-duplicate); a paid
    label still counts among the labels given, the curve's x."""

    path: str
    paid: bool = False


@dataclass(frozen=True)
class Reserve:
    """These images joined the test reserve (near-duplicates of a reserve image): never train on them."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Retry:
    """Build the model again after an error; with ``model_fn``, build it with that fixed function."""

    model_fn: Callable | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Stop:
    reason: str = "stopped by the user"


# --- what the trainer publishes -------------------------------------------------------------
_EMPTY: MappingProxyType = MappingProxyType({})


@dataclass(frozen=True)
class Update:
    """A snapshot from the trainer. Every field is a copy: safe to keep and read from any thread."""

    status: str
    #: Training labels (not test) the model has been trained on so far.
    n_labels: int = 0
    #: Every evaluation so far, oldest first: dicts with n_labels, accuracy, loss, n_test, seconds.
    metrics: tuple[Mapping[str, float], ...] = ()
    #: New order of the unlabelled training candidates, most useful first (only after a query).
    order: tuple[str, ...] | None = None
    #: path -> (predicted class name, confidence in [0, 1]) for the images scored by the last query.
    predictions: Mapping[str, tuple[str, float]] = field(default_factory=lambda: _EMPTY)
    #: Human-readable message: the error text when status == 'error', the stop reason when stopped.
    message: str = ""
    #: Files written on stop: {"model": ..., "metrics": ...}.
    saved: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    #: Long work in progress: (what, done, total), e.g. ("embedding images", 1200, 5000); done == total
    #: when it finished. None: this update says nothing about it (keep the last one you received).
    work: tuple[str, int, int] | None = None
    #: Every pool image's features for "more like this" (an immutable ``al.neighbours.Neighbours``), sent
    #: once built and again when the feature space changes. None: this update says nothing about it.
    neighbours: object | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"Update.status={self.status!r} is invalid: expected one of {STATUSES}")
        object.__setattr__(self, "predictions", MappingProxyType(dict(self.predictions)))
        object.__setattr__(self, "saved", MappingProxyType(dict(self.saved)))
        object.__setattr__(self, "metrics", tuple(MappingProxyType(dict(m)) for m in self.metrics))
        if self.order is not None:
            object.__setattr__(self, "order", tuple(self.order))
        if self.work is not None:
            what, done, total = self.work
            object.__setattr__(self, "work", (str(what), int(done), int(total)))
