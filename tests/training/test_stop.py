"""Stop from the states tests/test_trainer.py does not cover: evaluating, querying, twice at once,
through a Session, and while the REAL TensorFlow import runs. Real (tiny) training on real digits.

Already covered in tests/test_trainer.py: never started, no label yet, importing (a model_fn that
blocks like the import), training, paused, after a model_fn error, a second stop() after the first.
"stop returns within 10 s" is checked as the contract states it: ``stop(timeout=10)`` returns the
final ``stopped`` Update (not ``stopping``), which it can only do once the thread has finished.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from helpers import tiny_model_fn, wait_for

from oal_widget.config import Config
from oal_widget.messages import Labelled
from oal_widget.session.session import Session
from oal_widget.training.trainer import Trainer

SHAPE = (16, 16, 1)
LABELS = [str(d) for d in range(10)]
CFG = Config(
    input_shape=SHAPE,
    train_steps=2,
    batch_size=16,
    eval_every=3,
    query_every=3,
    min_test_labels=1,
    idle_rounds=1000,
    seed=0,
)
STOP_S = 10.0  # the bound
WAIT = 30.0  # bound for conditions on a shared 2-core box; never a timing assertion


def assert_stopped_and_saved(final, workdir: Path) -> None:
    assert final.status == "stopped", final
    assert Path(final.saved["model"]) == workdir / "model.keras" and (workdir / "model.keras").is_file()
    assert Path(final.saved["metrics"]) == workdir / "metrics.csv" and (workdir / "metrics.csv").is_file()


def held_in(state: str):
    """A model_fn whose predictions block while the trainer is in ``state``, until a command arrives.

    So the test knows the trainer is evaluating (or querying) at the moment stop() is called.
    """
    seen = threading.Event()

    def model_fn(num_classes, input_shape):
        model = tiny_model_fn(num_classes, input_shape)
        predict = model.predict_on_batch

        def slow_predict(x):
            trainer = model_fn.trainer
            if trainer.latest.status == state:
                seen.set()
                deadline = time.monotonic() + WAIT
                while trainer.inbox.empty() and time.monotonic() < deadline:
                    time.sleep(0.005)  # stands for a long evaluation / query of a big pool
            return predict(x)

        model.predict_on_batch = slow_predict
        return model

    model_fn.seen = seen
    return model_fn


@pytest.mark.parametrize("state", ["evaluating", "querying"])
def test_stop_while_evaluating_or_querying_finishes_and_saves(pool, split, tmp_path, state):
    train, test = split
    model_fn = held_in(state)
    t = Trainer(pool, LABELS, CFG, test_paths=test, workdir=tmp_path, model_fn=model_fn)
    model_fn.trainer = t
    t.start()
    for p in test[:3]:
        t.send(Labelled(p, p.split("/")[0], "test"))
    for p in train[:4]:
        t.send(Labelled(p, p.split("/")[0]))
    try:
        assert model_fn.seen.wait(WAIT), f"the trainer never reached {state}: {t.latest}"
        assert t.latest.status == state
        final = t.stop(timeout=STOP_S)
        assert_stopped_and_saved(final, tmp_path)
        assert not t.is_alive()
        assert final.metrics and final.metrics[-1]["n_train"] == 4
    finally:
        t.stop(timeout=WAIT)


def test_stop_twice_at_once_from_two_threads(pool, split, tmp_path):
    train, test = split
    t = Trainer(pool, LABELS, CFG, test_paths=test, workdir=tmp_path, model_fn=tiny_model_fn)
    t.start()
    for p in test[:3]:
        t.send(Labelled(p, p.split("/")[0], "test"))
    for p in train[:5]:
        t.send(Labelled(p, p.split("/")[0]))
    wait_for(lambda: t.latest.status == "training" and t.training_set_size == 5, "training")
    results: list = []
    barrier = threading.Barrier(2)

    def stop():
        barrier.wait(timeout=WAIT)
        results.append(t.stop(timeout=STOP_S))

    threads = [threading.Thread(target=stop) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=WAIT)
    assert len(results) == 2
    for final in results:
        assert_stopped_and_saved(final, tmp_path)
    assert results[0] is results[1]  # one final Update: the model was saved once, not twice
    assert t.stop(timeout=STOP_S) is results[0]  # and a third time, later


def test_session_stop_after_a_training_error_keeps_the_labels_and_does_not_save_a_broken_model(small_digits):
    """Real trainer: a model whose loss is NaN. Stop returns, labels stay, no NaN model.keras."""

    def nan_model_fn(num_classes, input_shape):
        import keras

        model = keras.Sequential(
            [
                keras.Input(input_shape),
                keras.layers.Flatten(),
                keras.layers.Dense(num_classes, activation="softmax"),
            ]
        )
        # Stands for a diverging model: the loss is NaN from the first step.
        model.compile(optimizer="sgd", loss=lambda y, p: keras.ops.mean(p) * float("nan"))
        return model

    session = Session(
        small_digits, ["zero", "one", "two"], model_fn=nan_model_fn, input_shape=SHAPE, train_steps=5
    )
    try:
        for _ in range(4):
            session.label(["zero", "one", "two"][int(session.current.split("/")[0])])
        wait_for(lambda: session.trainer_status == "error", "the NaN error")
        assert "loss became" in session.status and "Retry" in session.status
        saved = session.stop(timeout=STOP_S)
        assert session.trainer_status == "stopped"
        assert "model" not in saved and not (session.workdir / "model.keras").exists()
        assert len(session.labels()) == 4
        assert session.stop(timeout=STOP_S) == saved  # twice in a row
    finally:
        session.close()


IMPORTING = r"""
import json, sys, time
from oal_widget.session.session import Session

s = Session(sys.argv[1], ["zero", "one", "two"], workdir=sys.argv[2], input_shape=(16, 16, 1),
            train_steps=2, batch_size=16, test_fraction=0)
for _ in range(3):  # labelled faster than TensorFlow imports
    s.label(["zero", "one", "two"][int(s.current.split("/")[0])])
status = s.trainer_status
first = s.stop(timeout=0.5)  # the real import takes seconds: it is still running at this deadline
early = s.latest.status
s.trainer.join(120)
print(json.dumps({"status": status, "first": first, "early": early, "alive": s.trainer.is_alive(),
                  "final": s.trainer_status, "saved": s.saved(), "trained": sorted(s.trainer.trained_paths),
                  "labels": sorted(s.labels())}))
"""


def test_stop_while_really_importing_tensorflow_returns_then_saves_a_model_of_every_label(
    small_digits, tmp_path
):
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", IMPORTING, str(small_digits), str(tmp_path / "wd")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["status"] == "importing"
    assert r["early"] == "stopping" and "model" not in r["first"]  # returned at its deadline
    assert not r["alive"] and r["final"] == "stopped"
    assert Path(r["saved"]["model"]).is_file() and Path(r["saved"]["metrics"]).is_file()
    assert r["trained"] == r["labels"]  # the saved model was trained on the three labels
