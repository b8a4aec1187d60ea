"""The estimate of accuracy and its interval, and how many test labels it asks for. Pure numpy."""

import numpy as np
import pytest

from oal_widget.training.estimate import (
    estimate,
    fit_temperature,
    wanted_test_labels,
    wants_test,
    wilson,
)
from oal_widget.training.evaluation import threshold_crossed


def images(rng, n, classes=10, sharpen=2.0):
    """A classifier's probabilities and the true classes: the classes are drawn from softmax(z), the
    classifier says softmax(sharpen * z) (over-confident when sharpen > 1)."""
    z = rng.normal(0, 1, (n, classes)) * rng.uniform(0.5, 3.0, (n, 1))
    p_true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = (p_true.cumsum(1) > rng.random((n, 1))).argmax(1)
    p_model = np.exp(sharpen * z) / np.exp(sharpen * z).sum(1, keepdims=True)
    return p_model, y


def test_one_temperature_undoes_an_over_confident_classifier():
    rng = np.random.default_rng(0)
    p, y = images(rng, 4000, sharpen=2.0)
    assert fit_temperature(np.log(p), y, np.ones(len(y))) == pytest.approx(2.0, rel=0.15)
    assert fit_temperature(np.log(p[:0]), y[:0], np.ones(0)) == 1.0


@pytest.mark.parametrize("sharpen", [1.0, 2.5])  # calibrated, and badly over-confident
def test_the_band_covers_the_truth_and_beats_the_plain_proportion(sharpen):
    rng = np.random.default_rng(1)
    big_p, big_y = images(rng, 100_000, sharpen=sharpen)
    truth = np.mean(big_p.argmax(1) == big_y)
    covered, err_estimate, err_plain = 0, [], []
    for _ in range(300):
        reserve = rng.choice(len(big_y), 150, replace=False)  # the reserve's images
        held = np.arange(12)  # twelve of them carry a test label
        recent = rng.choice(len(big_y), 30, replace=False)  # first-sight predictions
        est = estimate(big_p[reserve], held, big_y[reserve][held], big_p[recent], big_y[recent])
        covered += est.low <= truth <= est.high
        err_estimate.append(abs(est.accuracy - truth))
        err_plain.append(abs(np.mean(big_p[reserve][held].argmax(1) == big_y[reserve][held]) - truth))
    assert covered / 300 >= 0.9  # a 95% band, honest with twelve test labels
    assert np.mean(err_estimate) < 0.7 * np.mean(err_plain)  # the reserve's confidence carries information


def test_held_out_labels_overrule_misleading_first_sight_predictions():
    """A model that learnt fast: its first-sight predictions (an older model's, guessing) set the
    temperature too high, so its confidence says 30%; forty held-out labels, all right, overrule it."""
    rng = np.random.default_rng(4)
    y = np.arange(40) % 10
    z = rng.normal(0, 0.3, (40, 10))
    z[np.arange(40), y] += 1.0  # right every time, but barely sure
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    old = rng.dirichlet(np.ones(10), 30)
    plain = estimate(p, np.arange(0), np.zeros(0, int), old, rng.integers(0, 10, 30))
    est = estimate(p, np.arange(40), y, old, rng.integers(0, 10, 30))
    assert plain.accuracy < 0.5 and est.accuracy > 0.9 and est.high == pytest.approx(1.0)


def test_recent_labels_alone_give_an_estimate_and_nothing_gives_none():
    rng = np.random.default_rng(2)
    p, y = images(rng, 40)
    est = estimate(p[:30], np.arange(0), np.zeros(0, int), p[30:], y[30:])
    assert est is not None and est.n_test == 0 and est.n_prequential == 10 and est.low < est.high
    assert estimate(p[:30], np.arange(0), np.zeros(0, int)) is None
    assert estimate(np.zeros((0, 10)), np.arange(0), np.zeros(0, int), p[30:], y[30:]) is None


def test_a_perfect_score_still_has_a_band():
    p = np.eye(3)[[0, 1, 2] * 10]
    est = estimate(p, np.arange(30), np.array([0, 1, 2] * 10))
    assert est.accuracy == pytest.approx(1.0) and est.low < 0.97  # plus-four floor: never 100% for sure
    assert wilson(0, 0) == (0.0, 1.0)


def test_test_labels_are_a_quarter_early_then_four_plus_a_tenth():
    n_train = n_test = 0
    shares = {}
    for n in range(1, 301):
        if wants_test(n_train, n_test):
            n_test += 1
        else:
            n_train += 1
        shares[n] = n_test / n
    assert [wanted_test_labels(n) for n in (20, 40, 100, 200)] == [5, 8, 14, 24]
    assert n_test == wanted_test_labels(300)
    assert all(share <= 0.15 + 1e-9 for n, share in shares.items() if n >= 100)
    # A narrow interval stops the asking once the minimum is there.
    assert not wants_test(150, 20, halfwidth=0.03) and wants_test(150, 20, halfwidth=0.1)


def test_thresholds_act_on_the_interval_not_on_the_point():
    row = {"n_test": 20, "n_eval": 50, "accuracy": 0.96, "accuracy_low": 0.88, "accuracy_high": 0.99}
    assert threshold_crossed(row, {"accuracy": (None, 0.95)}, 10) is None  # lucky point, wide interval
    row["accuracy_low"] = 0.955
    assert "0.955" in threshold_crossed(row, {"accuracy": (None, 0.95)}, 10)
    # min_test_labels counts labelled test images: 30 first-sight predictions are not 30 test labels.
    assert threshold_crossed(row, {"accuracy": (None, 0.95)}, 30) is None


def test_three_test_labels_and_a_confident_model_give_no_narrow_band():
    """A confident model right on 3 held-out labels and 30 first-sight ones: the band rests on 33 labels,
    not on the 2,000 unlabelled images of the reserve it averaged its confidence over."""
    rng = np.random.default_rng(0)
    reserve = np.full((2000, 10), 0.001)
    reserve[np.arange(2000), rng.integers(0, 10, 2000)] = 0.991
    held = np.arange(3)
    recent = reserve[3:33]
    e = estimate(reserve, held, reserve[held].argmax(1), recent, recent.argmax(1))
    assert e.n == 33
    assert e.low < 0.94, (e.low, e.high)  # it was 0.99: a threshold of 0.95 would have stopped
    assert (
        threshold_crossed(
            {"n_test": 3, "accuracy": e.accuracy, "accuracy_low": e.low, "accuracy_high": e.high},
            {"accuracy": (None, 0.95)},
            10,
        )
        is None
    )


def test_many_first_sights_hold_the_truth_and_narrow_the_band():
    """Twenty held-out labels and the first sights of 150 training labels (the latest half of 300), of
    the same calibration: the band holds the truth in 90% of draws, and is narrower than the held-out
    labels' own binomial band."""
    rng = np.random.default_rng(5)
    big_p, big_y = images(rng, 100_000, sharpen=1.5)
    truth = np.mean(big_p.argmax(1) == big_y)
    covered, widths, plain = 0, [], []
    for _ in range(200):
        reserve = rng.choice(len(big_y), 400, replace=False)
        held = np.arange(20)
        recent = rng.choice(len(big_y), 150, replace=False)
        est = estimate(big_p[reserve], held, big_y[reserve][held], big_p[recent], big_y[recent])
        assert est.n == 170 and est.n_prequential == 150
        covered += est.low <= truth <= est.high
        widths.append(est.halfwidth)
        low, high = wilson(np.sum(big_p[reserve][held].argmax(1) == big_y[reserve][held]), 20)
        plain.append((high - low) / 2)
    assert covered / 200 >= 0.9
    assert np.mean(widths) < 0.6 * np.mean(plain)


def test_first_sights_of_hard_images_weigh_as_a_few_held_out_labels_however_many():
    """First sights come from older models on hard images (chosen for their small margin): 500 of them
    from a guessing model must not drag the temperature, nor the estimate, of a classifier that forty
    held-out labels show to be right and sure."""
    rng = np.random.default_rng(6)
    y = np.arange(200) % 10
    z = rng.normal(0, 0.3, (200, 10))
    z[np.arange(200), y] += 4.0  # right every time, sure of it
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    guesses = rng.dirichlet(np.ones(10) * 0.3, 500)  # sure-looking guesses, right one time in ten
    est = estimate(p, np.arange(40), y[:40], guesses, rng.integers(0, 10, 500))
    assert est.accuracy > 0.95 and est.low > 0.85, est
    assert est.temperature < 2.0, est  # 500 weighing a quarter each set it to 8.5 (and leant on the PPI)
    assert est.n == 540


def test_a_perfect_score_on_many_labels_still_has_a_band_and_the_same_inputs_give_the_same_band():
    p = np.eye(3)[[0, 1, 2] * 100]
    y = np.array([0, 1, 2] * 100)
    args = (p, np.arange(40), y[:40], p[100:300], y[100:300])
    est = estimate(*args)
    assert est.accuracy == pytest.approx(1.0) and 0 < est.halfwidth and est.low < 0.995
    assert estimate(*args) == est  # the bootstrap is seeded: a row does not flicker
