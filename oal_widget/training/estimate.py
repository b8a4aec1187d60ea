"""What the accuracy is, how sure we are, and how few test labels that needs.

Every label a person gives costs the same, so the evaluation spends as few as it can. A test reserve (a
uniform random part of the pool, never trained on) supplies a few held-out labels; every training label
adds a *first-sight* prediction (the classifier's guess before it learnt that label). The estimate
calibrates the classifier's confidence by one temperature, fitted on the held-out labels (current
classifier, weight 1) and the latest 30 first-sight predictions (weight 0.25, re-blended with today's
graph weight), then averages the calibrated confidence over the reserve's images (labelled or not: a
uniform sample of the pool). Its band adds the held-out residuals' variance to the reserve's, never
narrower than a plus-four binomial band over the labels it rests on (held-out and first-sight: the
reserve's unlabelled images tell the confidence, not whether it is right). Where the held-out labels
disagree with the calibrated confidence beyond their own noise (first-sight predictions of a much older
classifier can mislead the temperature while the model learns fast), their mean residual is added: the
prediction-powered estimate, whose band is the one stated.

The band is conservative by design: first-sight predictions are of an older classifier (a bias of
-0.005 to -0.03, more before 100 labels on hard data). ``bench/label_efficiency.py`` measures its
coverage and width on every set; the README has the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z = 1.959964  # two-sided 95%
#: Temperatures tried (a grid: robust with a handful of labels, no optimiser to diverge).
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(10.0), 48))
#: First-sight predictions used, and their weight beside a held-out label.
RECENT, RECENT_WEIGHT = 30, 0.25
_EPS = 1e-7


@dataclass(frozen=True)
class Estimate:
    accuracy: float
    low: float
    high: float
    n: int  # labels it rests on
    n_test: int
    n_prequential: int
    temperature: float = 1.0

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


def fit_temperature(logp: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """The temperature of ``TEMPERATURES`` with the least weighted log-loss; 1 without labels."""
    if len(y) == 0:
        return 1.0
    z = logp[None] / TEMPERATURES[:, None, None]
    m = z.max(2, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(z - m).sum(2))
    nll = ((lse - z[:, np.arange(len(y)), y]) * w[None]).sum(1)
    return float(TEMPERATURES[int(np.argmin(nll))])


def calibrated_confidence(logp: np.ndarray, T: float) -> np.ndarray:
    z = logp / T
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(1, keepdims=True)).max(1)


def estimate(reserve_probs, held_out, held_y, recent_probs=None, recent_y=None) -> Estimate | None:
    """The classifier's accuracy on new images with its 95% band.

    ``reserve_probs`` (R, C): its probabilities on the test reserve's images (labelled or not);
    ``held_out``: the rows of those with a test label, ``held_y`` their classes; ``recent_probs`` /
    ``recent_y``: first-sight probabilities and classes of the latest training labels. None when there
    is neither a held-out nor a recent label."""
    P = np.asarray(reserve_probs, dtype=float)
    held_out = np.asarray(held_out, dtype=int)
    held_y = np.asarray(held_y, dtype=int)
    recent_probs = (
        np.zeros((0, P.shape[1] if P.ndim == 2 else 1))
        if recent_probs is None
        else np.asarray(recent_probs, float)
    )
    recent_y = np.zeros(0, int) if recent_y is None else np.asarray(recent_y, int)
    k, r = len(held_out), len(recent_y)
    if k + r == 0 or len(P) == 0:
        return None
    L = np.log(np.clip(P, _EPS, 1.0))
    fit_logp = np.concatenate([L[held_out], np.log(np.clip(recent_probs, _EPS, 1.0))])
    fit_y = np.concatenate([held_y, recent_y])
    weights = np.concatenate([np.ones(k), RECENT_WEIGHT * np.ones(r)])
    T = fit_temperature(fit_logp, fit_y, weights)
    g = calibrated_confidence(L, T)
    est = float(g.mean())
    if k >= 2:
        residual = (P[held_out].argmax(1) == held_y) - g[held_out]
        sd = math.sqrt(residual.var(ddof=1) / k + g.var() / len(g))
        # Its noise with a binomial floor: fifteen right answers out of fifteen prove no 100%.
        hits = (P[held_out].argmax(1) == held_y).sum()
        floor = (hits + 2) / (k + 4) * (1 - (hits + 2) / (k + 4))
        bias, bias_se = float(residual.mean()), math.sqrt(max(residual.var(ddof=1), floor) / k)
        if abs(bias) > Z * bias_se:  # the held-out labels disagree: the rectified (PPI) estimate
            est = min(1.0, max(0.0, est + bias))
    else:
        sd = 0.5
    # Plus-four binomial floor over the labels it rests on (the reserve's unlabelled images tell the
    # confidence, not whether it is right): never a zero-width band at 100%, nor a band of +-0.01 from
    # three test labels and a confident model.
    n = k + r
    adjusted = (est * n + 2) / (n + 4)
    sd = max(sd, math.sqrt(adjusted * (1 - adjusted) / n))
    return Estimate(est, max(0.0, est - Z * sd), min(1.0, est + Z * sd), k + r, k, r, T)


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


# --- how many test labels --------------------------------------------------------------------------------
#: While the interval is wider than this, keep asking for test labels (within the share below).
TARGET_HALFWIDTH = 0.04
#: Test labels the estimate needs at least before the interval may stop more being asked.
MIN_TEST = 10
#: A quarter of the first labels (an estimate exists early), then 4 + 10%: at most 15% from 100 on.
EARLY_SHARE, BASE, SHARE = 0.25, 4, 0.1


def wanted_test_labels(n_labels: int) -> int:
    """Test labels wanted once ``n_labels`` labels were given: 5 of 20, 8 of 40, 14 of 100, 24 of 200."""
    return math.floor(min(EARLY_SHARE * n_labels, BASE + SHARE * n_labels))


def wants_test(n_train: int, n_test: int, halfwidth: float | None = None) -> bool:
    """Should the next label be a test label? Its share falls as the interval narrows."""
    if halfwidth is not None and halfwidth <= TARGET_HALFWIDTH and n_test >= MIN_TEST:
        return False
    return n_test < wanted_test_labels(n_train + n_test + 1)
