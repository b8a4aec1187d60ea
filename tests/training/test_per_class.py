"""Per-class accuracy (recall) with its band, and early-stopping thresholds that name a class."""

import numpy as np
import pytest

from oal_widget.config import Config
from oal_widget.training.evaluation import threshold_crossed
from oal_widget.training.per_class import check_class_thresholds, per_class, recall_rows

NAMES = ["cat", "dog", "Bag"]


def test_recall_rows_per_class_with_a_band_that_holds_the_point_and_narrows_with_labels():
    y = np.array([0] * 40 + [1] * 4)
    predicted = np.array([0] * 30 + [1] * 10 + [1, 1, 0, 0])
    rows = recall_rows(predicted, y, NAMES)
    assert rows["recall:cat"] == 0.75 and rows["n:cat"] == 40
    assert rows["recall:dog"] == 0.5 and rows["n:dog"] == 4
    assert "recall:Bag" not in rows  # no label of it: not measured, never a made-up 0 or 1
    for name in ("cat", "dog"):
        assert rows[f"recall:{name}_low"] <= rows[f"recall:{name}"] <= rows[f"recall:{name}_high"]
    width = {n: rows[f"recall:{n}_high"] - rows[f"recall:{n}_low"] for n in ("cat", "dog")}
    assert width["dog"] > 2 * width["cat"]  # four labels say much less than forty
    table = per_class(rows, NAMES)
    assert [c["name"] for c in table] == NAMES and table[2]["recall"] is None and table[0]["n"] == 40


def test_a_class_threshold_stops_on_its_band_and_waits_while_the_class_is_unmeasured():
    row = {"n_test": 20, "accuracy": 0.9, "accuracy_low": 0.85, "accuracy_high": 0.95}
    stop = {"recall:Bag": (None, 0.8)}
    assert threshold_crossed(row, stop, min_test=10) is None  # no Bag label yet: go on
    row.update(recall_rows(np.array([2] * 60), np.array([2] * 60), NAMES))
    reason = threshold_crossed(row, stop, min_test=10)
    assert reason is not None and "recall:Bag" in reason
    row.update(recall_rows(np.array([2] * 5), np.array([2] * 5), NAMES))  # five right: the band is too wide
    assert threshold_crossed(row, stop, min_test=10) is None


def test_a_threshold_must_name_a_label():
    Config(early_stopping={"recall:Bag": (None, 0.8)})  # the format is checked by the config
    with pytest.raises(ValueError, match="recall:<label>"):
        Config(early_stopping={"recal:Bag": (None, 0.8)})
    check_class_thresholds({"recall:Bag": (None, 0.8), "accuracy": (None, 0.9)}, NAMES)
    with pytest.raises(ValueError, match=r"names \['recall:bag'\].*'recall:cat'"):
        check_class_thresholds({"recall:bag": (None, 0.8)}, NAMES)  # names are case-sensitive, as labels are
