"""Seeking the classes with fewest labels: deficits, picks, the interleaved order (always a permutation)
and the images far from every label that find a class nobody has labelled."""

import numpy as np
import pytest

from oal_widget.al.balance import (
    FULL_DEFICIT,
    RARE_TARGET,
    deficits,
    farthest_first,
    interleave,
    seek_picks,
)


def test_deficit_is_zero_at_or_above_the_target_and_one_for_a_class_with_no_label():
    d = deficits([0, 5, 10, 25])  # mean 10
    assert d[0] == 1.0 and d[3] == 0.0
    assert d[1] == pytest.approx(1 - 5 / (RARE_TARGET * 10))
    assert d[2] == pytest.approx(1 - 1 / RARE_TARGET) and d[2] > 0  # at the mean: short of the target
    assert deficits([0, 5, 10, 25], target=1.0)[2] == 0.0
    assert not deficits([0, 0]).any()  # nothing yet
    # A class nobody has found yet (it may be absent) weighs less once the others have many labels.
    assert deficits([0, 200, 200])[0] == pytest.approx(10 / (400 / 3))


@pytest.mark.parametrize("share", [0.0, 0.1, 0.3, 0.5, 1.0])
def test_interleave_is_a_permutation_with_picks_at_their_rate(share):
    ranked = list(range(40))
    picks = [39, 30, 35, 20, 25]
    out = interleave(ranked, picks, share)
    assert sorted(out) == ranked
    if share == 0:
        assert out == ranked
    else:
        first = out[: int(np.ceil(len(picks) / share))]
        assert set(picks) <= set(first)  # every pick within its share of the order
        assert [x for x in out if x in picks] == picks  # in the picks' own order


def test_a_short_class_the_model_thinks_rare_is_sought_by_its_most_probable_images():
    rng = np.random.default_rng(0)
    p = np.column_stack([rng.uniform(0.4, 0.6, 200), np.zeros(200), rng.uniform(0.0, 0.04, 200)])
    p[:, 1] = 1 - p[:, 0] - p[:, 2]
    p[[7, 50, 99], :] = [0.2, 0.1, 0.7]  # the model's best guesses of class 2
    picks, share = seek_picks(p, [20, 20, 2], 200, 3)
    assert sorted(picks) == [7, 50, 99]
    assert share == pytest.approx(min(1.0, (1 - 2 / (RARE_TARGET * 14)) / FULL_DEFICIT))
    # At the target (twice the mean): nothing sought, and the share is 0.
    assert seek_picks(p, [6, 6, 24], 200, 3) == ([], 0.0)


def test_a_class_the_model_thinks_rare_is_still_sought_at_the_mean_per_class():
    """At the mean a rare class would gain labels only as fast as the mean grows: it is sought on to
    ``RARE_TARGET`` times the mean, at the full share while a quarter short of that."""
    rng = np.random.default_rng(0)
    p = np.column_stack([rng.uniform(0.4, 0.6, 200), np.zeros(200), rng.uniform(0.0, 0.04, 200)])
    p[:, 1] = 1 - p[:, 0] - p[:, 2]
    p[[7, 50, 99], :] = [0.2, 0.1, 0.7]
    picks, share = seek_picks(p, [10, 10, 10], 200, 3)
    assert sorted(picks) == [7, 50, 99]
    assert share > 0 and share == pytest.approx(min(1.0, (1 - 1 / RARE_TARGET) / FULL_DEFICIT))
    # A balanced pool: a model that predicts every class often seeks none, whatever their labels.
    even = rng.dirichlet(np.ones(3), 200)
    assert seek_picks(even, [10, 10, 10], 200, 3) == ([], 0.0)


@pytest.mark.parametrize("full", [0.25, 0.5, 1.0])
def test_the_share_is_full_while_the_deficit_is_large_and_falls_to_zero_near_the_target(full):
    rng = np.random.default_rng(0)
    p = np.column_stack([rng.uniform(0.4, 0.6, 200), np.zeros(200), rng.uniform(0.0, 0.04, 200)])
    p[:, 1] = 1 - p[:, 0] - p[:, 2]
    shares = [seek_picks(p, [40, 40, n], 200, 3, full=full)[1] for n in range(2, 161, 2)]
    deficit = [1 - 3 * n / (RARE_TARGET * (80 + n)) for n in range(2, 161, 2)]
    assert shares == pytest.approx([min(1.0, max(0.0, d) / full) for d in deficit])
    assert shares[-1] == 0.0 and all(a >= b for a, b in zip(shares, shares[1:], strict=False))


def test_a_short_class_the_model_thinks_common_is_left_to_the_strategy():
    p = np.random.default_rng(0).dirichlet(np.ones(3), 200)  # about a third of the pool each
    assert seek_picks(p, [20, 20, 2], 200, 3) == ([], 0.0)


def test_an_exhausted_class_is_not_sought():
    p = np.tile([0.5, 0.5 - 1e-4, 1e-4], (100, 1))  # the model expects 0.01 images of class 2
    p[::2] = p[::2, [1, 0, 2]]  # and predicts classes 0 and 1 alike
    assert seek_picks(p, [30, 30, 2], 100, 5) == ([], 0.0)


def test_a_class_with_no_label_gets_the_images_far_from_every_label():
    p = np.full((50, 3), 1 / 3)
    picks, deficit = seek_picks(p, [10, 10, 0], 50, 4, uncovered=lambda: [3, 1, 4])
    assert picks[:3] == [3, 1, 4] and deficit == 1.0


def test_farthest_first_reaches_a_class_that_is_a_minority_in_every_cluster():
    """Four big groups, each labelled at its centre, and an unseen class of 12 split among them,
    a little off each group's centre: a minority in every cluster, so each cluster's most typical image
    is a common one, but the unseen class's images lie farthest from every label."""
    rng = np.random.default_rng(4)
    centres = np.eye(6)[:4] * 12
    common = np.concatenate([c + rng.normal(0, 1, (100, 6)) for c in centres])
    unseen = np.concatenate([c + np.eye(6)[5] * 6 + rng.normal(0, 0.3, (3, 6)) for c in centres])
    E = np.concatenate([common, unseen]).astype(np.float32)
    labelled = np.concatenate([c + rng.normal(0, 0.2, (3, 6)) for c in centres])
    picks = farthest_first(E, labelled, 8)
    assert picks[0] >= 400  # an unseen image comes before any big group's next image
    assert sum(i >= 400 for i in picks[:4]) >= 3, picks
    assert len(set(picks)) == len(picks) and all(0 <= i < len(E) for i in picks)


def test_farthest_first_spends_one_pick_on_a_handful_of_odd_images():
    rng = np.random.default_rng(5)
    known = rng.normal(0, 1, (300, 6))
    odd = rng.normal(9, 0.1, (6, 6))
    E = np.concatenate([known, odd]).astype(np.float32)
    picks = farthest_first(E, known[:20], 5)
    assert picks[0] >= 300 and all(i < 300 for i in picks[1:])  # one stands for its neighbours
    assert farthest_first(E, known[:20], 0) == []
    assert len(farthest_first(E, np.zeros((0, 6)), 3)) == 3  # no label yet: still a spread of picks


def test_farthest_first_gives_the_same_picks_a_block_of_labels_at_a_time(monkeypatch):
    import oal_widget.al.balance as balance

    rng = np.random.default_rng(6)
    E, labelled = rng.normal(0, 1, (200, 5)), rng.normal(0, 1, (30, 5))
    whole = farthest_first(E, labelled, 10)
    monkeypatch.setattr(balance, "DISTANCE_BLOCK", 200 * 7)  # seven labels at a time
    assert farthest_first(E, labelled, 10) == whole


def test_the_class_with_fewest_labels_takes_the_turns_first():
    """Nine classes at six labels (some of them under-predicted by an early model) and a rare one with
    one: the rare class's best guesses come first, not shared with the classes short of the target."""
    rng = np.random.default_rng(3)
    p = rng.uniform(0.0, 0.05, (300, 10))
    p[:, 5:9] += rng.dirichlet(np.ones(4), 300)  # the model predicts only classes 5-8
    best = [11, 120, 230, 290]
    p[best, 9] = 0.9  # its best guesses of the rare class 9
    p /= p.sum(1, keepdims=True)
    counts = [6] * 9 + [1]
    assert deficits(counts)[:5].min() > 0  # classes 0-4: short of the target and thought rare
    picks, _ = seek_picks(p, counts, 300, 6)
    assert picks[:4] == sorted(best, key=lambda i: -p[i, 9])


def test_a_class_with_no_label_that_may_be_absent_goes_last():
    """Once the others have many labels, a class nobody has found may not be in the pool: a rare class
    with labels gets its turns first."""
    p = np.full((60, 4), 0.3)
    p[:, 3] = 0.02
    p[[5, 6], 3] = 0.4  # the best guesses of class 3 (5 labels)
    p /= p.sum(1, keepdims=True)
    counts = [0, 40, 40, 5]
    assert 0 < deficits(counts)[0] < 1
    picks, _ = seek_picks(p, counts, 60, 4, uncovered=lambda: [30, 31, 32])
    assert picks[:2] == [5, 6] and not {30, 31, 32} & set(picks)


def test_the_images_far_from_every_label_are_computed_once_for_all_classes_with_no_label():
    p = np.full((60, 4), 0.25)
    calls = []

    def uncovered():
        calls.append(1)
        return [30, 31, 32, 33]

    picks, _ = seek_picks(p, [10, 0, 0, 0], 60, 4, uncovered=uncovered)
    assert picks == [30, 31, 32, 33] and len(calls) == 1
