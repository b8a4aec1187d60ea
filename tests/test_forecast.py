"""The learning-curve forecast (pure numpy) and the diagnostics (confusion matrix, most wrong)."""

import json
import math

import numpy as np
import pytest

from oal_widget.reports import diagnostics
from oal_widget.reports.forecast import fit_curve, forecast, labels_needed, standing_curve, target_of


def _curve(ns, a=0.95, b=-0.8, c=0.5, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [{"n_labels": n, "accuracy": a + b * n**-c + rng.normal(0, noise)} for n in ns]


def test_exact_power_law_is_recovered():
    a, b, c, sse = fit_curve(np.arange(10, 110, 10), [0.95 - 0.8 * n**-0.5 for n in range(10, 110, 10)])
    assert a == pytest.approx(0.95, abs=0.02) and c == pytest.approx(0.5, rel=0.1) and sse < 1e-4
    assert labels_needed(0.95, -0.8, 0.5, 0.9) == pytest.approx(256)  # (0.8 / 0.05) ** 2


def test_noisy_curve_forecast_brackets_the_truth():
    truth = labels_needed(0.95, -0.8, 0.5, 0.9)  # 256 labels
    f = forecast(_curve(range(10, 130, 10), noise=0.01, seed=3), target=0.9, seed=1)
    assert f.needed_low <= f.needed <= f.needed_high
    assert f.needed_low < truth < f.needed_high
    assert f.needed == pytest.approx(truth, rel=0.35)
    assert f.more == pytest.approx(f.needed - 120) and f.p_reachable > 0.8
    assert "more labels to reach accuracy 0.9" in f.message
    json.dumps(f.to_dict())  # plain values: the panel and the model card may serialise it


def test_a_target_above_the_plateau_is_not_promised():
    f = forecast(_curve(range(10, 130, 10), a=0.8, noise=0.005), target=0.97)
    assert f.p_reachable < 0.2 and math.isinf(f.needed_high)
    assert f.asymptote_low <= 0.8 + 0.03 and "may not get there" in f.message


def test_reached_target_loss_metric_and_too_few_points():
    reached = forecast(_curve(range(10, 60, 10)), target=0.5)
    assert reached.reached and reached.more == 0
    loss = [{"n_labels": n, "loss": 0.2 + 3 * n**-0.7} for n in range(10, 100, 10)]
    f = forecast(loss, "loss", target=0.25)
    assert f.needed == pytest.approx(labels_needed(0.2, 3, 0.7, 0.25), rel=0.1)
    assert forecast(_curve([10, 20, 30]), target=0.9) is None
    no_target = forecast(_curve(range(10, 60, 10)))
    assert no_target.needed is None and no_target.asymptote == pytest.approx(0.95, abs=0.03)
    assert target_of({"accuracy": (None, 0.9)}) == 0.9 and target_of({"loss": (0.1, None)}, "loss") == 0.1
    assert target_of({}) is None


def test_forecast_is_deterministic_for_a_seed():
    rows = _curve(range(10, 130, 10), noise=0.02, seed=5)
    assert forecast(rows, target=0.9, seed=2) == forecast(rows, target=0.9, seed=2)


def test_the_standing_curve_leaves_out_evaluations_undone_since_and_never_doubles_back():
    # 88 labels, a grid page of 24 undone, labelling goes on; then a continued session evaluates
    # again at the count it stopped at.
    rows = [
        {"n_labels": n, "accuracy": 0.5 + n / 1000, "i": i}
        for i, n in enumerate([10, 40, 64, 88, 70, 80, 80, 90])
    ]
    curve = standing_curve(rows)
    assert [r["n_labels"] for r in curve] == [10, 40, 64, 70, 80, 90]
    assert [r["i"] for r in curve][-3:] == [4, 6, 7], "the later evaluation at a repeated count stands"
    assert standing_curve([]) == [] and standing_curve([{"loss": 1.0}]) == []
    # The forecast fits the standing curve: the undone branch's high points do not pull it.
    undone = [{"n_labels": n, "accuracy": 0.99} for n in (200, 210, 220)]
    standing = _curve(range(10, 130, 10))
    assert forecast([*undone, *standing], target=0.9) == forecast(standing, target=0.9)


def test_confusion_matrix_per_class_accuracy_and_most_wrong():
    names = ["cat", "dog", "bird"]
    probs = np.array(
        [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.05, 0.05, 0.9], [0.1, 0.85, 0.05]]
    )
    y = [0, 1, 1, 2, 0]
    result = diagnostics.diagnose(["a", "b", "c", "d", "e"], probs, y, names, n_wrong=5)
    assert result["confusion"] == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert result["per_class_accuracy"] == {"cat": 0.5, "dog": 0.5, "bird": 1.0}
    assert result["accuracy"] == pytest.approx(0.6)
    worst = result["most_wrong"]
    assert [w["path"] for w in worst] == ["e", "c"]  # e gives its true class 0.1, c gives 0.3
    assert worst[0] == {"path": "e", "label": "cat", "predicted": "dog", "confidence": 0.85, "p_true": 0.1}
    json.dumps(result)
    table = diagnostics.confusion_html(result)
    assert table.count("<tr>") == 4 and "50%" in table
    empty = diagnostics.diagnose([], np.zeros((0, 3)), [], names)
    assert empty["accuracy"] is None and empty["per_class_accuracy"]["cat"] is None
    assert "–" in diagnostics.confusion_html(empty)
