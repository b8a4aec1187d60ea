"""Scores: probabilities -> scores (hand examples, margins of the two MOST probable classes, BALD)."""

import numpy as np
import pytest

from oal_widget.al import get_strategy, needs_mc_samples, rank
from oal_widget.al.scores import bald, entropy, least_confidence, margin, random_scores, ratio

HAND = np.array(
    [
        [0.90, 0.05, 0.05, 0.00],
        [0.45, 0.45, 0.10, 0.00],
        [0.30, 0.30, 0.30, 0.10],
    ]
)


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


def test_random_strategy_is_seeded_by_rank():
    probs = np.full((5, 2), 0.5)
    np.testing.assert_array_equal(
        random_scores(probs, rng=np.random.default_rng(4)), random_scores(probs, rng=np.random.default_rng(4))
    )


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
