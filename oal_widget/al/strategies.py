"""Active-learning query strategies: class probabilities -> scores -> an order of candidates.

Pure numpy; knows nothing of TensorFlow or widgets.

* A **strategy** maps ``probs`` (n, k), one probability row per unlabelled image, to ``scores`` (n,):
  higher means "ask the person sooner". A strategy that also accepts an ``rng`` keyword (like
  ``random_scores``) is given ``rank()``'s generator, so sessions with the same seed are repeatable.
* A **policy** maps ``(scores, rng)`` to an order: a permutation of ``range(n)``. ``greedy`` exploits
  the scores; ``epsilon_greedy`` mixes in random images so the model also sees what it is sure about
  (it may be confidently wrong there).
* Extra inputs: ``bald`` takes ``mc_probs`` (Monte-Carlo dropout passes); ``kcenter`` diversity takes the
  model's penultimate-layer ``embeddings``; the ``bandit`` strategy (``bandit.py``) learns from accuracy
  gains which strategy to use. The trainer computes these only for strategies that ask for them.
* ``rank()`` glues them together and ALWAYS returns a permutation of its candidates, even when a
  user's callable misbehaves (pitfall 4 of the original: images duplicated and dropped).
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Callable, Sequence

import numpy as np

Strategy = Callable[[np.ndarray], np.ndarray]
Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# Guards p2 / p1 against a zero top probability (impossible for a real distribution).
_EPS = 1e-12


class RankingWarning(UserWarning):
    """A strategy or policy returned something unusable; ``rank()`` repaired it."""


# --- input checks ---------------------------------------------------------------------------
def _check_probs(probs) -> np.ndarray:
    """``probs`` as a float64 (n, k) array with k >= 1; n may be 0. ValueError names ``probs``."""
    try:
        arr = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"probs must be a numeric array of shape (n, k), one row per image: {e}") from None
    if arr.ndim == 1 and arr.size == 0:  # `[]`: no candidates at all
        arr = arr.reshape(0, 1)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(
            f"probs must have shape (n, k) with one row of k >= 1 class probabilities per image, "
            f"got shape {arr.shape}"
        )
    return arr


def _top_two(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest and second-largest probability of each row (second is 0 when k == 1)."""
    if probs.shape[1] == 1:
        return probs[:, 0], np.zeros(len(probs))
    # partition puts the two LARGEST last; the original took the two smallest (pitfall 5).
    part = np.partition(probs, probs.shape[1] - 2, axis=1)
    return part[:, -1], part[:, -2]


# --- strategies: probs (n, k) -> scores (n,), higher = ask sooner ----------------------------
def least_confidence(probs) -> np.ndarray:
    """``1 - max p``: how unsure the model is of its best guess.

    Helps when few classes are roughly balanced; with many classes it ignores how the remaining
    probability is spread, so ``margin`` usually ranks better.
    """
    p = _check_probs(probs)
    if len(p) == 0:
        return np.zeros(0)
    return 1.0 - p.max(axis=1)


def margin(probs) -> np.ndarray:
    """``1 - (p1 - p2)`` with p1, p2 the two LARGEST probabilities: near 1 when two classes compete.

    The usual best uncertainty score on MNIST-like data (digits, letters): it asks about the images
    on the boundary between two classes. With a single class there is no second: score ``1 - p1``.
    """
    p = _check_probs(probs)
    p1, p2 = _top_two(p)
    return 1.0 - (p1 - p2)


def ratio(probs) -> np.ndarray:
    """``p2 / p1`` of the two largest probabilities: 1 when they tie, 0 when the model is sure.

    Ranks like ``margin`` but is relative: it still separates rows when both top probabilities
    are small (many classes), where margin's differences shrink.
    """
    p = _check_probs(probs)
    p1, p2 = _top_two(p)
    return p2 / np.maximum(p1, _EPS)


def entropy(probs) -> np.ndarray:
    """Shannon entropy ``-sum p log p`` (with ``0 log 0 = 0``): uncertainty over ALL classes.

    Helps with few classes; with many it can over-ask ambiguous or outlier images (noise, blanks)
    whose probability is spread thinly everywhere, which a person cannot label usefully anyway.
    """
    p = _check_probs(probs)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=1)


def random_scores(probs, rng: np.random.Generator | None = None) -> np.ndarray:
    """Uniform random scores in [0, 1), ignoring the probabilities.

    The baseline every strategy must beat, and the exploration part of ``epsilon_greedy``. ``rank()``
    passes its own ``rng`` here, so a seeded session draws the same order every time.
    """
    p = _check_probs(probs)
    rng = np.random.default_rng() if rng is None else rng
    return rng.random(len(p))


def bald(probs, mc_probs=None) -> np.ndarray:
    """BALD (Houlsby et al. 2011, Gal et al. 2017): mutual information between the label and the weights,
    ``H[mean_t p_t] - mean_t H[p_t]`` over ``mc_probs`` (T, n, k), T Monte-Carlo dropout passes.

    Helps when the model has dropout and the pool holds ambiguous images: it asks where the passes
    DISAGREE (the model could learn something), not where every pass is unsure (noise, blanks). The
    trainer supplies ``mc_probs`` (``Config.mc_samples`` passes with dropout on). Without them (a model
    without dropout) only the first term is left: the entropy of ``probs``.
    """
    p = _check_probs(probs)
    if mc_probs is None:
        return entropy(p)
    mc = np.asarray(mc_probs, dtype=np.float64)
    if mc.ndim != 3 or mc.shape[1:] != p.shape:
        raise ValueError(
            f"mc_probs must have shape (T, n, k) = (passes, {p.shape[0]}, {p.shape[1]}) to match probs, "
            f"got shape {mc.shape}"
        )
    if mc.shape[0] == 0:
        return entropy(p)
    return np.maximum(entropy(mc.mean(axis=0)) - np.mean([entropy(t) for t in mc], axis=0), 0.0)


STRATEGIES: dict[str, Strategy] = {
    "margin": margin,
    "least_confidence": least_confidence,
    "ratio": ratio,
    "entropy": entropy,
    "random": random_scores,
    "bald": bald,
}


# --- policies: (scores, rng) -> order of indices ---------------------------------------------
def greedy(scores, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices by descending score; NaN scores last; ties in random order.

    Pure exploitation. Ties are broken by ``rng``, not by position: positions follow file names, and
    an untrained model gives every image the same score.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng() if rng is None else rng
    nan = np.isnan(s)
    tiebreak = rng.random(len(s))
    # lexsort: the LAST key is the primary one -> NaN flag, then -score, then the random tie-break.
    return np.lexsort((tiebreak, -np.where(nan, 0.0, s), nan)).astype(np.intp)


def epsilon_greedy(epsilon: float = 0.1) -> Policy:
    """A policy that fills each position of the order, with probability ``epsilon``, by a uniformly
    random image not used yet, else by the best-scored image not used yet.

    Exploration keeps the model from only ever seeing its own boundary cases (it may be confidently
    wrong elsewhere). Every index is used exactly once, so nothing is duplicated or dropped.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not 0 <= epsilon <= 1:
        raise ValueError(f"setting epsilon={epsilon!r} is invalid: expected a number in [0, 1]")
    epsilon = float(epsilon)

    def policy(scores, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = np.random.default_rng() if rng is None else rng
        ranked = greedy(scores, rng).tolist()
        n = len(ranked)
        explore = (rng.random(n) < epsilon).tolist()
        # Exploration takes the next unused image of a uniform random permutation: given what is used so
        # far, that is a uniform pick among the unused ones. Plain lists: this loop runs once per image
        # (100,000 in a large pool's query), and numpy scalar indexing would cost several times more.
        shuffled = rng.permutation(n).tolist()
        used = bytearray(n)
        order = []
        best = pick = 0  # next positions in `ranked` / `shuffled` that may still be unused
        for e in explore:
            if e:
                while used[shuffled[pick]]:
                    pick += 1
                idx = shuffled[pick]
            else:
                while used[ranked[best]]:
                    best += 1
                idx = ranked[best]
            used[idx] = 1
            order.append(idx)
        return np.array(order, dtype=np.intp)

    policy.__name__ = policy.__qualname__ = f"epsilon_greedy({epsilon:g})"
    return policy


def _greedy_factory(epsilon: float = 0.1) -> Policy:
    """``greedy`` ignores epsilon; the factory keeps ``POLICIES`` uniform."""
    return greedy


def _check_temperature(temperature) -> float:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not (0 < temperature < float("inf"))
    ):
        raise ValueError(f"setting temperature={temperature!r} is invalid: expected a number > 0, e.g. 1.0")
    return float(temperature)


def _gumbel_order(keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sampling without replacement, weights ``exp(keys)`` (Gumbel-top-k); -inf keys at random, NaN last."""
    nan = np.isnan(keys)
    noisy = np.where(nan, 0.0, keys) + rng.gumbel(size=len(keys))
    tiebreak = rng.random(len(keys))  # orders the -inf keys among themselves
    return np.lexsort((tiebreak, -noisy, nan)).astype(np.intp)


def power(temperature: float = 1.0) -> Policy:
    """A policy that draws the order with probability proportional to ``score ** (1 / temperature)``.

    Stochastic batch acquisition (Kirsch et al. 2022): a batch of top scores is often redundant (ten
    near-identical boundary images); drawing in proportion to the score keeps most of the picks on
    uncertain images but spreads them out, at no extra cost. Scores must be >= 0 (all the built-in ones
    are); zero scores come after every positive one. Lower temperature = closer to greedy.
    """
    beta = 1.0 / _check_temperature(temperature)

    def policy(scores, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = np.random.default_rng() if rng is None else rng
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            keys = np.where(s > 0, beta * np.log(np.where(s > 0, s, 1.0)), -np.inf)
        keys[np.isnan(s)] = np.nan
        return _gumbel_order(keys, rng)

    policy.__name__ = policy.__qualname__ = f"power({temperature:g})"
    return policy


def softmax(temperature: float = 1.0) -> Policy:
    """A policy that draws the order with probability proportional to ``exp(score / temperature)``.

    Like ``power`` but for scores of any sign; with scores in [0, 1] (margin, least_confidence) a
    temperature of about 0.05-0.1 is needed, at 1.0 the order is almost random.
    """
    beta = 1.0 / _check_temperature(temperature)

    def policy(scores, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = np.random.default_rng() if rng is None else rng
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        return _gumbel_order(np.where(np.isinf(s), np.sign(s) * 1e300, s) * beta, rng)

    policy.__name__ = policy.__qualname__ = f"softmax({temperature:g})"
    return policy


POLICIES: dict[str, Callable[..., Policy]] = {
    "greedy": _greedy_factory,
    "epsilon_greedy": epsilon_greedy,
    "power": power,
    "softmax": softmax,
}
#: Which setting each named policy is built from.
_POLICY_PARAMETER = {
    "greedy": "epsilon",
    "epsilon_greedy": "epsilon",
    "power": "temperature",
    "softmax": "temperature",
}


# --- diversity: spread the next batch over the embedding space --------------------------------
DIVERSITY_NAMES = ("none", "kcenter")
#: k-center greedy looks at this many times the batch size of the best-ranked candidates.
KCENTER_TOP = 10


def kcenter(order, embeddings, batch: int, top: int | None = None) -> np.ndarray:
    """The order with its first ``batch`` positions re-chosen by k-center greedy among its ``top`` first.

    Core-set style (Sener & Savarese 2018) on the model's penultimate-layer ``embeddings`` (n, d), one row
    per candidate index, restricted to the most useful candidates: the first pick is the best-ranked one,
    each next pick the top candidate farthest from every pick so far. Helps when the person labels a
    batch before the next query, so the ranking cannot react: the batch covers several confusions instead
    of ten copies of one. Always a permutation of ``order``.
    """
    order = np.asarray(order, dtype=np.intp)
    emb = np.asarray(embeddings, dtype=np.float64)
    n = len(order)
    if emb.ndim != 2 or len(emb) != n:
        raise ValueError(f"embeddings must have shape (n, d) with n = {n} candidates, got shape {emb.shape}")
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
        raise ValueError(f"batch={batch!r} is invalid: expected a whole number >= 1")
    top = min(n, KCENTER_TOP * int(batch) if top is None else int(top))
    if n <= 1 or batch <= 1 or top <= batch:
        return order
    head = order[:top]
    points = np.nan_to_num(emb[head])
    picked = [0]
    dist = np.sum((points - points[0]) ** 2, axis=1)
    for _ in range(int(batch) - 1):
        dist[picked] = -1.0
        nxt = int(np.argmax(dist))
        picked.append(nxt)
        dist = np.minimum(dist, np.sum((points - points[nxt]) ** 2, axis=1))
    chosen = np.zeros(top, dtype=bool)
    chosen[picked] = True
    return np.concatenate([head[picked], head[~chosen], order[top:]]).astype(np.intp)


# --- lookup ---------------------------------------------------------------------------------
def get_strategy(name_or_callable) -> Strategy:
    """The strategy registered under a name in ``STRATEGIES``, or the user's callable as is."""
    if isinstance(name_or_callable, str) and name_or_callable in STRATEGIES:
        registered = STRATEGIES[name_or_callable]
        # Stateful strategies (the bandit) are templates: each caller gets its own fresh state.
        return registered.fresh() if hasattr(registered, "fresh") else registered
    if callable(name_or_callable):
        return name_or_callable
    raise ValueError(
        f"setting strategy={name_or_callable!r} is invalid: expected one of {', '.join(STRATEGIES)} "
        f"or a callable probs (n, k) -> scores (n,)"
    )


def get_policy(name_or_callable, epsilon: float = 0.1, temperature: float = 1.0) -> Policy:
    """The policy registered under a name in ``POLICIES`` (built with ``epsilon`` or ``temperature``),
    or the callable."""
    if isinstance(name_or_callable, str) and name_or_callable in POLICIES:
        parameter = _POLICY_PARAMETER.get(name_or_callable, "epsilon")
        value = temperature if parameter == "temperature" else epsilon
        return POLICIES[name_or_callable](value)
    if callable(name_or_callable):
        return name_or_callable
    raise ValueError(
        f"setting policy={name_or_callable!r} is invalid: expected one of {', '.join(POLICIES)} "
        f"or a callable (scores, rng) -> order of indices"
    )


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def accepts(fn, keyword: str) -> bool:
    """Whether ``fn`` takes ``keyword`` (e.g. ``"mc_probs"``, ``"embeddings"``, ``"rng"``) or ``**kwargs``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _accepts_rng(fn) -> bool:
    return accepts(fn, "rng")


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
) -> list:
    """The candidates in the order to ask about them, most useful first.

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
    p = _check_probs(probs)
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
        return candidates

    problems: list[str] = []
    scores = _scores(strategy_fn, p, rng, problems, {"mc_probs": mc_probs, "embeddings": embeddings})
    if problems:
        _warn(strategy_fn, "strategy", problems)
    problems = []
    order = _repair(policy_fn(scores, rng), scores, rng, problems)
    if problems:
        _warn(policy_fn, "policy", problems)
    if diversity == "kcenter":
        order = kcenter(order, embeddings, batch)
    return [candidates[i] for i in order]


def _warn(fn, setting: str, problems: list[str]) -> None:
    warnings.warn(
        f"{setting} {_name(fn)} {'; '.join(problems)}: the order was repaired so every image is "
        f"still asked exactly once",
        RankingWarning,
        stacklevel=3,
    )


def display_scores(probs, strategy="margin", rng=None) -> list[float]:
    """Scores as plain Python floats (JSON-safe, unlike numpy float32: pitfall 6), e.g. to show them."""
    strategy_fn = get_strategy(strategy)
    p = _check_probs(probs)
    problems: list[str] = []
    scores = _scores(strategy_fn, p, _as_rng(rng), problems)
    return [float(s) for s in scores]


def _register_bandit() -> None:
    from .bandit import Exp3Strategy  # bandit.py resolves its arms through this module

    STRATEGIES["bandit"] = Exp3Strategy()


_register_bandit()
