"""Policies: scores -> an order (greedy ties, epsilon-greedy's share, power and softmax). Pure numpy."""

import numpy as np
import pytest

from oal_widget.al import get_policy, rank
from oal_widget.al.policies import epsilon_greedy, greedy, power, softmax


def test_greedy_breaks_ties_randomly_not_by_position():
    scores = np.zeros(50)
    firsts = {int(greedy(scores, np.random.default_rng(seed))[0]) for seed in range(20)}
    assert len(firsts) > 5
    order = greedy(np.array([0.1, np.nan, 0.9, 0.5]), np.random.default_rng(0))
    assert order.tolist() == [2, 3, 0, 1]  # NaN last


def test_epsilon_zero_is_greedy_and_one_is_random():
    scores = np.arange(100, dtype=float)
    assert epsilon_greedy(0.0)(scores, np.random.default_rng(3)).tolist() == list(range(99, -1, -1))
    shuffled = epsilon_greedy(1.0)(scores, np.random.default_rng(3))
    assert sorted(shuffled.tolist()) == list(range(100))
    assert shuffled.tolist() != list(range(99, -1, -1))


def test_epsilon_greedy_mixes_a_share_of_random_picks():
    scores = np.arange(1000, dtype=float)
    order = epsilon_greedy(0.2)(scores, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(1000))
    # A greedy pick is the best unused index; count positions where that was not what happened.
    used = np.zeros(1000, dtype=bool)
    best = 999
    off_greedy = 0
    for idx in order:
        while used[best]:
            best -= 1
        off_greedy += idx != best
        used[idx] = True
    assert 120 < off_greedy < 280  # ~20% (a random pick may hit the best one by chance)


def test_epsilon_is_validated():
    for bad in (-0.1, 1.5, "0.1", None, True):
        with pytest.raises(ValueError, match="epsilon"):
            epsilon_greedy(bad)
    with pytest.raises(ValueError, match="epsilon"):
        rank(["a", "b"], np.full((2, 2), 0.5), policy="epsilon_greedy", epsilon=2)


def test_power_is_near_greedy_when_cold_and_spreads_when_warm():
    scores = np.linspace(0.01, 1.0, 100)
    top10 = set(range(90, 100))
    cold = power(0.0005)(scores, np.random.default_rng(0))
    assert set(cold[:10].tolist()) == top10
    warm_hits = [
        len(top10 & set(power(1.0)(scores, np.random.default_rng(s))[:10].tolist())) for s in range(50)
    ]
    assert 0 < np.mean(warm_hits) < 10  # high scores favoured, yet not always the same ten


def test_power_samples_in_proportion_to_the_score():
    scores = np.array([3.0, 1.0, 0.0])
    firsts = [power(1.0)(scores, np.random.default_rng(s))[0] for s in range(2000)]
    share = np.mean(np.array(firsts) == 0)
    assert 0.70 < share < 0.80  # 3 / (3 + 1) = 0.75; a zero score is never first
    assert 2 not in firsts


def test_softmax_temperature_and_nan_last():
    scores = np.array([0.2, np.nan, 0.9, 0.1])
    order = softmax(0.001)(scores, np.random.default_rng(1))
    assert order.tolist() == [2, 0, 3, 1]
    with pytest.raises(ValueError, match="temperature"):
        get_policy("power", temperature=0)
