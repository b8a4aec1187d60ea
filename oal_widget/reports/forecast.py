"""How many more labels the learning curve suggests: an inverse power law fit with bootstrap uncertainty.

Learning curves of classifiers are well described by ``y(n) = a + b * n**(-c)`` (accuracy rises
towards ``a`` with ``b < 0``; loss falls towards ``a`` with ``b > 0``). For each ``c`` on a grid the
best ``a, b`` are a linear least-squares problem, so the fit is plain numpy and cannot fail to
converge. Resampling the evaluations (bootstrap) and refitting gives the spread of the answer; a
resample whose asymptote never reaches the target counts as "not reachable".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Exponents tried for ``c``; learning curves sit between a slow 0.05 and a fast 2.
C_GRID = np.geomspace(0.05, 2.0, 40)
#: Fewer evaluations than this give no forecast: three parameters need more points than that.
MIN_POINTS = 4


@dataclass(frozen=True)
class Forecast:
    """The answer for one metric and target. ``None`` fields: not known (see ``message``)."""

    metric: str
    target: float | None
    n_labels: int  # training labels at the last evaluation
    current: float  # the metric at the last evaluation
    asymptote: float  # where the fitted curve levels off
    asymptote_low: float
    asymptote_high: float
    needed: float | None = None  # training labels in total to reach the target (median); inf: never
    needed_low: float | None = None  # 10th percentile of the bootstrap
    needed_high: float | None = None  # 90th percentile (inf when > 10% of resamples never reach it)
    p_reachable: float | None = None  # share of resamples whose curve reaches the target
    reached: bool = False
    message: str = ""

    @property
    def more(self) -> float | None:
        """Labels still to give (median), 0 when reached, inf when the curve never gets there."""
        if self.needed is None:
            return None
        return max(0.0, self.needed - self.n_labels)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"more": self.more}


def fit_curve(n, y) -> tuple[float, float, float, float]:
    """Least-squares ``(a, b, c, sse)`` of ``y = a + b * n**(-c)`` over ``C_GRID``."""
    n = np.asarray(n, dtype="float64")
    y = np.asarray(y, dtype="float64")
    best = (float(np.mean(y)), 0.0, 1.0, float(np.sum((y - np.mean(y)) ** 2)))
    for c in C_GRID:
        basis = np.stack([np.ones_like(n), n ** (-c)], axis=1)
        coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
        sse = float(np.sum((basis @ coef - y) ** 2))
        if sse < best[3] - 1e-15:
            best = (float(coef[0]), float(coef[1]), float(c), sse)
    return best


def labels_needed(a: float, b: float, c: float, target: float) -> float:
    """Smallest ``n`` with ``a + b * n**(-c)`` at the target; inf when the curve never gets there."""
    if b == 0:
        return math.inf
    ratio = (target - a) / b  # = n**(-c), must be positive (target on the curve's side of a)
    if ratio <= 0:
        return math.inf
    return float(ratio ** (-1.0 / c))


def standing_curve(history: Iterable[Mapping]) -> list[Mapping]:
    """The evaluations on the way to the labels that stand now, oldest first, with ``n_labels`` rising.

    An evaluation at more labels than a later one was made before labels were undone (a grid page, a
    review fix): that branch no longer leads anywhere, and drawn it would make the curve double back.
    At a repeated count (a continued session evaluates again) the later evaluation stands.
    """
    kept: list[Mapping] = []
    for row in reversed([r for r in history if r.get("n_labels", 0) > 0]):
        if not kept or row["n_labels"] < kept[-1]["n_labels"]:
            kept.append(row)
    return kept[::-1]


def forecast(
    history: Iterable[Mapping],
    metric: str = "accuracy",
    target: float | None = None,
    *,
    bootstrap: int = 200,
    seed: int = 0,
) -> Forecast | None:
    """Fit the curve so far (``history`` rows with ``n_labels`` and ``metric``); None with too few points.

    ``target`` is the early-stopping bound (accuracy: upper, loss: lower). Without one, only the
    asymptote (where the curve levels off) is estimated.
    """
    rows = [r for r in standing_curve(history) if math.isfinite(float(r.get(metric, math.nan)))]
    if len(rows) < MIN_POINTS:
        return None
    # The standing curve has one evaluation per count, counts rising.
    n = np.array([r["n_labels"] for r in rows], dtype="float64")
    y = np.array([float(r[metric]) for r in rows])
    rising = metric != "loss"
    a, b, c, _ = fit_curve(n, y)
    rng = np.random.default_rng(seed)
    asymptotes, needs = [], []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(n), len(n))
        if len(np.unique(n[idx])) < 3:
            continue  # too few distinct points to say anything about the shape
        ab, bb, cb, _ = fit_curve(n[idx], y[idx])
        asymptotes.append(_clip(ab, metric))
        if target is not None:
            needs.append(labels_needed(ab, bb, cb, target))
    current = float(y[-1])
    low, high = np.percentile(asymptotes, [10, 90]) if asymptotes else (a, a)
    kwargs: dict[str, Any] = dict(
        metric=metric,
        target=target,
        n_labels=int(n[-1]),
        current=current,
        asymptote=_clip(a, metric),
        asymptote_low=float(low),
        asymptote_high=float(high),
    )
    if target is None:
        return Forecast(**kwargs, message=f"{metric} levels off near {_clip(a, metric):.3g}")
    reached = current >= target if rising else current <= target
    if reached:
        return Forecast(
            **kwargs, needed=float(n[-1]), needed_low=float(n[-1]), needed_high=float(n[-1]),
            p_reachable=1.0, reached=True, message=f"{metric} {current:.3g} already reached {target}",
        )  # fmt: skip
    needs_arr = np.array(needs) if needs else np.array([labels_needed(a, b, c, target)])
    finite = np.isfinite(needs_arr)
    p = float(np.mean(finite))
    median, q10, q90 = (float(v) for v in np.percentile(needs_arr, [50, 10, 90], method="inverted_cdf"))
    # A fit may say the target was already passed (n below the current count): it is not, so clamp.
    median, q10, q90 = (max(v, float(n[-1])) for v in (median, q10, q90))
    return Forecast(
        **kwargs, needed=median, needed_low=q10, needed_high=q90, p_reachable=p, reached=False,
        message=_describe(metric, target, int(n[-1]), median, q10, q90, p),
    )  # fmt: skip


def _clip(a: float, metric: str) -> float:
    return float(min(max(a, 0.0), 1.0)) if metric == "accuracy" else float(max(a, 0.0))


def _describe(metric, target, n_now, median, q10, q90, p) -> str:
    if not math.isfinite(median):
        return (
            f"the curve so far levels off before {metric} {target} "
            f"(reached in {p:.0%} of resamples): more labels alone may not get there"
        )
    more = round(median - n_now)
    span = f"{round(q10 - n_now)}–" + ("?" if not math.isfinite(q90) else f"{round(q90 - n_now)}")
    return (
        f"≈ {more} more labels to reach {metric} {target} "
        f"(80% range {span}, reachable in {p:.0%} of resamples)"
    )


def target_of(early_stopping: Mapping, metric: str = "accuracy") -> float | None:
    """The bound of ``metric`` that stops the session: accuracy's upper, loss's lower; None if unset."""
    band = early_stopping.get(metric)
    if band is None:
        return None
    lower, upper = band
    return upper if metric == "accuracy" else lower
