"""Strategies, policies and rank(): pure numpy, no TensorFlow."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from oal_widget import config
from oal_widget.al.strategies import (
    POLICIES,
    STRATEGIES,
    RankingWarning,
    display_scores,
    entropy,
    epsilon_greedy,
    get_policy,
    get_strategy,
    greedy,
    least_confidence,
    margin,
    random_scores,
    rank,
    ratio,
)

# Row 0: sure. Row 1: two classes compete. Row 2: probability spread evenly over three classes.
HAND = np.array(
    [
        [0.90, 0.05, 0.05, 0.00],
        [0.45, 0.45, 0.10, 0.00],
        [0.30, 0.30, 0.30, 0.10],
    ]
)


def test_names_match_config():
    assert tuple(STRATEGIES) == config.STRATEGY_NAMES
    assert tuple(POLICIES) == config.POLICY_NAMES


def test_scores_on_a_hand_example():
    np.testing.assert_allclose(least_confidence(HAND), [0.10, 0.55, 0.70])
    np.testing.assert_allclose(margin(HAND), [1 - 0.85, 1.0, 1.0])
    np.testing.assert_allclose(ratio(HAND), [0.05 / 0.90, 1.0, 1.0])
    expected_entropy = [-sum(p * np.log(p) for p in row if p > 0) for row in HAND]
    np.testing.assert_allclose(entropy(HAND), expected_entropy)
    for fn in (least_confidence, margin, ratio, entropy):
        assert fn(HAND).dtype == np.float64


def test_margin_and_ratio_use_the_two_largest_probabilities():
    """Pitfall 5: on these rows the two smallest say the opposite of the two largest."""
    probs = np.array(
        [
            [0.50, 0.48, 0.01, 0.01],  # top two compete, bottom two tie   -> ask first
            [0.90, 0.06, 0.04, 0.00],  # model is sure, bottom two far apart -> ask last
        ]
    )
    assert margin(probs)[0] > margin(probs)[1]
    assert ratio(probs)[0] > ratio(probs)[1]
    np.testing.assert_allclose(margin(probs), [1 - 0.02, 1 - 0.84])
    rng = np.random.default_rng(0)
    assert rank(["compete", "sure"], probs, "margin", "greedy", rng) == ["compete", "sure"]
    assert rank(["sure", "compete"], probs[::-1], "ratio", "greedy", rng) == ["compete", "sure"]


def test_strategies_can_disagree():
    """least_confidence prefers the spread row, margin sees the spread and the two-way tie as equal."""
    probs = np.array([[0.45, 0.45, 0.10], [0.34, 0.33, 0.33]])
    assert least_confidence(probs)[1] > least_confidence(probs)[0]
    assert margin(probs)[0] > margin(probs)[1]
    assert entropy(probs)[1] > entropy(probs)[0]


@pytest.mark.parametrize("name", ["margin", "least_confidence", "ratio", "entropy"])
def test_known_order_for_each_score(name):
    probs = np.array([[1.0, 0.0, 0.0], [0.4, 0.35, 0.25], [0.7, 0.2, 0.1]])
    order = rank(["sure", "unsure", "middle"], probs, name, "greedy", rng=1)
    assert order == ["unsure", "middle", "sure"]


def test_single_class_and_zero_rows():
    one = np.ones((3, 1))
    for fn in (least_confidence, margin, ratio, entropy):
        np.testing.assert_array_equal(fn(one), np.zeros(3))
        assert fn(np.zeros((0, 4))).shape == (0,)
    assert rank([], [], "margin") == []
    assert rank(["a"], [[0.2, 0.8]]) == ["a"]


def test_entropy_treats_zero_probability_as_zero():
    assert np.all(np.isfinite(entropy(np.array([[1.0, 0.0], [0.0, 1.0]]))))
    np.testing.assert_allclose(entropy([[0.5, 0.5, 0.0]]), [np.log(2)])


@pytest.mark.parametrize("bad", [np.ones(3), np.ones((2, 0)), np.ones((2, 2, 2)), [["a", "b"]]])
def test_bad_probs_name_the_argument(bad):
    with pytest.raises(ValueError, match="probs"):
        margin(bad)
    with pytest.raises(ValueError, match="probs"):
        rank(["x"] * len(np.atleast_1d(bad)), bad)


def test_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match=r"3 candidates but 2 rows"):
        rank(["a", "b", "c"], np.full((2, 2), 0.5))


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


def test_get_strategy_and_policy():
    assert get_strategy("margin") is margin
    assert get_policy("greedy") is greedy
    assert get_policy("epsilon_greedy", 0.3).__name__ == "epsilon_greedy(0.3)"

    def mine(p):
        return p[:, 0]

    assert get_strategy(mine) is mine
    assert get_policy(greedy) is greedy
    with pytest.raises(ValueError, match=r"strategy='smallest_margin'.*margin, least_confidence"):
        get_strategy("smallest_margin")
    with pytest.raises(ValueError, match=r"policy=3.*greedy, epsilon_greedy"):
        get_policy(3)
    with pytest.raises(ValueError, match="strategy"):
        rank(["a", "b"], np.full((2, 2), 0.5), strategy="nope")


def test_bad_rng_is_rejected():
    with pytest.raises(ValueError, match="rng"):
        rank(["a", "b"], np.full((2, 2), 0.5), rng="seed")


def test_seed_gives_the_same_order():
    probs = np.random.default_rng(0).dirichlet(np.ones(5), size=200)
    paths = [f"d/{i}.png" for i in range(200)]
    for strategy in STRATEGIES:
        a = rank(paths, probs, strategy, "epsilon_greedy", rng=7, epsilon=0.3)
        b = rank(paths, probs, strategy, "epsilon_greedy", rng=np.random.default_rng(7), epsilon=0.3)
        assert a == b
    assert rank(paths, probs, "random", "greedy", rng=1) != rank(paths, probs, "random", "greedy", rng=2)


def test_outputs_are_json_serialisable():
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=10).astype(np.float32)
    paths = [f"cat/{i}.png" for i in range(10)]
    order = rank(paths, probs, rng=0)
    assert json.loads(json.dumps(order)) == order
    scores = display_scores(probs, "margin")
    assert all(type(s) is float for s in scores)
    json.dumps(scores)
    assert display_scores(probs, "random", rng=3) == display_scores(probs, "random", rng=3)


def test_random_strategy_is_seeded_by_rank():
    probs = np.full((5, 2), 0.5)
    np.testing.assert_array_equal(
        random_scores(probs, rng=np.random.default_rng(4)), random_scores(probs, rng=np.random.default_rng(4))
    )


def test_user_callables_with_rng_keyword_get_ranks_rng():
    seen = []

    def noisy(probs, rng=None):
        seen.append(rng)
        return rng.random(len(probs))

    gen = np.random.default_rng(0)
    rank(["a", "b", "c"], np.full((3, 2), 0.5), noisy, "greedy", gen)
    assert seen == [gen]


@pytest.mark.parametrize(
    "bad_order, message",
    [
        (lambda s, r: [0, 0, 1], "duplicate"),
        (lambda s, r: [5, -1, 2], "out-of-range"),
        (lambda s, r: [2], "left out 3"),
        (lambda s, r: None, "not a sequence"),
        (lambda s, r: ["a", 1.5, True], "non-integer"),
    ],
)
def test_bad_user_orders_are_repaired_with_a_warning(bad_order, message):
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [0.9, 0.1], [0.99, 0.01]])  # margin: 0 > 1 > 2 > 3
    with pytest.warns(RankingWarning, match=message) as record:
        order = rank(["a", "b", "c", "d"], probs, "margin", bad_order, rng=0)
    assert len(record) == 1
    assert "lambda" in str(record[0].message)  # names the callable
    assert sorted(order) == ["a", "b", "c", "d"]


def test_repair_keeps_valid_prefix_then_best_scores():
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [0.9, 0.1], [0.99, 0.01]])

    def backwards_then_junk(scores, rng):
        return [3, 3, 9, 2]

    with pytest.warns(RankingWarning, match="backwards_then_junk"):
        order = rank(["a", "b", "c", "d"], probs, "margin", backwards_then_junk, rng=0)
    assert order == ["d", "c", "a", "b"]


def test_bad_user_scores_are_repaired_with_a_warning():
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [0.9, 0.1]])

    def nan_first(p):
        return np.array([np.nan, 0.2, 0.9])

    with pytest.warns(RankingWarning, match="nan_first.*1 NaN"):
        assert rank(["a", "b", "c"], probs, nan_first, "greedy", rng=0) == ["c", "b", "a"]
    with pytest.warns(RankingWarning, match="2 scores for 3"):
        order = rank(["a", "b", "c"], probs, lambda p: [1, 2], "greedy", rng=0)
    assert sorted(order) == ["a", "b", "c"]
    with pytest.warns(RankingWarning, match="not numbers"):
        order = rank(["a", "b", "c"], probs, lambda p: ["x", "y", "z"], "greedy", rng=0)
    assert sorted(order) == ["a", "b", "c"]


def test_builtin_ranking_emits_no_warning():
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for strategy in STRATEGIES:
            for policy in POLICIES:
                rank(list(range(30)), probs, strategy, policy, rng=0)


def test_importing_strategies_does_not_import_tensorflow():
    code = (
        "import sys, oal_widget.al.strategies; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- properties -------------------------------------------------------------------------------
probs_arrays = st.integers(0, 40).flatmap(
    lambda n: st.integers(1, 6).flatmap(
        lambda k: hnp.arrays(np.float64, (n, k), elements=st.floats(0.001, 1.0)).map(
            lambda a: a / a.sum(axis=1, keepdims=True) if a.size else a
        )
    )
)

garbage = st.one_of(
    st.none(),
    st.integers(-5, 50),
    st.text(max_size=5),
    st.lists(st.one_of(st.integers(-5, 50), st.floats(allow_nan=True), st.booleans(), st.text(max_size=2))),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    probs=probs_arrays,
    strategy=st.sampled_from(list(STRATEGIES)),
    policy=st.sampled_from(list(POLICIES)),
    epsilon=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_rank_is_always_a_permutation(probs, strategy, policy, epsilon, seed):
    candidates = [f"img/{i}.png" for i in range(len(probs))]
    order = rank(candidates, probs, strategy, policy, rng=seed, epsilon=epsilon)
    assert sorted(order) == sorted(candidates)
    assert len(order) == len(candidates)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(probs=probs_arrays, order=garbage, scores=garbage, seed=st.integers(0, 100))
def test_rank_repairs_any_user_garbage(probs, order, scores, seed):
    candidates = [("obj", i) for i in range(len(probs))]  # any hashable item, returned as is
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankingWarning)
        result = rank(candidates, probs, lambda p: scores, lambda s, r: order, rng=seed)
    assert sorted(result) == candidates
