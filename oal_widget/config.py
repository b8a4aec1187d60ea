"""Every setting of a labelling session, validated in one place.

Names follow the original framework's config files (BUFFER_SIZE, TEST_SET_FRAC, BATCH_SIZE,
EARLY_STOPPING_METRICS_THRESHOLDS, EVAL_AND_QUERY_EVERY, INPUT_SHAPE) in snake case.
Knows nothing of widgets or TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Metrics the trainer computes on the test split; thresholds may use any of them.
METRICS = ("accuracy", "loss")
STRATEGY_NAMES = ("margin", "least_confidence", "ratio", "entropy", "random")
POLICY_NAMES = ("greedy", "epsilon_greedy")


@dataclass(frozen=True)
class Config:
    """Settings of one session. Every field has a default; wrong values raise ``ValueError``."""

    #: Height, width and channels (1 grey, 3 RGB) the model sees; (h, w) means RGB. Images are resized to it.
    input_shape: tuple[int, ...] = (64, 64, 3)
    #: Fraction of the images held out as the test split (labelled like the others, never trained on).
    test_fraction: float = 0.2
    #: Labels handed to the trainer at once; 1 hands over every label as soon as it is saved.
    buffer_size: int = 1
    #: Images per gradient step (drawn from ALL labels so far).
    batch_size: int = 32
    #: Gradient steps per training round; the trainer checks its inbox between steps.
    train_steps: int = 10
    #: Rounds the trainer keeps training without new labels before it waits for more.
    idle_rounds: int = 30
    #: New training labels between two evaluations on the test split.
    eval_every: int = 10
    #: New training labels between two active-learning queries (re-ordering of the pool).
    query_every: int = 10
    #: Stop when a metric leaves its band: ``{"accuracy": (None, 0.95)}`` stops at accuracy >= 0.95,
    #: ``{"loss": (0.05, None)}`` at loss <= 0.05. Empty: only the person (or the pool's end) stops.
    early_stopping: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: Labelled test images needed before a threshold may stop the session.
    min_test_labels: int = 10
    #: Query strategy: a name from ``STRATEGY_NAMES`` or a callable ``probs -> scores``.
    strategy: object = "margin"
    #: How scores become an order: a name from ``POLICY_NAMES`` or a callable ``(scores, rng) -> order``.
    policy: object = "epsilon_greedy"
    #: Share of the order given to random images by ``epsilon_greedy`` (exploration).
    epsilon: float = 0.1
    #: Seed for the test split, sampling and exploration; the same seed gives the same session.
    seed: int = 0
    #: Where the store, model and metrics go; ``None`` means ``<images>/.oal``.
    workdir: Path | None = None

    def __post_init__(self):
        object.__setattr__(self, "input_shape", _check_shape(self.input_shape))
        if not (isinstance(self.test_fraction, (int, float)) and 0 <= self.test_fraction < 1):
            _bad("test_fraction", self.test_fraction, "a number in [0, 1), e.g. 0.2")
        for name in ("buffer_size", "batch_size", "train_steps", "idle_rounds", "eval_every", "query_every"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                _bad(name, value, "a whole number >= 1")
        if not _is_int(self.min_test_labels) or self.min_test_labels < 1:
            _bad("min_test_labels", self.min_test_labels, "a whole number >= 1")
        if not _is_int(self.seed):
            _bad("seed", self.seed, "a whole number")
        if not (isinstance(self.epsilon, (int, float)) and 0 <= self.epsilon <= 1):
            _bad("epsilon", self.epsilon, "a number in [0, 1]")
        _check_choice("strategy", self.strategy, STRATEGY_NAMES)
        _check_choice("policy", self.policy, POLICY_NAMES)
        object.__setattr__(self, "early_stopping", _check_thresholds(self.early_stopping))
        if self.workdir is not None:
            object.__setattr__(self, "workdir", Path(self.workdir))

    @property
    def channels(self) -> int:
        return self.input_shape[2]

    def replace(self, **changes) -> Config:
        """A copy with some settings changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}; accepted: {sorted(field_names())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain values for JSON (callables by name)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if callable(value):
                value = getattr(value, "__name__", repr(value))
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Mapping):
                value = {k: list(v) for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


def _bad(name, value, accepted):
    raise ValueError(f"setting {name}={value!r} is invalid: expected {accepted}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_shape(shape):
    ok = (
        isinstance(shape, (tuple, list))
        and len(shape) in (2, 3)
        and all(_is_int(v) and v >= 1 for v in shape)
        and (len(shape) == 2 or shape[2] in (1, 3))
    )
    if not ok:
        _bad("input_shape", shape, "(height, width) or (height, width, channels) with channels 1 or 3")
    if len(shape) == 2:
        shape = (*shape, 3)
    if min(shape[:2]) < 8:
        _bad("input_shape", shape, "height and width of at least 8 pixels")
    return tuple(shape)


def _check_choice(name, value, names):
    if callable(value):
        return
    if value not in names:
        _bad(name, value, f"one of {', '.join(names)} or a callable")


def _check_thresholds(thresholds):
    if thresholds is None:
        return {}
    if not isinstance(thresholds, Mapping):
        _bad("early_stopping", thresholds, 'a dict like {"accuracy": (None, 0.95)}')
    out = {}
    for metric, band in thresholds.items():
        if metric not in METRICS:
            _bad("early_stopping", thresholds, f"metric names among {', '.join(METRICS)}, not {metric!r}")
        if not (isinstance(band, (tuple, list)) and len(band) == 2):
            _bad("early_stopping", thresholds, f"a (lower, upper) pair for {metric!r}, either may be None")
        lower, upper = band
        for bound in (lower, upper):
            if bound is not None and not (isinstance(bound, (int, float)) and math.isfinite(bound)):
                _bad("early_stopping", thresholds, f"finite numbers or None as bounds of {metric!r}")
        if lower is None and upper is None:
            _bad("early_stopping", thresholds, f"at least one bound for {metric!r}")
        if lower is not None and upper is not None and lower >= upper:
            _bad("early_stopping", thresholds, f"lower < upper for {metric!r}")
        out[metric] = (lower, upper)
    return out
