"""One list of names for every strategy, policy and diversity option, and the look-ups by name.

``config.py`` validates settings against these names, the README's tables are generated from them,
and ``rank()`` resolves them here: adding a strategy is one entry.
"""

from __future__ import annotations

from .adaptive import AdaptiveStrategy
from .policies import Policy, epsilon_greedy, greedy, power, softmax
from .scores import Strategy, bald, entropy, least_confidence, margin, random_scores, ratio

#: name -> score function, or an ``AdaptiveStrategy`` template (the bandit, registered below).
STRATEGIES: dict[str, object] = {
    "margin": margin,
    "least_confidence": least_confidence,
    "ratio": ratio,
    "entropy": entropy,
    "random": random_scores,
    "bald": bald,
}
#: name -> (the function, the setting its factory is built from; None: the function IS the policy).
POLICIES: dict[str, tuple[object, str | None]] = {
    "greedy": (greedy, None),
    "epsilon_greedy": (epsilon_greedy, "epsilon"),
    "power": (power, "temperature"),
    "softmax": (softmax, "temperature"),
}
DIVERSITY_NAMES = ("none", "kcenter")


def get_strategy(name_or_callable) -> Strategy:
    """The strategy registered under a name (a fresh copy of an adaptive one), or the user's callable."""
    if isinstance(name_or_callable, str) and name_or_callable in STRATEGIES:
        registered = STRATEGIES[name_or_callable]
        # Adaptive strategies are templates: each caller gets its own fresh state.
        return registered.fresh() if isinstance(registered, AdaptiveStrategy) else registered
    if callable(name_or_callable):
        return name_or_callable
    raise ValueError(
        f"setting strategy={name_or_callable!r} is invalid: expected one of {', '.join(STRATEGIES)} "
        f"or a callable probs (n, k) -> scores (n,)"
    )


def get_policy(name_or_callable, epsilon: float = 0.1, temperature: float = 1.0) -> Policy:
    """The policy registered under a name (built with ``epsilon`` or ``temperature``), or the callable."""
    if isinstance(name_or_callable, str) and name_or_callable in POLICIES:
        fn, parameter = POLICIES[name_or_callable]
        if parameter is None:
            return fn
        return fn(temperature if parameter == "temperature" else epsilon)
    if callable(name_or_callable):
        return name_or_callable
    raise ValueError(
        f"setting policy={name_or_callable!r} is invalid: expected one of {', '.join(POLICIES)} "
        f"or a callable (scores, rng) -> order of indices"
    )


def _register_bandit() -> None:
    from .bandit import Exp3Strategy  # its arms are looked up here: registered last

    STRATEGIES["bandit"] = Exp3Strategy()


_register_bandit()
STRATEGY_NAMES = tuple(STRATEGIES)
POLICY_NAMES = tuple(POLICIES)
