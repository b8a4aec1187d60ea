"""Issue 4 strategies and policies: BALD, power/softmax, k-center diversity, the EXP3 bandit. Pure numpy."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from oal_widget import config
from oal_widget.al.bandit import Exp3Strategy
from oal_widget.al.strategies import (
    POLICIES,
    STRATEGIES,
    bald,
    entropy,
    get_policy,
    get_strategy,
    kcenter,
    needs_mc_samples,
    power,
    rank,
    softmax,
)


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


# --- BALD --------------------------------------------------------------------------------------
def test_bald_prefers_disagreement_over_agreed_uncertainty():
    """Row 0: every pass says 50/50 (noise: nothing to learn). Row 1: passes disagree confidently."""
    agreed = [[0.5, 0.5], [0.5, 0.5]]
    disagree = [[0.99, 0.01], [0.01, 0.99]]
    sure = [[0.99, 0.01], [0.99, 0.01]]
    mc = np.array([[agreed[t], disagree[t], sure[t]] for t in range(2)])  # (T=2, n=3, k=2)
    probs = mc.mean(axis=0)
    scores = bald(probs, mc_probs=mc)
    assert scores[1] > scores[0] and scores[1] > scores[2]
    np.testing.assert_allclose(scores[0], 0.0, atol=1e-12)  # all passes agree: no information
    np.testing.assert_allclose(scores[1], entropy(probs[1:2])[0] - entropy(np.array([[0.99, 0.01]]))[0])


def test_bald_without_passes_is_the_entropy_and_bad_passes_are_named():
    probs = np.array([[0.7, 0.3], [0.5, 0.5]])
    np.testing.assert_allclose(bald(probs), entropy(probs))
    with pytest.raises(ValueError, match="mc_probs"):
        bald(probs, mc_probs=np.ones((3, 5, 2)) / 2)
    assert needs_mc_samples(bald) and not needs_mc_samples(get_strategy("margin"))


def test_rank_passes_mc_probs_to_bald():
    mc = np.array([[[0.5, 0.5], [0.99, 0.01]], [[0.5, 0.5], [0.01, 0.99]]])
    order = rank(["agreed", "disagree"], mc.mean(axis=0), "bald", "greedy", rng=0, mc_probs=mc)
    assert order == ["disagree", "agreed"]


# --- power / softmax ---------------------------------------------------------------------------
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


# --- k-center diversity --------------------------------------------------------------------------
def test_kcenter_spreads_the_batch_over_clusters():
    # 20 candidates ranked 0..19: the first 10 sit in one tight cluster, the next 10 in another.
    emb = np.vstack([np.zeros((10, 2)) + np.arange(10)[:, None] * 1e-3, np.ones((10, 2)) * 5])
    order = np.arange(20)
    new = kcenter(order, emb, batch=2, top=20)
    assert new[0] == 0 and new[1] >= 10  # second pick from the other cluster, not candidate 1
    assert sorted(new.tolist()) == list(range(20))
    assert kcenter(order, emb, batch=1).tolist() == list(range(20))  # nothing to spread


def test_kcenter_needs_embeddings_of_the_right_shape():
    with pytest.raises(ValueError, match="embeddings"):
        kcenter(np.arange(4), np.zeros((3, 2)), batch=2)
    with pytest.raises(ValueError, match="embeddings"):
        rank(list("abcd"), np.full((4, 2), 0.5), diversity="kcenter")
    with pytest.raises(ValueError, match="diversity"):
        rank(list("abcd"), np.full((4, 2), 0.5), diversity="clusters", embeddings=np.zeros((4, 2)))


# --- the bandit --------------------------------------------------------------------------------
def test_bandit_learns_which_arm_brings_accuracy():
    bandit = get_strategy("bandit")
    assert isinstance(bandit, Exp3Strategy) and bandit is not STRATEGIES["bandit"]  # fresh state
    rng = np.random.default_rng(0)
    for _ in range(300):
        bandit.choose(rng)
        bandit.reward(0.05 if bandit.arm_name == "margin" else -0.02)
    p = dict(zip(bandit.arms, bandit.probabilities(), strict=True))
    assert p["margin"] > 0.8
    assert min(p.values()) >= bandit.gamma / len(bandit.arms) - 1e-12  # every arm keeps being tried


def test_bandit_rewards_are_bounded_and_need_a_pending_arm():
    bandit = Exp3Strategy(arms=("margin", "random"), gamma=0.5, scale=0.05)
    assert bandit.reward(0.1) is None  # nothing drawn yet
    bandit.choose(np.random.default_rng(0))
    assert bandit.reward(1.0) == 1.0 and bandit.last_arm is None
    bandit.choose(np.random.default_rng(0))
    assert bandit.reward(-1.0) == 0.0
    assert bandit.reward(0.0) is None  # already credited
    with pytest.raises(ValueError, match="arms"):
        Exp3Strategy(arms=("bandit",))
    with pytest.raises(ValueError, match="strategy"):
        Exp3Strategy(arms=("nope",))


# --- the permutation property for every strategy, policy and extra input ----------------------------
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
