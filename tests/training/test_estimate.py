"""The estimate of accuracy and its interval, and how many test labels it asks for. Pure numpy."""

import numpy as np
import pytest

from oal_widget.training.estimate import Evidence, estimate, wanted_test_labels, wants_test, wilson
from oal_widget.training.evaluation import threshold_crossed


def draw(rng, n, shift=0.0):
    """Confidences of a model, and whether it was right: right with probability confidence - shift."""
    f = rng.uniform(0.45, 1.0, n)
    return (rng.random(n) < np.clip(f - shift, 0, 1)).astype(float), f


@pytest.mark.parametrize("shift", [0.0, 0.12])  # calibrated, and over-confident by 12 points
def test_the_interval_covers_the_truth_and_beats_the_plain_proportion(shift):
    rng = np.random.default_rng(0)
    pool_y, pool_f = draw(rng, 200_000, shift)
    truth = pool_y.mean()
    covered, err_estimate, err_plain = 0, [], []
    for _ in range(600):
        y, f = draw(rng, 20, shift)  # twenty evaluation labels
        sample = rng.choice(len(pool_f), 512, replace=False)
        est = estimate(y, f, pool_f[sample])
        covered += est.low <= truth <= est.high
        err_estimate.append(abs(est.accuracy - truth))
        err_plain.append(abs(y.mean() - truth))
    assert covered / 600 >= 0.92  # a 95% interval, honest with twenty labels
    assert np.mean(err_estimate) < np.mean(err_plain)  # the confidence carries information


def test_without_a_pool_it_is_the_proportion_with_wilsons_interval():
    est = estimate([1, 1, 0, 1], [0.9, 0.8, 0.6, 0.7])
    assert est.accuracy == 0.75 and (est.low, est.high) == pytest.approx(wilson(3, 4))
    assert est.n == 4 and est.n_test == 4 and est.n_prequential == 0
    assert estimate([], []) is None
    assert wilson(0, 0) == (0.0, 1.0)


def test_prequential_records_of_an_older_model_are_dropped():
    evidence = Evidence()
    for n in range(100):
        evidence.add(n, True, 0.9, 0.9)
    assert [r[0] for r in evidence.recent(100)] == list(range(50, 100))


def test_test_labels_are_a_quarter_early_then_at_most_fifteen_percent():
    n_train = n_test = 0
    shares = {}
    for n in range(1, 301):
        if wants_test(n_train, n_test):
            n_test += 1
        else:
            n_train += 1
        shares[n] = n_test / n
    assert n_test == wanted_test_labels(300) and shares[40] == 0.25  # ten test labels by the fortieth
    assert all(share <= 0.15 + 1e-9 for n, share in shares.items() if n >= 100)
    # A narrow interval stops the asking once the minimum is there.
    assert not wants_test(150, 20, halfwidth=0.03) and wants_test(150, 20, halfwidth=0.1)


def test_thresholds_act_on_the_interval_not_on_the_point():
    row = {"n_eval": 20, "accuracy": 0.96, "accuracy_low": 0.88, "accuracy_high": 0.99, "loss": 0.1}
    assert threshold_crossed(row, {"accuracy": (None, 0.95)}, 10) is None  # lucky point, wide interval
    row["accuracy_low"] = 0.955
    assert "0.955" in threshold_crossed(row, {"accuracy": (None, 0.95)}, 10)
    assert threshold_crossed(row, {"accuracy": (None, 0.95)}, 30) is None  # too few evaluation labels
