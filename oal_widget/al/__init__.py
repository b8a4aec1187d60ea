"""Active learning: probabilities -> scores -> an order of the images to ask about.

Three thin layers, as in modAL: ``scores`` (probs -> scores), ``policies`` (scores -> order),
``diversity`` (re-choose the head of the order); ``rank`` glues them and always returns a permutation;
``registry`` holds the one list of names; ``bandit`` is the adaptive strategy (``adaptive``).
Pure numpy; knows nothing of widgets or TensorFlow.
"""

from .rank import RankingWarning, accepts, display_scores, needs_mc_samples, rank, rank_and_explored
from .registry import (
    DIVERSITY_NAMES,
    POLICIES,
    POLICY_NAMES,
    STRATEGIES,
    STRATEGY_NAMES,
    get_policy,
    get_strategy,
)

__all__ = [
    "DIVERSITY_NAMES",
    "POLICIES",
    "POLICY_NAMES",
    "STRATEGIES",
    "STRATEGY_NAMES",
    "RankingWarning",
    "accepts",
    "display_scores",
    "get_policy",
    "get_strategy",
    "needs_mc_samples",
    "rank",
    "rank_and_explored",
]
