"""What the accuracy is, how sure we are, and how few test labels that needs.

Every label a person gives costs the same, so the evaluation spends as few as it can. A test reserve (a
uniform random part of the pool, never trained on) supplies a few held-out labels; every training label
adds a *first-sight* prediction (the classifier's guess before it learnt that label). The estimate
calibrates the classifier's confidence by one temperature, fitted on the held-out labels (current
classifier, weight 1) and the first sights of the latest half of the training labels (models that had at
least half of today's labels, re-blended with today's graph weight), then averages the calibrated
confidence over the reserve's images (labelled or not: a uniform sample of the pool). First sights are
of older models on hard images (the queries chose them for their small margin), and a temperature right
for them can be wrong for the pool (on the MNIST digits, about 1 on first sights where the held-out
labels wanted 0.3 to 0.7: an estimate 0.05 low), so they weigh a quarter of a held-out label each and
all of them together at most 7.5 held-out labels: more of them steady the fit, they do not tilt it. The
band is the estimate's own noise: the reserve's sample and the temperature's (a bootstrap over the
labels it was fitted on), never narrower than a plus-four binomial band over the labels it rests on
(held-out and first-sight: the reserve's unlabelled images tell the confidence, not whether it is
right). Where the held-out labels disagree with the calibrated confidence beyond their own noise, their
mean residual is added: the prediction-powered estimate, whose band is the one stated.

The band is measured, not assumed: ``bench/band.py`` records the estimator's inputs in ``simulate`` and
replays candidates offline (coverage of the oracle set's accuracy, half-width, gap); the first sights'
bias is why the older ones are left out and the recent ones capped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z = 1.959964  # two-sided 95%
#: Temperatures tried (a grid: robust with a handful of labels, no optimiser to diverge).
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(10.0), 48))
#: First-sight predictions the pseudo-labels' trust reads (``FirstSight.recent``).
RECENT = 30
#: The estimate takes the first sights of the latest half of the training labels (models that had at
#: least half of today's labels): each weighs RECENT_WEIGHT of a held-out label, all of them together at
#: most RECENT_TOTAL_WEIGHT.
ESTIMATE_SHARE, RECENT_WEIGHT, RECENT_TOTAL_WEIGHT = 0.5, 0.25, 7.5
#: Bootstrap resamples of the temperature's fitting labels.
BOOTSTRAP = 200
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


def _temperature_table(fit_logp: np.ndarray, fit_y: np.ndarray, L: np.ndarray):
    """Per temperature of ``TEMPERATURES``: each fitting label's log-loss (T, n), and the mean
    calibrated confidence over the reserve (T,). A weighted fit is then one matrix product."""
    losses = np.empty((len(TEMPERATURES), len(fit_y)))
    for i, T in enumerate(TEMPERATURES):  # one at a time: thousands of labels x many classes stay small
        z = fit_logp / T
        m = z.max(1, keepdims=True)
        losses[i] = m[:, 0] + np.log(np.exp(z - m).sum(1)) - z[np.arange(len(fit_y)), fit_y]
    means = np.array([calibrated_confidence(L, T).mean() for T in TEMPERATURES])
    return losses, means


def _bootstrap_sd(losses: np.ndarray, means: np.ndarray, weights: np.ndarray, groups, n: int) -> float:
    """The spread of the estimate when the labels the temperature was fitted on are resampled (each group,
    held-out and first-sight, with replacement within itself): the temperature's own uncertainty."""
    rng = np.random.default_rng(len(weights))  # deterministic: the same labels give the same band
    counts = np.zeros((n, len(weights)))
    for rows in groups:
        if len(rows):
            counts[:, rows] = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)), size=n)
    best = np.argmin((counts * weights[None]) @ losses.T, axis=1)
    return float(means[best].std())


def estimate(reserve_probs, held_out, held_y, recent_probs=None, recent_y=None) -> Estimate | None:
    """The classifier's accuracy on new images with its 95% band.

    ``reserve_probs`` (R, C): its probabilities on the test reserve's images (labelled or not);
    ``held_out``: the rows of those with a test label, ``held_y`` their classes; ``recent_probs`` /
    ``recent_y``: first-sight probabilities and classes of the latest training labels (the latest half:
    ``FirstSight.for_estimate``). None when there is neither a held-out nor a recent label."""
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
    # First sights are of older models on hard images: together they weigh as RECENT_TOTAL_WEIGHT
    # held-out labels at most, however many there are (more of them steady the fit, not tilt it).
    weights = np.concatenate([np.ones(k), min(RECENT_WEIGHT, RECENT_TOTAL_WEIGHT / max(r, 1)) * np.ones(r)])
    losses, means = _temperature_table(fit_logp, fit_y, L)
    best = int(np.argmin(losses @ weights))
    T = float(TEMPERATURES[best])
    g = calibrated_confidence(L, T)
    est = float(g.mean())
    if k >= 2:
        # The estimate's noise: the reserve's sample and the fitted temperature's (a bootstrap).
        boot = _bootstrap_sd(losses, means, weights, (np.arange(k), k + np.arange(r)), BOOTSTRAP)
        sd = math.sqrt(g.var() / len(g) + boot**2)
        # Held-out labels that disagree with the calibrated confidence beyond their own noise (with a
        # binomial floor: fifteen right answers out of fifteen prove no 100%) rectify it (PPI).
        residual = (P[held_out].argmax(1) == held_y) - g[held_out]
        hits = (P[held_out].argmax(1) == held_y).sum()
        floor = (hits + 2) / (k + 4) * (1 - (hits + 2) / (k + 4))
        bias, bias_se = float(residual.mean()), math.sqrt(max(residual.var(ddof=1), floor) / k)
        if abs(bias) > Z * bias_se:
            est = min(1.0, max(0.0, est + bias))
    else:
        sd = 0.5
    # Plus-four floor over the labels it rests on (the reserve's unlabelled images tell the confidence,
    # not whether it is right): never a zero-width band at 100%, nor a band of +-0.01 from three test
    # labels and a confident model.
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
