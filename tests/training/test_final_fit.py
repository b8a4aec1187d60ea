"""The final fit (a new model from scratch on every label, saved with a model card) and the
diagnostics of the live model, with real TensorFlow on tiny digits."""

import json
import threading

import numpy as np
import pytest
from helpers import wait_for

from oal_widget.session.session import Session
from oal_widget.training.models import reload_model

SETTINGS = dict(input_shape=(16, 16, 1), batch_size=8, train_steps=2, eval_every=4, query_every=4)


@pytest.fixture
def session(small_digits, tmp_path):
    s = Session(small_digits, ["0", "1", "2"], workdir=tmp_path / "work", buffer_size=5, **SETTINGS)
    while s.current is not None:
        s.label(s.current.split("/")[0])
    yield s
    s.close()


def test_final_fit_trains_on_every_label_and_saves_model_and_card(session, tmp_path):
    steps = []
    card = session.final_fit(epochs=3, progress=lambda done, total: steps.append((done, total)))
    folder = session.workdir / "final"
    assert card["files"] == {"model": str(folder / "model.keras"), "card": str(folder / "model_card.json")}
    assert json.loads((folder / "model_card.json").read_text(encoding="utf-8")) == card
    n_test = sum(1 for p in session.labels() if session.is_test(p))
    # Every label of the store, the buffered ones (buffer_size=5) included, split by the test split.
    assert sum(card["counts"]["train"].values()) == 24 - n_test
    assert sum(card["counts"]["test"].values()) == n_test == card["metrics"]["n_test"]
    assert card["labels"] == ["0", "1", "2"] and card["settings"]["epochs"] == 3
    assert card["settings"]["batch_size"] == 8 and card["settings"]["model_fn"] == "default_model_fn"
    assert set(card["versions"]) >= {"oal_widget", "python", "keras", "tensorflow", "numpy"}
    assert 0.0 <= card["metrics"]["accuracy"] <= 1.0
    assert np.sum(card["metrics"]["confusion"]) == n_test
    # 3 epochs over 24 - n_test labels in batches of 8, each step reported.
    per_epoch = -(-(24 - n_test) // 8)
    assert steps[-1] == (3 * per_epoch, 3 * per_epoch) and len(steps) == 3 * per_epoch
    # The saved model is the final one and reloads with the same predictions.
    reloaded = reload_model(folder / "model.keras")
    X, _ = session.pool.arrays(sorted(session.labels())[:4])
    final = session.trainer.final_model
    assert final is not session.model  # a new model: the online one is left alone
    np.testing.assert_allclose(reloaded.predict_on_batch(X), final.predict_on_batch(X), atol=1e-5)


def test_final_fit_can_be_cancelled_and_refuses_bad_epochs(session):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(RuntimeError, match="cancelled; nothing was saved"):
        session.final_fit(epochs=1, cancel=cancel)
    assert not (session.workdir / "final" / "model.keras").exists()
    with pytest.raises(ValueError, match="epochs=0 is invalid"):
        session.final_fit(epochs=0)


def test_diagnose_the_live_model_on_the_test_split(session):
    n_test = sum(1 for p in session.labels() if session.is_test(p))
    # The trainer's thread takes the labels in as it can: wait until it holds every test label.
    wait_for(lambda: session.model is not None and len(session.trainer.labels.test) == n_test)
    result = session.diagnose(n_wrong=3)
    assert result["n_test"] == n_test and np.sum(result["confusion"]) == n_test
    assert set(result["per_class_accuracy"]) == {"0", "1", "2"}
    assert len(result["most_wrong"]) <= 3
    for item in result["most_wrong"]:
        assert session.is_test(item["path"]) and item["predicted"] != item["label"]
    assert session.forecast() is None or session.forecast().n_labels > 0  # few evaluations: maybe none


def test_stop_cancels_a_running_final_fit_and_nothing_is_saved(session):
    """A final fit of many epochs in a worker thread ends at Stop, not after its last epoch."""
    started, outcome = threading.Event(), {}

    def progress(done, total):
        started.set()

    def work():
        try:
            session.final_fit(epochs=10_000, progress=progress)
        except BaseException as e:  # the cancellation is the expected outcome
            outcome["error"] = e

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    assert started.wait(60), "the final fit never made a step"
    session.stop()
    worker.join(60)
    assert not worker.is_alive(), "stop did not cancel the final fit"
    assert "cancelled" in str(outcome.get("error"))
    assert not (session.workdir / "final" / "model.keras").exists()


def test_the_final_fit_is_seeded_and_built_in_the_distribution_scope(small_digits, tmp_path):
    """Same labels and seed: the same model. A user's tf.distribute strategy scopes its build."""
    import contextlib

    from helpers import tiny_model_fn

    class Strategy:  # the part of the tf.distribute interface the trainer uses
        num_replicas_in_sync = 1
        inside = 0

        @contextlib.contextmanager
        def scope(self):
            Strategy.inside += 1
            try:
                yield
            finally:
                Strategy.inside -= 1

    built_inside = []

    def model_fn(n, shape):
        built_inside.append(Strategy.inside > 0)
        return tiny_model_fn(n, shape)

    s = Session(
        small_digits,
        ["0", "1", "2"],
        workdir=tmp_path / "w",
        model_fn=model_fn,
        distribute=Strategy(),
        **SETTINGS,
    )
    try:
        while s.current is not None:
            s.label(s.current.split("/")[0])
        wait_for(lambda: s.model is not None)
        weights = []
        for _ in range(2):
            s.final_fit(epochs=2)
            weights.append([np.array(w) for w in s.trainer.final_model.weights])
        for a, b in zip(*weights, strict=True):
            np.testing.assert_array_equal(a, b)
        assert built_inside and all(built_inside)  # the online model and both final models
    finally:
        s.close()
