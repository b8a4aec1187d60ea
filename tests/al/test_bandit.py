"""The EXP3 bandit: an adaptive strategy drawing arms and credited per arm. Pure numpy."""

import numpy as np
import pytest

from oal_widget.al import STRATEGIES, get_strategy
from oal_widget.al.adaptive import AdaptiveStrategy, Arm
from oal_widget.al.bandit import Exp3Strategy


def test_bandit_is_an_adaptive_strategy_and_each_session_gets_a_fresh_one():
    bandit = get_strategy("bandit")
    assert isinstance(bandit, AdaptiveStrategy) and isinstance(bandit, Exp3Strategy)
    assert bandit is not STRATEGIES["bandit"] and bandit is not get_strategy("bandit")


def test_bandit_learns_which_arm_brings_accuracy():
    bandit = get_strategy("bandit")
    rng = np.random.default_rng(0)
    for _ in range(300):
        arm = bandit.choose(rng)
        bandit.reward(arm, 0.05 if arm.name == "margin" else -0.02)
    p = dict(zip(bandit.arms, bandit.probabilities(), strict=True))
    assert p["margin"] > 0.8
    assert min(p.values()) >= bandit.gamma / len(bandit.arms) - 1e-12  # every arm keeps being tried


def test_bandit_rewards_are_bounded_and_validated():
    bandit = Exp3Strategy(arms=("margin", "random"), gamma=0.5, scale=0.05)
    arm = bandit.choose(np.random.default_rng(0))
    assert isinstance(arm, Arm) and callable(arm.strategy) and 0 < arm.probability <= 1
    assert bandit.reward(arm, 1.0) == 1.0
    assert bandit.reward(arm, -1.0) == 0.0
    assert bandit.reward(arm, float("nan")) is None
    with pytest.raises(ValueError, match="arms"):
        Exp3Strategy(arms=("bandit",))
    with pytest.raises(ValueError, match="strategy"):
        Exp3Strategy(arms=("nope",))


def test_two_draws_before_one_reward_credit_both_arms():
    """A query every 5 labels and an evaluation every 10 draw twice per reward: neither draw is lost."""
    bandit = Exp3Strategy(arms=("margin", "random"), gamma=0.5, scale=0.05)
    rng = np.random.default_rng(1)
    first, second = bandit.choose(rng), bandit.choose(rng)
    bandit.reward(first, 0.05)
    bandit.reward(second, 0.05)
    assert [name for name, _ in bandit.rewards] == [first.name, second.name]
