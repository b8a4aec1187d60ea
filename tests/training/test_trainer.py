"""The trainer with real (tiny) TensorFlow training on real digit images.

Synchronous tests drive build/handle/train_round/evaluate/query/save directly; thread tests start
the real thread and wait on conditions with a bound (never a sleep as an assertion).
"""

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import helpers
import numpy as np
import pytest
from helpers import tiny_model_fn

from oal_widget.config import Config
from oal_widget.data.pool import ImagePool
from oal_widget.messages import Labelled, Pause, Resume, Retry, Stop, Unlabelled, Update
from oal_widget.training.trainer import Trainer

SHAPE = (16, 16, 1)
LABELS = [str(d) for d in range(10)]
CFG = Config(
    input_shape=SHAPE,
    train_steps=2,
    batch_size=16,
    eval_every=5,
    query_every=5,
    min_test_labels=1,
    idle_rounds=1000,  # thread tests: keep training until told otherwise
    seed=0,
)
WAIT = 20.0  # generous bound for conditions (2 shared cores); never a timing assertion


def answer(path):
    return path.split("/")[0]


@pytest.fixture
def make(pool, split, tmp_path):
    """Factory for trainers; every thread started here is stopped at teardown."""
    made = []

    def _make(config=CFG, model_fn=tiny_model_fn, **kw):
        kw.setdefault("workdir", tmp_path / f"wd{len(made)}")
        t = Trainer(pool, LABELS, config, test_paths=split[1], model_fn=model_fn, **kw)
        made.append(t)
        return t

    yield _make
    for t in made:
        if t.is_alive():
            t.stop(timeout=WAIT)


def wait_for(condition, trainer, timeout=WAIT, what="condition"):
    helpers.wait_for(condition, what, timeout, context=lambda: f"latest update: {trainer.latest}")


def label_all(trainer, paths, split_name="train"):
    for p in paths:
        trainer.handle(Labelled(p, answer(p), split_name))


# --- no TensorFlow before build ---------------------------------------------------------------
def test_creating_a_trainer_does_not_import_tensorflow(digits_dir, tmp_path):
    code = (
        "import sys\n"
        "from oal_widget.config import Config\n"
        "from oal_widget.data.pool import ImagePool\n"
        "from oal_widget.training.trainer import Trainer\n"
        f"pool = ImagePool({str(digits_dir)!r}, (16, 16, 1))\n"
        "names = [str(d) for d in range(10)]\n"
        f"t = Trainer(pool, names, Config(), test_paths=[], workdir={str(tmp_path)!r})\n"
        "final = t.stop(timeout=1)\n"
        "print(final.status, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["stopped", "False", "False"]


def test_duplicate_label_names_are_refused(pool, tmp_path):
    with pytest.raises(ValueError, match="label_names"):
        Trainer(pool, ["0", "0"], CFG, test_paths=[], workdir=tmp_path)


# --- the training set grows with every label ---------------------------------------------------------
def test_training_set_grows_with_every_label_and_every_round_trains_on_all(make, split):
    train, _ = split
    t = make()
    assert t.build()
    for i, p in enumerate(train[:12], start=1):
        t.handle(Labelled(p, answer(p)))
        assert t.training_set_size == i
        t.trained_paths.clear()
        assert t.train_round()
        # batch = min(batch_size=16, n): with n <= 16 every label is in every batch (replay of ALL labels)
        assert t.trained_paths == set(train[:i])
        assert t.latest.n_labels == i


def test_relabel_replaces_and_unlabelled_removes(make, split):
    train, test = split
    t = make()  # no build: handling labels needs no TensorFlow
    t.handle(Labelled(train[0], "3"))
    t.handle(Labelled(train[0], "4"))
    t.handle(Labelled(train[1], "5"))
    assert t.training_set_size == 2
    t.handle(Unlabelled(train[0]))
    assert t.training_set_size == 1
    t.handle(Labelled(test[0], answer(test[0]), "test"))
    assert (t.training_set_size, len(t.labels.test)) == (1, 1)


def test_unknown_label_publishes_an_error_and_training_goes_on(make, split):
    train, _ = split
    t = make()
    assert t.build()
    t.handle(Labelled(train[0], answer(train[0])))
    t.handle(Labelled(train[1], "not-a-digit"))
    assert t.latest.status == "error"
    assert "not-a-digit" in t.latest.message and train[1] in t.latest.message
    assert t.training_set_size == 1
    assert t.error is None  # not an error state: the model is fine
    assert t.train_round()


# --- test images are never trained on -----------------------------------------------------------
def test_test_images_never_in_a_training_batch(make, pool, split):
    train, test = split
    batches = []

    def recording_model_fn(num_classes, input_shape):
        model = tiny_model_fn(num_classes, input_shape)
        original = model.train_on_batch

        def train_on_batch(x, y=None, **kw):
            batches.append(np.array(x))
            return original(x, y, **kw)

        model.train_on_batch = train_on_batch
        return model

    t = make(model_fn=recording_model_fn)
    assert t.build()
    label_all(t, test[:10], "test")
    # A misrouted test image (sent as 'train') must still never be trained on.
    t.handle(Labelled(test[10], answer(test[10]), "train"))
    label_all(t, train[:20])
    for _ in range(5):
        assert t.train_round()
    assert batches
    assert not (t.trained_paths & set(test))
    test_arrays = {pool.array(p).tobytes() for p in test}
    trained_rows = {row.tobytes() for batch in batches for row in batch}
    assert not (trained_rows & test_arrays)
    assert t.training_set_size == 20 and len(t.labels.test) == 11


# --- evaluation: plain floats (JSON-safe), metrics.csv ----------------------------------------------
def test_evaluate_gives_plain_floats_and_writes_metrics_csv(make, split):
    train, test = split
    t = make()
    assert t.build()
    assert t.evaluate() is None  # no label yet
    assert "no evaluation label yet" in t.latest.message
    label_all(t, train[:10])
    assert t.train_round()
    early = t.evaluate()  # before any test label: the first-sight predictions of the training labels
    assert early["n_test"] == 0 and math.isnan(early["test_accuracy"])
    assert early["n_eval"] == len(t.sight.for_estimate()) == 5  # the first sights of the latest half
    label_all(t, test, "test")
    row = t.evaluate()
    from oal_widget.training.evaluation import METRICS_COLUMNS

    assert set(METRICS_COLUMNS) <= set(row)
    assert all(k.startswith(("recall:", "n:")) for k in set(row) - set(METRICS_COLUMNS))  # per class
    assert all(type(row[k]) is float for k in METRICS_COLUMNS if not k.startswith("n_"))
    assert type(row["n_labels"]) is int and row["n_train"] == 10 and row["n_test"] == len(test)
    assert row["n_labels"] == 10 + len(test)  # every label the person gave, test labels too
    assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"] and row["n_eval"] >= len(test)
    assert 0.0 <= row["accuracy"] <= 1.0 and row["loss"] > 0
    json.dumps(row)
    json.dumps([dict(m) for m in t.latest.metrics])
    assert t.latest.metrics[-1]["accuracy"] == row["accuracy"]
    lines = (t.workdir / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith(",".join(METRICS_COLUMNS) + ",recall:")  # then each class's figures
    assert len(lines) == 3 and lines[2].startswith(f"{10 + len(test)},10,{len(test)},")
    t.handle(Unlabelled(test[0], paid=True))  # shadowed by a training near-duplicate: grades nothing
    shadowed = t.evaluate()
    assert (shadowed["n_labels"], shadowed["n_test"]) == (10 + len(test), len(test) - 1)  # still given


# --- query: full paths, a permutation of the unlabelled candidates, plain floats ---------------------
def test_query_order_is_a_permutation_of_unlabelled_non_test_paths(make, pool, split):
    train, test = split
    t = make()
    assert t.build()
    label_all(t, test[:5], "test")
    label_all(t, train[:15])
    assert t.train_round()
    update = t.query()
    assert isinstance(update, Update) and update is t.latest
    expected = set(pool.paths) - set(train[:15]) - set(test)
    assert len(update.order) == len(set(update.order)) == len(expected)
    assert set(update.order) == expected
    assert all("/" in p and (pool.root / p).is_file() for p in update.order)  # full relative paths
    # Predictions also cover the unlabelled test images (the panel shows them), not labelled ones.
    assert set(update.predictions) == expected | (set(test) - set(test[:5]))
    for name, conf in update.predictions.values():
        assert name in LABELS and type(conf) is float and 0.0 <= conf <= 1.0
    json.dumps({p: list(v) for p, v in update.predictions.items()})


def test_query_is_deterministic_for_a_seed(make, split):
    train, _ = split
    orders = []
    for _ in range(2):
        import keras

        keras.utils.set_random_seed(0)
        t = make(config=CFG.replace(strategy="random"))
        assert t.build()
        label_all(t, train[:5])
        orders.append(t.query().order)
    assert orders[0] == orders[1]


def test_undecodable_image_is_dropped_from_training_not_a_crash(small_digits, tmp_path):
    bad = small_digits / "1" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    pool = ImagePool(small_digits, SHAPE)
    paths = [p for p in pool.paths if p != "1/broken.png"]
    t = Trainer(pool, ["0", "1", "2"], CFG, test_paths=[], workdir=tmp_path / "wd", model_fn=tiny_model_fn)
    assert t.build()
    label_all(t, paths[:4] + ["1/broken.png"])
    assert t.training_set_size == 5
    assert t.train_round()
    assert t.training_set_size == 4
    assert t.error is None
    assert any(s.path == "1/broken.png" for s in pool.skipped)


# --- model_fn errors, NaN, Retry -----------------------------------------------------------------
def _uncompiled(num_classes, input_shape):
    import keras

    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(num_classes)]
    )


def _wrong_size(num_classes, input_shape):
    return tiny_model_fn(num_classes + 1, input_shape)


def _raises(num_classes, input_shape):
    raise ValueError("no backbone weights at /nowhere")


@pytest.mark.parametrize("broken", [_raises, _uncompiled, _wrong_size], ids=["raises", "uncompiled", "size"])
def test_model_fn_errors_are_published_labels_kept_and_retry_recovers(make, split, broken):
    train, _ = split
    state = {"fn": broken}

    def model_fn(num_classes, input_shape):
        return state["fn"](num_classes, input_shape)

    t = make(model_fn=model_fn)
    label_all(t, train[:3])
    assert t.build() is False
    assert t.latest.status == "error" and t.error == t.latest.message
    assert "model_fn" in t.latest.message and "Retry" in t.latest.message
    if broken is _raises:
        assert "ValueError: no backbone weights at /nowhere" in t.latest.message
    assert t.model is None and t.train_round() is False
    t.handle(Labelled(train[3], answer(train[3])))  # labelling goes on in the error state
    assert t.training_set_size == 4
    state["fn"] = tiny_model_fn
    t.handle(Retry())
    assert t.error is None and t.latest.status == "training"
    assert t.train_round()


def test_nan_loss_is_an_error_update(make, split):
    train, _ = split

    def nan_model_fn(num_classes, input_shape):
        import keras

        model = tiny_model_fn(num_classes, input_shape)
        model.compile(optimizer="sgd", loss=lambda y, p: keras.ops.mean(p) * float("nan"))
        return model

    t = make(model_fn=nan_model_fn)
    assert t.build()
    label_all(t, train[:4])
    assert t.train_round() is False
    assert t.latest.status == "error"
    assert "nan" in t.latest.message.lower() and "Retry" in t.latest.message
    assert t.training_set_size == 4
    final = t.stop()
    assert final.status == "stopped" and "model" not in final.saved  # a NaN model is never saved


# --- save, resume -------------------------------------------------------------------------------
def test_save_is_atomic_and_resume_continues_from_the_saved_model(make, split):
    train, test = split
    t = make()
    assert t.build()
    label_all(t, train[:10])
    label_all(t, test[:5], "test")
    assert t.train_round()
    t.evaluate()
    saved = t.save()
    assert set(saved) == {"model", "metrics", "first_sight"}
    assert sorted(p.name for p in t.workdir.iterdir()) == ["first_sight.npz", "metrics.csv", "model.keras"]

    resumed = make(resume_model=saved["model"], workdir=t.workdir)
    assert resumed.build()
    assert "continuing from" in resumed.latest.message
    assert resumed.history == t.history and len(resumed.history) == 1  # the curve goes on
    for a, b in zip(t.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    label_all(resumed, train[:10])
    assert resumed.train_round()

    # A saved model for other classes does not fit: a fresh model, and the message says why.
    other = Trainer(
        t.pool,
        LABELS[:3],
        CFG,
        test_paths=[],
        workdir=t.workdir,
        model_fn=tiny_model_fn,
        resume_model=saved["model"],
    )
    assert other.build()
    assert "could not continue" in other.latest.message
    assert other.model.output_shape[-1] == 3
    assert other.first_sight == {}, "first_sight.npz of other labels is ignored"


def test_a_continued_trainer_keeps_first_sight_and_never_rescores_labels_it_has_learnt(make, split, caplog):
    """First sight is a prediction BEFORE the model learnt the label. A continued model has learnt the
    stored labels handed over at start, so they are not scored again (in-sample, they would hide the
    likely mistakes and make the estimate overconfident); the earlier session's scores come back."""
    train, _ = split
    t = make()
    assert t.build()
    label_all(t, train[:8])
    assert t.train_round()
    seen = {p: v.copy() for p, v in t.first_sight.items()}
    assert len(seen) == 8 and len(t.sight.recent()) == 8
    saved = t.save()

    resumed = make(resume_model=saved["model"], workdir=t.workdir)
    assert resumed.build() and "continuing from" in resumed.latest.message
    for p in train[:9]:  # as the session hands over its stored labels at start; the 9th came meanwhile
        resumed.handle(Labelled(p, answer(p), fresh=False))
    assert set(resumed.first_sight) == set(seen) | {train[8]}, "only the label the model never saw"
    for p, v in seen.items():
        np.testing.assert_array_equal(resumed.first_sight[p], v)
    assert len(resumed.sight.recent()) == 9, "the estimate's calibration has them too"
    assert resumed.train_round()
    resumed.handle(Unlabelled(train[0]))  # undone and labelled again in the next session: still seen
    resumed.handle(Labelled(train[0], answer(train[0])))
    np.testing.assert_array_equal(resumed.first_sight[train[0]], seen[train[0]])
    label_all(resumed, train[9:10])  # a new label is scored, after the earlier ones
    assert list(resumed.first_sight)[-1] == train[9] and len(resumed.first_sight) == 10

    # A damaged file costs the queue only, and the warning names it.
    (t.workdir / "first_sight.npz").write_bytes(b"not a zip")
    damaged = make(resume_model=saved["model"], workdir=t.workdir)
    with caplog.at_level("WARNING"):
        assert damaged.build() and damaged.first_sight == {}
    assert "first_sight.npz" in caplog.text


def test_an_undone_label_given_again_keeps_its_first_sight(make, split):
    """Undo, then the same image labelled again (a grid page undone and stored again): the model has
    trained on it, so its view now is no first sight; the one from before stays."""
    train, _ = split
    t = make()
    assert t.build()
    label_all(t, train[:6])
    assert t.train_round() and train[0] in t.trained_paths
    before = t.first_sight[train[0]].copy()
    t.handle(Unlabelled(train[0]))
    t.handle(Labelled(train[0], answer(train[0])))
    np.testing.assert_array_equal(t.first_sight[train[0]], before)


# --- early stopping -------------------------------------------------------------------------------
def test_threshold_below_min_test_labels_does_not_stop(make, split):
    train, test = split
    t = make(config=CFG.replace(early_stopping={"accuracy": (None, 0.0)}, min_test_labels=100))
    assert t.build()
    label_all(t, train[:5])
    label_all(t, test, "test")
    assert t.train_round()
    t.evaluate()
    assert t.stop_reason is None


def test_early_stopping_threshold_stops_and_saves(make, split):
    train, test = split
    # accuracy >= 0.0 always holds: the first evaluation with a labelled test image stops.
    t = make(config=CFG.replace(early_stopping={"accuracy": (None, 0.0)}))
    t.start()
    for p in test[:3]:
        t.send(Labelled(p, answer(p), "test"))
    for p in train[:5]:
        t.send(Labelled(p, answer(p)))
    t.join(WAIT)
    assert not t.is_alive()
    assert t.latest.status == "stopped"
    assert t.latest.message.startswith("accuracy ") and ">= 0.0" in t.latest.message
    assert Path(t.latest.saved["model"]).is_file() and Path(t.latest.saved["metrics"]).is_file()


# --- stop from every state, in bounded time ------------------------------------------------------------
def _assert_saved(final, with_model=True):
    assert final.status == "stopped"
    if with_model:
        assert Path(final.saved["model"]).name == "model.keras" and Path(final.saved["model"]).is_file()
        assert Path(final.saved["metrics"]).name == "metrics.csv" and Path(final.saved["metrics"]).is_file()
    else:
        assert "model" not in final.saved


def test_stop_never_started(make):
    t = make()
    final = t.stop(timeout=1)
    _assert_saved(final, with_model=False)
    assert t.stop(timeout=1) is final  # twice


def test_stop_never_started_after_a_synchronous_build_saves(make, split):
    t = make()
    assert t.build()
    label_all(t, split[0][:3])
    assert t.train_round()
    _assert_saved(t.stop(timeout=5))


def test_stop_before_any_label(make):
    t = make()
    t.start()
    wait_for(lambda: t.latest.status == "waiting" and t.model is not None, t, what="waiting")
    final = t.stop(timeout=WAIT)
    _assert_saved(final)
    assert not t.is_alive()
    assert t.stop(timeout=1).status == "stopped"  # twice


def test_stop_while_training_evaluates_and_saves(make, split):
    train, test = split
    t = make()
    t.start()
    for p in test[:5]:
        t.send(Labelled(p, answer(p), "test"))
    for p in train[:8]:
        t.send(Labelled(p, answer(p)))
    wait_for(lambda: t.latest.status == "training" and t.training_set_size == 8, t, what="training")
    final = t.stop(timeout=WAIT)
    _assert_saved(final)
    assert not t.is_alive()
    assert final.metrics and final.metrics[-1]["n_train"] == 8  # the final evaluation
    assert (t.workdir / "metrics.csv").read_text().count("\n") == len(final.metrics) + 1


def test_stop_while_paused_and_pause_is_honoured(make, split):
    train, _ = split
    steps = []

    def counting_model_fn(num_classes, input_shape):
        model = tiny_model_fn(num_classes, input_shape)
        original = model.train_on_batch
        model.train_on_batch = lambda *a, **kw: (steps.append(1), original(*a, **kw))[1]
        return model

    t = make(model_fn=counting_model_fn)
    t.start()
    for p in train[:5]:
        t.send(Labelled(p, answer(p)))
    wait_for(lambda: len(steps) >= 3, t, what="training steps")
    t.send(Pause())
    wait_for(lambda: t.latest.status == "paused", t, what="paused")
    before = len(steps)
    # Labels are still received while paused; once this one is in, the loop has turned: no new step.
    t.send(Labelled(train[5], answer(train[5])))
    wait_for(lambda: t.training_set_size == 6, t, what="label while paused")
    assert len(steps) == before
    assert t.latest.status == "paused"
    t.send(Resume())
    wait_for(lambda: len(steps) > before, t, what="training after resume")
    t.send(Pause())
    wait_for(lambda: t.latest.status == "paused", t, what="paused again")
    _assert_saved(t.stop(timeout=WAIT))


def test_stop_after_a_model_fn_error(make, split):
    t = make(model_fn=_raises)
    t.start()
    t.send(Labelled(split[0][0], answer(split[0][0])))
    wait_for(lambda: t.latest.status == "error", t, what="error")
    final = t.stop(timeout=WAIT)
    _assert_saved(final, with_model=False)
    assert not t.is_alive()
    assert t.stop(timeout=1) is final


def test_stop_while_importing_returns_at_the_deadline_then_saves(make, split):
    release = threading.Event()

    def slow_model_fn(num_classes, input_shape):
        release.wait(WAIT)  # stands for a long TensorFlow import / model build
        return tiny_model_fn(num_classes, input_shape)

    t = make(model_fn=slow_model_fn)
    t.start()
    wait_for(lambda: t.latest.status == "importing", t, what="importing")
    early = t.stop(timeout=0.3)
    assert early.status == "stopping" and "save" in early.message
    release.set()
    t.join(WAIT)
    assert not t.is_alive()
    _assert_saved(t.latest)
    assert t.stop(timeout=1).status == "stopped"


# --- robustness of the thread ---------------------------------------------------------------------
def test_broken_on_update_does_not_kill_training(make, split):
    train, test = split
    calls = []

    def on_update(update):
        calls.append(update.status)
        raise RuntimeError("panel bug")

    t = make(on_update=on_update)
    t.start()
    for p in test[:5]:
        t.send(Labelled(p, answer(p), "test"))
    for p in train[:5]:
        t.send(Labelled(p, answer(p)))
    wait_for(lambda: len(t.latest.metrics) == 1, t, what="first evaluation")
    for p in train[5:10]:
        t.send(Labelled(p, answer(p)))
    wait_for(lambda: len(t.latest.metrics) == 2, t, what="second evaluation")
    assert t.latest.metrics[-1]["n_train"] == 10
    assert t.is_alive() and "training" in calls and "evaluating" in calls
    _assert_saved(t.stop(timeout=WAIT))


def test_thread_publishes_queries_and_updates_queue(make, pool, split):
    train, test = split
    t = make()
    t.start()
    for p in test[:5]:
        t.send(Labelled(p, answer(p), "test"))
    for p in train[:5]:
        t.send(Labelled(p, answer(p)))
    seen = []
    deadline = time.monotonic() + WAIT
    # A query's order carries predictions (the cold-start order after the build does not).
    while not any(u.order is not None and u.predictions for u in seen) and time.monotonic() < deadline:
        try:
            seen.append(t.updates.get(timeout=0.1))
        except Exception:
            pass
    with_order = [u for u in seen if u.order is not None and u.predictions]
    assert with_order, f"no query published; statuses {[u.status for u in seen]}"
    assert set(with_order[0].order) == set(pool.paths) - set(train[:5]) - set(test)
    assert seen[0].status == "importing"
    assert {"training", "evaluating", "querying"} <= {u.status for u in seen}


def test_unexpected_exception_in_the_loop_is_published_and_stop_still_works(pool, split, tmp_path):
    train, _ = split

    class BrokenPool:
        paths = pool.paths

        def arrays(self, paths):
            raise RuntimeError("disk gone")

    t = Trainer(BrokenPool(), LABELS, CFG, test_paths=split[1], workdir=tmp_path, model_fn=tiny_model_fn)
    t.start()
    t.send(Labelled(train[0], answer(train[0])))
    wait_for(lambda: t.latest.status == "error", t, what="error")
    assert "RuntimeError: disk gone" in t.latest.message
    assert t.is_alive()
    t.send(Stop("done"))
    t.join(WAIT)
    assert t.latest.status == "stopped" and t.latest.message.startswith("done")


def test_retry_with_a_fixed_model_fn_builds_with_it_not_the_saved_model(pool, split, tmp_path):
    """A Retry after an error uses the fixed function even when a model.keras from an earlier
    session exists (which the first build continued from)."""
    from helpers import tiny_model_fn

    first = Trainer(pool, LABELS, CFG, test_paths=split[1], workdir=tmp_path, model_fn=tiny_model_fn)
    assert first.build()
    first.save()
    resumed = Trainer(
        pool, LABELS, CFG, test_paths=split[1], workdir=tmp_path, resume_model=tmp_path / "model.keras"
    )
    assert resumed.build() and "continuing from" in resumed.latest.message
    built = []

    def fixed(num_classes, input_shape):
        built.append(input_shape)
        return tiny_model_fn(num_classes, input_shape)

    resumed.handle(Retry(model_fn=fixed))
    assert built == [CFG.input_shape] and resumed.error is None
    assert "continuing from" not in resumed.latest.message
