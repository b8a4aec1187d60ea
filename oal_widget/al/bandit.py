"""An EXP3 bandit that learns, from measured accuracy gains, which query strategy to use.

Pure numpy; knows nothing of TensorFlow or widgets. The trainer draws an ``Arm`` before each query
(``choose``) and credits that arm with the accuracy gain measured, on the same evaluation images, after
the labels that query ordered (``reward``). Which strategy works best changes during a session
(random early, uncertainty later); EXP3 (Auer et al. 2002) makes no assumption that the rewards stay
the same, and its exploration floor ``gamma`` keeps trying every arm.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from .adaptive import AdaptiveStrategy, Arm

#: Strategies the default bandit chooses between.
DEFAULT_ARMS = ("margin", "bald", "random")


class Exp3Strategy(AdaptiveStrategy):
    """EXP3 over several strategies (default margin, BALD, random): learns from accuracy gains which to use.

    Stateful: each call (or ``choose``) draws one of ``arms``; ``reward`` updates it. Helps when you do
    not know which strategy suits your images: it shifts towards the one whose batches raised test
    accuracy most. It needs many queries to learn (tens), so on a short session it behaves like a
    mixture of its arms (on digits, 300 labels, it lost to plain margin: see the README). Rewards
    are accuracy gains mapped to [0, 1] by ``0.5 + gain / (2 * scale)`` (``scale`` or more: full reward).

    Args:
        arms: strategy names from ``registry.STRATEGIES`` (not ``"bandit"``) or callables.
        gamma: exploration share in (0, 1]: every arm keeps at least ``gamma / len(arms)`` probability.
        scale: accuracy gain that earns the full reward.
    """

    __name__ = "bandit"
    __qualname__ = "bandit"

    def __init__(self, arms: Sequence = DEFAULT_ARMS, gamma: float = 0.2, scale: float = 0.05):
        from .registry import get_strategy

        arms = tuple(arms)
        if len(arms) < 1 or any(a == "bandit" for a in arms):
            raise ValueError(
                f"bandit arms={arms!r} are invalid: expected one or more strategies, not 'bandit'"
            )
        self._fns = [get_strategy(a) for a in arms]  # ValueError names a bad arm
        if not (isinstance(gamma, numbers.Real) and 0 < gamma <= 1):
            raise ValueError(f"bandit gamma={gamma!r} is invalid: expected a number in (0, 1]")
        if not (isinstance(scale, numbers.Real) and scale > 0):
            raise ValueError(f"bandit scale={scale!r} is invalid: expected an accuracy gain > 0, e.g. 0.05")
        self.arms = arms
        self.gamma = float(gamma)
        self.scale = float(scale)
        self.log_weights = np.zeros(len(arms))
        #: (arm name, reward) of every update, for inspection and tests.
        self.rewards: list[tuple[str, float]] = []

    def fresh(self) -> Exp3Strategy:
        """The same bandit with no experience (``get_strategy("bandit")`` hands out one per session)."""
        return Exp3Strategy(self.arms, self.gamma, self.scale)

    def probabilities(self) -> np.ndarray:
        """The current probability of drawing each arm."""
        w = np.exp(self.log_weights - self.log_weights.max())
        return (1 - self.gamma) * w / w.sum() + self.gamma / len(self.arms)

    def choose(self, rng: np.random.Generator | None = None) -> Arm:
        """Draw an arm: its strategy is ``arm.strategy``; pass the arm to ``reward`` later."""
        rng = np.random.default_rng() if rng is None else rng
        p = self.probabilities()
        index = int(rng.choice(len(self.arms), p=p))
        arm = self.arms[index]
        name = arm if isinstance(arm, str) else getattr(arm, "__name__", repr(arm))
        return Arm(index=index, name=name, strategy=self._fns[index], probability=float(p[index]))

    def reward(self, arm: Arm, gain: float) -> float | None:
        """Credit ``arm`` with an accuracy ``gain``; the reward in [0, 1] (None: not a finite gain)."""
        if not isinstance(gain, numbers.Real) or not math.isfinite(gain):
            return None
        r = min(1.0, max(0.0, 0.5 + float(gain) / (2 * self.scale)))
        # Importance weighting: an arm drawn rarely gets a larger update, so estimates stay unbiased.
        self.log_weights[arm.index] += self.gamma * (r / arm.probability) / len(self.arms)
        self.rewards.append((arm.name, r))
        return r

    def __call__(self, probs, rng: np.random.Generator | None = None, **inputs) -> np.ndarray:
        """Score with a freshly drawn arm (for ``rank()``); the trainer calls ``choose`` itself instead."""
        from .rank import accepts

        fn = self.choose(rng).strategy
        kwargs = {"rng": rng, **inputs}
        return fn(probs, **{k: v for k, v in kwargs.items() if v is not None and accepts(fn, k)})

    def __repr__(self) -> str:
        return f"Exp3Strategy(arms={self.arms!r}, gamma={self.gamma:g}, scale={self.scale:g})"
