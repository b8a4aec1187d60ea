"""rank() and the registry: always a permutation, repairs a user's callable, names shared with Config."""

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
from oal_widget.al import POLICIES, STRATEGIES, RankingWarning, display_scores, get_policy, get_strategy, rank
from oal_widget.al.policies import greedy
from oal_widget.al.scores import margin


def test_names_match_config():
    assert tuple(STRATEGIES) == config.STRATEGY_NAMES
    assert tuple(POLICIES) == config.POLICY_NAMES


def test_new_names_are_registered_and_accepted_by_config():
    assert {"bald", "bandit"} <= set(STRATEGIES) and {"power", "softmax"} <= set(POLICIES)
    for name in ("bald", "bandit"):
        assert config.Config(strategy=name).strategy == name
    assert config.Config(policy="power", temperature=0.5).temperature == 0.5


@pytest.mark.parametrize(
    "setting, value, words",
    [
        ("temperature", 0, "temperature"),
        ("mc_samples", 0, "mc_samples"),
        ("diversity", "clusters", "kcenter"),
        ("schedule", "sometimes", "shrink_perturb"),
        ("cold_start", -1, "cold_start"),
        ("class_balance", "yes", "True or False"),
    ],
)
def test_new_settings_are_validated_by_name(setting, value, words):
    with pytest.raises(ValueError, match=setting) as e:
        config.Config(**{setting: value})
    assert words in str(e.value)


def test_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match=r"3 candidates but 2 rows"):
        rank(["a", "b", "c"], np.full((2, 2), 0.5))


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


def test_importing_al_does_not_import_tensorflow():
    code = "import sys, oal_widget.al; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


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


cases = st.integers(0, 30).flatmap(
    lambda n: st.tuples(
        st.integers(1, 5).flatmap(
            lambda k: st.tuples(
                hnp.arrays(np.float64, (n, k), elements=st.floats(0.001, 1.0)),
                hnp.arrays(np.float64, (3, n, k), elements=st.floats(0.001, 1.0)),
            )
        ),
        hnp.arrays(np.float64, (n, 2), elements=st.floats(-10, 10)),
    )
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=cases,
    strategy=st.sampled_from(list(STRATEGIES)),
    policy=st.sampled_from(list(POLICIES)),
    diversity=st.sampled_from(["none", "kcenter"]),
    batch=st.integers(1, 12),
    temperature=st.floats(0.01, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_strategy_policy_and_diversity_gives_a_permutation(
    case, strategy, policy, diversity, batch, temperature, seed
):
    (probs, mc), emb = case
    if probs.size:
        probs = probs / probs.sum(axis=1, keepdims=True)
        mc = mc / mc.sum(axis=2, keepdims=True)
    candidates = [f"img/{i}.png" for i in range(len(probs))]
    order = rank(
        candidates,
        probs,
        strategy,
        policy,
        rng=seed,
        temperature=temperature,
        mc_probs=mc,
        embeddings=emb,
        diversity=diversity,
        batch=batch,
    )
    assert sorted(order) == sorted(candidates) and len(order) == len(candidates)


def test_rank_says_which_picks_were_uniformly_random():
    """Exploration picks (and every pick of the random strategy) are an unbiased sample for evaluation."""
    from oal_widget.al import rank_and_explored

    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=2000)
    items = list(range(2000))
    order, explored = rank_and_explored(items, probs, "margin", "epsilon_greedy", rng=0, epsilon=0.2)
    assert sorted(order) == items and explored <= set(items)
    assert 0.15 < len(explored) / len(items) < 0.25
    _, everything = rank_and_explored(items, probs, "random", "greedy", rng=0)
    assert everything == set(items)
    _, nothing = rank_and_explored(items, probs, "margin", "greedy", rng=0)
    assert nothing == set()
