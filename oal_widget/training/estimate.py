"""What the accuracy is, how sure we are, and how few test labels that needs.

Every label a person gives costs the same, so the evaluation rests on two kinds of labels: a small
held-out test set (uniform over the pool, never trained on, re-scored by the current model at every
evaluation) and *prequential* records: images that exploration picked uniformly at random, scored by
the model just BEFORE their label taught it (free: the person labels them for training anyway).

The estimate is a difference (prediction-powered) estimator: the model's mean confidence over a fresh
sample of the unlabelled pool, corrected by the mean residual (correct - confidence) over the labelled
evaluation samples. The pool term has almost no variance; the residual varies far less than
correctness itself when confidence tracks correctness, so fewer labels give a narrower interval, and
the correction keeps it unbiased for the pool the samples came from (Angelopoulos et al. 2023). Stated
biases: prequential records lag the current model (they are kept only from the recent half of the
labels); the unlabelled pool excludes the images already labelled, which active learning picked for
being hard, so the pool is slightly easier than the whole folder.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

Z = 1.959964  # two-sided 95%
#: Pseudo-observations of the residual variance: a handful of labels cannot claim a tiny interval.
PRIOR_N, PRIOR_VAR = 2, 0.25
#: The pool term needs this many confidences; below it the estimate is the plain proportion.
MIN_POOL = 20
#: Prequential records are kept from the newest half of the training labels, at most this many.
MAX_RECORDS = 400
_EPS = 1e-7


@dataclass(frozen=True)
class Estimate:
    accuracy: float
    low: float
    high: float
    n: int  # labels it rests on
    n_test: int
    n_prequential: int

    @property
    def halfwidth(self) -> float:
        return (self.high - self.low) / 2


def t_quantile(df: float) -> float:
    """Student's t 97.5% quantile (Cornish-Fisher expansion; within 1% for df >= 3)."""
    if df <= 0:
        return math.inf
    z = Z
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def wilson(k: float, n: int) -> tuple[float, float]:
    """Wilson's 95% interval of a proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + Z**2 / n
    centre = (p + Z**2 / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def estimate(correct, confidence, pool_confidence=None, n_test: int | None = None) -> Estimate | None:
    """The accuracy of the model from evaluation samples (``correct`` 0/1 and the model's ``confidence``
    in its prediction, one per sample) and the confidences on a sample of the unlabelled pool."""
    y = np.asarray(correct, dtype=float)
    f = np.asarray(confidence, dtype=float)
    n = len(y)
    if n == 0:
        return None
    n_test = n if n_test is None else n_test
    pool = None if pool_confidence is None else np.asarray(pool_confidence, dtype=float)
    if pool is None or len(pool) < MIN_POOL:
        low, high = wilson(y.sum(), n)
        return Estimate(float(y.mean()), low, high, n, n_test, n - n_test)
    r = y - f
    var_r = (float(np.sum((r - r.mean()) ** 2)) + PRIOR_N * PRIOR_VAR) / (n - 1 + PRIOR_N)
    var = var_r / n + float(np.var(pool)) / len(pool)
    theta = float(np.mean(pool) + r.mean())
    half = t_quantile(n - 1 + PRIOR_N) * math.sqrt(var)
    centre = min(1.0, max(0.0, theta))
    return Estimate(centre, max(0.0, theta - half), min(1.0, theta + half), n, n_test, n - n_test)


def mean_interval(values) -> tuple[float, float, float]:
    """(mean, low, high) with a t interval, e.g. of per-image losses."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, 0.0, math.inf
    half = t_quantile(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, max(0.0, m - half), m + half


class Evidence:
    """Prequential records: (training labels at the time, correct, confidence, probability of the truth)."""

    def __init__(self):
        self._records: collections.deque = collections.deque(maxlen=MAX_RECORDS)

    def add(self, n_train: int, correct: bool, confidence: float, p_true: float) -> None:
        self._records.append((n_train, bool(correct), float(confidence), max(float(p_true), _EPS)))

    def recent(self, n_train: int) -> list[tuple]:
        """The records from the newest half of the training labels (older ones judged an older model)."""
        since = n_train // 2
        return [r for r in self._records if r[0] >= since]

    def __len__(self) -> int:
        return len(self._records)


# --- how many test labels --------------------------------------------------------------------------------
#: While the interval is wider than this, keep asking for test labels (within the share below).
TARGET_HALFWIDTH = 0.04
#: Test labels the estimate needs at least before the interval may stop more being asked.
MIN_TEST = 10
#: A quarter of the first labels (an estimate exists early), then 15% at most.
EARLY_SHARE, SHARE = 0.25, 0.15


def wanted_test_labels(n_labels: int) -> int:
    """Test labels wanted once ``n_labels`` labels were given: 5 of 20, 10 of 40, then 15% (15 of 100)."""
    return min(math.floor(EARLY_SHARE * n_labels), max(MIN_TEST, math.floor(SHARE * n_labels)))


def wants_test(n_train: int, n_test: int, halfwidth: float | None = None) -> bool:
    """Should the next label be a test label? Its share falls as the interval narrows."""
    if halfwidth is not None and halfwidth <= TARGET_HALFWIDTH and n_test >= MIN_TEST:
        return False
    return n_test < wanted_test_labels(n_train + n_test + 1)
