"""Policies: ``(scores, rng)`` -> an order, a permutation of ``range(n)``.

``greedy`` exploits the scores; ``epsilon_greedy`` mixes in uniformly random images (the model also sees
what it is sure about, and those picks are an unbiased sample for evaluation); ``power`` and
``softmax`` draw the order in proportion to the scores (stochastic batch acquisition).
"""

from __future__ import annotations

import abc
import numbers
from collections.abc import Callable

import numpy as np

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


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


class ExploringPolicy(abc.ABC):
    """A policy that knows which of its picks were uniformly random among the candidates.

    Those picks are an unbiased sample of the unlabelled pool: predicted before their label arrives,
    they tell how accurate the model is without a single extra label (prequential evaluation).
    """

    __name__ = "exploring"

    def __call__(self, scores, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.order_and_explored(scores, rng)[0]

    @abc.abstractmethod
    def order_and_explored(self, scores, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """(order, explored): ``explored[i]`` is True when ``order[i]`` was a uniformly random pick."""


class EpsilonGreedy(ExploringPolicy):
    def __init__(self, epsilon: float):
        self.epsilon = epsilon
        self.__name__ = self.__qualname__ = f"epsilon_greedy({epsilon:g})"

    def order_and_explored(self, scores, rng=None) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng() if rng is None else rng
        ranked = greedy(scores, rng).tolist()
        n = len(ranked)
        explore = (rng.random(n) < self.epsilon).tolist()
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
        return np.array(order, dtype=np.intp), np.array(explore, dtype=bool)

    def __repr__(self) -> str:
        return self.__name__


def epsilon_greedy(epsilon: float = 0.1) -> Policy:
    """A policy that fills each position of the order, with probability ``epsilon``, by a uniformly
    random image not used yet, else by the best-scored image not used yet.

    Exploration keeps the model from only ever seeing its own boundary cases (it may be confidently
    wrong elsewhere), and its picks are a uniform sample for evaluation (``ExploringPolicy``). Every
    index is used exactly once, so nothing is duplicated or dropped.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not 0 <= epsilon <= 1:
        raise ValueError(f"setting epsilon={epsilon!r} is invalid: expected a number in [0, 1]")
    return EpsilonGreedy(float(epsilon))


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
