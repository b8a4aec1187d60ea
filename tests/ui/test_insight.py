"""The panel's final-fit button, model insight (confusion matrix, most wrong, forecast), export and
import_labels= wiring. A fake trainer with canned results: no TF (test_final_fit.py runs the real one)."""

from __future__ import annotations

import threading

import pytest
from fake_trainer import FakeTrainer
from helpers import settle, wait_for

from oal_widget import Annotator
from oal_widget.messages import Update
from oal_widget.reports import diagnostics

SHAPE = (16, 16, 1)


class InsightTrainer(FakeTrainer):
    """Adds final_fit / diagnose, remembering the thread they ran in."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.threads: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.fit_labels = None

    def final_fit(self, epochs=30, out=None, progress=None, cancel=None, labels=None):
        self.threads.append(threading.current_thread().name)
        self.fit_labels = labels
        assert self.release.wait(10)
        for step in range(1, 5):
            progress(step, 4)
        return {
            "metrics": {"accuracy": 0.75, "n_test": 4},
            "files": {"model": str(self.workdir / "final" / "model.keras")},
        }

    def diagnose(self, n_wrong=8):
        self.threads.append(threading.current_thread().name)
        paths = sorted(self.test_paths)[:2]
        probs = [[0.1, 0.8, 0.1], [0.9, 0.05, 0.05]]
        return diagnostics.diagnose(paths, probs, [0, 0], self.label_names, n_wrong)


@pytest.fixture
def panel(small_digits, tmp_path):
    a = Annotator(
        small_digits,
        ["0", "1", "2"],
        workdir=tmp_path / "work",
        trainer_factory=InsightTrainer,
        input_shape=SHAPE,
    )
    yield a
    a.session.close()


def test_final_fit_button_runs_off_the_main_thread_and_reports(panel):
    trainer = panel.session.trainer
    panel.session.label("1")
    trainer.release.clear()
    panel.insight.final_button.click()
    wait_for(lambda: trainer.threads)
    assert trainer.threads == ["oal-final-fit"] and panel.insight.final_button.disabled  # the click returned
    assert panel.final_fit() is panel.insight.final_future  # a second request joins the running fit
    trainer.release.set()
    card = panel.insight.final_future.result(timeout=10)
    settle(panel)  # the status and the button are set on the panel's UI thread
    assert card["metrics"]["accuracy"] == 0.75 and not panel.insight.final_button.disabled
    assert "test accuracy 75.0% on 4 test images" in panel.insight.final_status.value
    assert list(trainer.fit_labels.values()) == ["1"]  # every label of the store
    assert "oal-final-fit" in panel.insight.final_button._dom_classes


def test_final_fit_error_is_shown_and_raised(small_digits, tmp_path):
    a = Annotator(small_digits, ["0", "1"], workdir=tmp_path / "w", trainer_factory=FakeTrainer)
    with pytest.raises(RuntimeError, match="final_fit is not available"):
        a.final_fit(wait=True)
    settle(a)
    assert "final fit failed: RuntimeError" in a.insight.final_status.value
    a.session.close()


def test_model_insight_shows_confusion_most_wrong_and_forecast(panel):
    trainer = panel.session.trainer
    panel.insight.insight_button.click()
    wait_for(lambda: "oal-confusion-table" in panel.insight.confusion.value)
    assert trainer.threads == ["oal-insight"]
    assert panel.insight.details.layout.display is None
    assert "needs 4 evaluations" in panel.insight.forecast.value
    assert len(panel.insight.most_wrong.children) == 1  # one of the two test images is misclassified
    history = [
        {"n_labels": n, "accuracy": 0.9 - 0.8 * n**-0.5, "loss": 1.0, "n_test": 5} for n in range(5, 60, 5)
    ]
    trainer.publish(Update(status="training", n_labels=55, metrics=tuple(history)))
    settle(panel)
    result = panel.diagnose()
    assert result["confusion"][0] == [1, 1, 0]
    forecast = panel.insight.forecast.value
    assert "levels off near" in forecast and "early_stopping" in forecast
    panel.insight.insight_button.click()
    assert panel.insight.details.layout.display == "none"


def test_export_and_import_labels_through_the_annotator(small_digits, tmp_path):
    a = Annotator(small_digits, ["0", "1", "2"], workdir=tmp_path / "w", trainer_factory=FakeTrainer)
    for _ in range(3):
        a.session.label(a.session.current.split("/")[0])
    result = a.export(tmp_path / "labels.csv")
    assert result.rows == 3
    expected = a.labels
    a.session.close()
    b = Annotator(
        small_digits,
        workdir=tmp_path / "w2",
        trainer_factory=FakeTrainer,
        import_labels=tmp_path / "labels.csv",
    )
    assert b.labels == expected and b.session.label_names == sorted(set(expected.values()))
    assert b._view == "label"  # no label editor: the import gave the labels
    b.session.close()


def test_model_insight_shows_each_class_labels_accuracy_band_and_images_it_predicts(panel):
    from oal_widget.session.classes import class_table
    from oal_widget.training.per_class import recall_rows

    s, trainer = panel.session, panel.session.trainer
    for _ in range(4):
        s.label(s.current.split("/")[0])
    given = s.labels()
    row = {"n_labels": 4, "accuracy": 0.8, "accuracy_low": 0.6, "accuracy_high": 0.9, "n_test": 2}
    row.update(recall_rows([0, 0, 1, 1], [0, 0, 0, 1], ["0", "1", "2"]))
    unlabelled = [p for p in s.pool.paths if p not in given and not s.is_test(p)]
    predictions = {p: ("2" if i < 5 else "1", 0.7) for i, p in enumerate(unlabelled)}
    predictions.update({p: ("2", 0.9) for p in s.pool.paths if s.is_test(p)})  # never counted
    trainer.publish(Update(status="training", n_labels=4, metrics=(row,), predictions=predictions))
    settle(panel)
    table = {c["name"]: c for c in class_table(s)}
    assert sum(c["train"] + c["test"] for c in table.values()) == len(given)
    assert table["2"]["predicted"] == 5 and table["1"]["predicted"] == len(unlabelled) - 5
    assert table["0"]["recall"] == 2 / 3 and table["0"]["n"] == 3 and table["2"]["recall"] is None
    panel.insight.insight_button.click()
    wait_for(lambda: "per class" in panel.insight.classes.value)
    shown = panel.insight.classes.value
    assert "67% (" in shown and "not measured yet" in shown and "more like this" in shown
