"""``rank()``: candidates + their probabilities -> the order to ask about them, ALWAYS a permutation.

Glue of the three layers (scores, policies, diversity) with the repairs that keep a user's callable
from duplicating or dropping images (the original framework mixed lists position by position).
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Sequence

import numpy as np

from .diversity import kcenter
from .policies import ExploringPolicy, greedy
from .registry import DIVERSITY_NAMES, get_policy, get_strategy
from .scores import check_probs, random_scores


class RankingWarning(UserWarning):
    """A strategy or policy returned something unusable; ``rank()`` repaired it."""


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def accepts(fn, keyword: str) -> bool:
    """Whether ``fn`` takes ``keyword`` (e.g. ``"mc_probs"``, ``"embeddings"``, ``"rng"``) or ``**kwargs``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def needs_mc_samples(strategy) -> bool:
    """Whether a strategy wants Monte-Carlo dropout passes (``mc_probs``), so the caller computes them."""
    return bool(getattr(strategy, "needs_mc_samples", accepts(strategy, "mc_probs")))


def _as_rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng={rng!r} is invalid: expected None, a whole-number seed or a numpy Generator")


# --- scoring and ranking --------------------------------------------------------------------
def _scores(
    strategy, probs: np.ndarray, rng: np.random.Generator, problems: list[str], extra: dict | None = None
) -> np.ndarray:
    """Float64 scores of length n from any strategy; unusable output becomes NaN (noted in problems).

    ``extra`` inputs (``mc_probs``, ``embeddings``) given and not None go to strategies that accept them.
    """
    n = len(probs)
    kwargs = {"rng": rng, **{k: v for k, v in (extra or {}).items() if v is not None}}
    raw = strategy(probs, **{k: v for k, v in kwargs.items() if accepts(strategy, k)})
    try:
        scores = np.asarray(raw, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        problems.append(f"returned scores that are not numbers ({type(raw).__name__})")
        return np.full(n, np.nan)
    if scores.shape != (n,):
        problems.append(f"returned {scores.size} scores for {n} candidates")
        return np.full(n, np.nan)
    nans = int(np.isnan(scores).sum())
    if nans:
        problems.append(f"returned {nans} NaN score(s), ranked last")
    return scores


def _valid_index(item, n: int) -> int | None:
    """``item`` as an index in [0, n), or None. Booleans and fractions are not indices."""
    if isinstance(item, (bool, np.bool_)):
        return None
    if isinstance(item, numbers.Integral):
        value = int(item)
    elif isinstance(item, numbers.Real) and float(item).is_integer():
        value = int(item)
    else:
        return None
    return value if 0 <= value < n else None


def _repair(order, scores: np.ndarray, rng: np.random.Generator, problems: list[str]) -> np.ndarray:
    """A permutation of range(n): first occurrences of valid indices in ``order``, then the missing
    ones by descending score."""
    n = len(scores)
    arr = np.asarray(order) if isinstance(order, (np.ndarray, list, tuple)) else None
    if (
        arr is not None
        and arr.shape == (n,)
        and np.issubdtype(arr.dtype, np.integer)
        and (n == 0 or (arr.min() >= 0 and arr.max() < n and np.all(np.bincount(arr, minlength=n) == 1)))
    ):
        return arr.astype(np.intp)  # the common case: already a permutation

    try:
        items = list(order)
    except TypeError:
        problems.append(f"returned an order that is not a sequence ({type(order).__name__})")
        items = []
    seen = np.zeros(n, dtype=bool)
    kept = []
    bad = 0
    for item in items:
        idx = _valid_index(item, n)
        if idx is None or seen[idx]:
            bad += 1
            continue
        seen[idx] = True
        kept.append(idx)
    if bad:
        problems.append(f"returned {bad} duplicate, out-of-range or non-integer index(es)")
    missing = [i for i in greedy(scores, rng) if not seen[i]]
    if missing:
        problems.append(f"left out {len(missing)} of {n} candidates")
    return np.asarray(kept + missing, dtype=np.intp)


def rank(
    candidates: Sequence, probs, strategy="margin", policy="epsilon_greedy", rng=None, epsilon=0.1, **kw
) -> list:
    """The candidates in the order to ask about them, most useful first (``rank_and_explored``)."""
    return rank_and_explored(candidates, probs, strategy, policy, rng, epsilon, **kw)[0]


def rank_and_explored(
    candidates: Sequence,
    probs,
    strategy="margin",
    policy="epsilon_greedy",
    rng=None,
    epsilon: float = 0.1,
    *,
    temperature: float = 1.0,
    mc_probs=None,
    embeddings=None,
    diversity: str = "none",
    batch: int = 10,
) -> tuple[list, set]:
    """(the candidates in the order to ask about them, most useful first; those picked uniformly at
    random: all of them for the ``random`` strategy, the exploration picks of an ``ExploringPolicy``).

    ``candidates`` are any items (e.g. image paths), ``probs`` their (n, k) class probabilities.
    ``strategy``/``policy`` are names from ``STRATEGIES``/``POLICIES`` or callables; ``rng`` is a
    numpy Generator, a seed or None; ``epsilon`` is used by the named ``epsilon_greedy`` policy,
    ``temperature`` by ``power`` and ``softmax``. ``mc_probs`` (T, n, k) Monte-Carlo dropout passes and
    ``embeddings`` (n, d) go to strategies that accept them; ``diversity="kcenter"`` (needs
    ``embeddings``) re-chooses the first ``batch`` of the order with ``kcenter``.
    Always returns a permutation of ``candidates`` (the items themselves). A callable returning an
    unusable order or scores is repaired, with one ``RankingWarning`` naming it; NaN scores rank last.
    """
    candidates = list(candidates)
    p = check_probs(probs)
    if len(p) != len(candidates):
        raise ValueError(
            f"rank() got {len(candidates)} candidates but {len(p)} rows of probs: one row per candidate"
        )
    strategy_fn = get_strategy(strategy)
    policy_fn = get_policy(policy, epsilon, temperature)
    if diversity not in DIVERSITY_NAMES:
        raise ValueError(
            f"setting diversity={diversity!r} is invalid: expected one of {', '.join(DIVERSITY_NAMES)}"
        )
    if diversity == "kcenter" and embeddings is None:
        raise ValueError("diversity='kcenter' needs embeddings (n, d), one row per candidate")
    rng = _as_rng(rng)
    if len(candidates) <= 1:
        return candidates, set(candidates) if strategy_fn is random_scores else set()

    problems: list[str] = []
    scores = _scores(strategy_fn, p, rng, problems, {"mc_probs": mc_probs, "embeddings": embeddings})
    if problems:
        _warn(strategy_fn, "strategy", problems)
    problems = []
    explored = np.zeros(len(candidates), dtype=bool)  # by candidate index
    if isinstance(policy_fn, ExploringPolicy):
        raw, picks = policy_fn.order_and_explored(scores, rng)
        explored[np.asarray(raw)[picks]] = True
    else:
        raw = policy_fn(scores, rng)
    order = _repair(raw, scores, rng, problems)
    if problems:
        _warn(policy_fn, "policy", problems)
    if diversity == "kcenter":
        order = kcenter(order, embeddings, batch)
        explored[:] = False  # re-chosen by distance: no longer uniform picks
    if strategy_fn is random_scores and diversity == "none":
        explored[:] = True  # random scores: every pick is uniform among the candidates left
    return [candidates[i] for i in order], {candidates[i] for i in np.flatnonzero(explored)}


def _warn(fn, setting: str, problems: list[str]) -> None:
    warnings.warn(
        f"{setting} {_name(fn)} {'; '.join(problems)}: the order was repaired so every image is "
        f"still asked exactly once",
        RankingWarning,
        stacklevel=3,
    )


def display_scores(probs, strategy="margin", rng=None) -> list[float]:
    """Scores as plain Python floats (JSON-safe, unlike numpy float32), e.g. to show them."""
    strategy_fn = get_strategy(strategy)
    p = check_probs(probs)
    problems: list[str] = []
    scores = _scores(strategy_fn, p, _as_rng(rng), problems)
    return [float(s) for s in scores]
