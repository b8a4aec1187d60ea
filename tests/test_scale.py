"""Performance features with real (tiny) TensorFlow: subsampled queries, new labels in the next step,
label-to-model latency, and training under a user's tf.distribute strategy (two logical CPUs)."""

import json
import subprocess
import sys
import textwrap
import time

from helpers import tiny_model_fn

from oal_widget.config import Config
from oal_widget.messages import Labelled
from oal_widget.training.trainer import Trainer

SHAPE = (16, 16, 1)
LABELS = [str(d) for d in range(10)]
WAIT = 30.0  # bound for conditions on a shared 2-core box; never a timing assertion


def _trainer(pool, split, tmp_path, **settings):
    config = Config(input_shape=SHAPE, train_steps=1, batch_size=4, min_test_labels=1, seed=0, **settings)
    return Trainer(pool, LABELS, config, test_paths=split[1], workdir=tmp_path, model_fn=tiny_model_fn)


def test_query_scores_a_bounded_fresh_sample_and_orders_every_candidate(pool, split, tmp_path):
    train, test = split
    trainer = _trainer(pool, split, tmp_path, query_sample=20)
    assert trainer.build()
    for path in train[:10]:
        trainer.handle(Labelled(path, path.split("/")[0], "train"))
    trainer.train_round()
    candidates = set(train[10:])
    first = trainer.query()
    assert sorted(first.order) == sorted(candidates)  # still a permutation of every candidate
    scored_first = {p for p in first.predictions if p in candidates}
    assert len(scored_first) == 20
    # The scored sample comes first; the unscored rest follows.
    assert set(first.order[:20]) == scored_first
    test_predicted = {p for p in first.predictions if p in set(test)}
    assert len(test_predicted) == 2  # a tenth of the sample: test images only need a prediction shown
    second = trainer.query()
    scored_second = {p for p in second.predictions if p in candidates}
    assert len(scored_second) == 20 and scored_second != scored_first  # a fresh sample each query


def test_query_sample_zero_scores_the_whole_pool(pool, split, tmp_path):
    train, test = split
    trainer = _trainer(pool, split, tmp_path, query_sample=0)
    assert trainer.build()
    trainer.handle(Labelled(train[0], train[0].split("/")[0], "train"))
    trainer.train_round()
    update = trainer.query()
    assert set(update.predictions) == set(train[1:]) | set(test)


def test_a_new_label_is_in_the_very_next_training_step(pool, split, tmp_path):
    train, _ = split
    trainer = _trainer(pool, split, tmp_path)  # batch of 4 drawn from 60 labels: chance alone would miss
    assert trainer.build()
    for path in train[:60]:
        trainer.handle(Labelled(path, path.split("/")[0], "train"))
    for _ in range(15):  # every earlier label has been trained on (4 new ones per step)
        trainer.train_round()
    assert set(train[:60]) <= trainer.trained_paths
    for new in train[60:70]:
        trainer.handle(Labelled(new, new.split("/")[0], "train"))
        trainer.train_round()
        assert new in trainer.trained_paths


def test_label_to_model_latency_is_measured_from_send_to_the_first_step(pool, split, tmp_path):
    train, _ = split
    trainer = _trainer(pool, split, tmp_path, idle_rounds=1000)
    trainer.send(Labelled(train[0], train[0].split("/")[0], "train"))  # no send time (start-up): not measured
    trainer.start()
    try:
        deadline = time.monotonic() + 60
        while trainer.model is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert trainer.model is not None, trainer.latest
        for path in train[1:4]:  # the sender stamps the time: the message carries it
            trainer.send(Labelled(path, path.split("/")[0], "train", sent_at=time.monotonic()))
        deadline = time.monotonic() + WAIT
        while len(trainer.label_latency) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        measured = list(trainer.label_latency)
        assert [p for p, _ in measured] == train[1:4]
        assert all(s > 0 for _, s in measured)
    finally:
        trainer.stop(timeout=WAIT)


DISTRIBUTED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    # Must happen before TensorFlow initialises its devices: hence this subprocess.
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from oal_widget.config import Config
    from oal_widget.messages import Labelled
    from oal_widget.training.models import reload_model
    from oal_widget.data.pool import ImagePool, split_test
    from oal_widget.training.trainer import Trainer

    images, workdir = sys.argv[1], sys.argv[2]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    pool = ImagePool(images, (16, 16, 1))
    test = split_test(pool.paths, 0.2, 0)
    train = [p for p in pool.paths if p not in set(test)]
    config = Config(input_shape=(16, 16, 1), batch_size=5, train_steps=3, min_test_labels=1,
                    distribute=strategy, query_sample=0)
    trainer = Trainer(pool, [str(d) for d in range(10)], config, test_paths=test, workdir=workdir)
    assert trainer.build(), trainer.error
    # One label first: a batch of 1 leaves a replica empty, which Keras cannot train on unpadded.
    trainer.handle(Labelled(train[0], train[0].split("/")[0], "train"))
    rounds = [trainer.train_round()]
    for p in train[1:7] + test[:6]:  # then 7 labels in batches of 5: odd sizes are padded too
        trainer.handle(Labelled(p, p.split("/")[0], "test" if p in test else "train"))
    rounds += [trainer.train_round() for _ in range(2)]
    row = trainer.evaluate()
    update = trainer.query()
    saved = trainer.save()
    reloaded = reload_model(saved["model"])
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "model_strategy": type(trainer.model.distribute_strategy).__name__,
        "variable": type(trainer.model.trainable_weights[0].value).__name__,
        "rounds": rounds, "error": trainer.error, "accuracy": row["accuracy"], "n_test": row["n_test"],
        "order": len(update.order), "candidates": len(train) - 7,
        "predicted": len(update.predictions), "unlabelled": len(pool.paths) - 13,
        "reloaded_output": list(reloaded.output_shape),
    }))
    """
)


def test_trains_under_a_mirrored_strategy_on_two_logical_cpus(digits_dir, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", DISTRIBUTED, str(digits_dir), str(tmp_path / "wd")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["replicas"] == 2
    assert result["model_strategy"] == "MirroredStrategy"
    assert result["variable"] == "MirroredVariable"
    assert result["rounds"] == [True, True, True] and result["error"] is None
    assert result["n_test"] == 6 and 0 <= result["accuracy"] <= 1
    assert result["order"] == result["candidates"]
    assert result["predicted"] == result["unlabelled"]  # one prediction per image, not one per replica
    assert result["reloaded_output"] == [None, 10]
