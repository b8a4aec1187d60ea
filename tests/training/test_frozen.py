"""Frozen-backbone mode and progress of long work, with real (tiny) TensorFlow.

The head over cached embeddings must BE the full model's head (same weights), embeddings are
computed once per image (also across sessions), the saved model is the full model, and long work
(embedding, caching) reaches the panel and ``simulate`` as progress.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fake_trainer import Factory  # noqa: E402
from helpers import settle, wait_for
from PIL import Image

from oal_widget.config import Config
from oal_widget.data.pool import ImagePool, split_test
from oal_widget.messages import Labelled, Update
from oal_widget.training.trainer import Trainer

SHAPE = (16, 16, 1)
LABELS = [str(d) for d in range(10)]
CFG = Config(
    input_shape=SHAPE, train_steps=5, batch_size=16, eval_every=5, query_every=5, min_test_labels=1, seed=0
)
WAIT = 30.0  # bound for conditions on 2 shared cores; never a timing assertion


def frozen_model_fn(num_classes, input_shape, seed=1):
    """The shape of transfer_model_fn at test size: a frozen random projection named "embedding"
    (seeded: the same weights in every session), Dropout, a trainable softmax."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    init = keras.initializers.GlorotUniform(seed=seed)
    x = keras.layers.Dense(64, activation="relu", kernel_initializer=init, trainable=False, name="embedding")(
        x
    )
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    return model


def make_trainer(root, workdir, model_fn=frozen_model_fn, config=CFG, **kw) -> Trainer:
    pool = ImagePool(root, config.input_shape)
    pool.use_disk_cache(Path(workdir) / "cache")
    test = split_test(pool.paths, config.test_fraction, config.seed)
    return Trainer(pool, LABELS, config, test_paths=test, workdir=workdir, model_fn=model_fn, **kw)


def label_some(trainer: Trainer, every: int = 2) -> None:
    """Label the test split and every ``every``-th training image (oracle: the folder), a round each."""
    for p in sorted(trainer.test_paths):
        trainer.handle(Labelled(p, p.split("/")[0], "test"))
    train = [p for p in trainer.pool.paths if p not in trainer.test_paths]
    for p in train[::every]:
        trainer.handle(Labelled(p, p.split("/")[0]))
        trainer.train_round()


def images(root, n=32) -> np.ndarray:
    pool = ImagePool(root, SHAPE)
    return pool.arrays(pool.paths[:n])[0]


# --- the split ------------------------------------------------------------------------------------
def test_frozen_reason_says_why_a_model_does_not_qualify():
    import keras

    from oal_widget.training import frozen as embeddings
    from oal_widget.training.models import default_model_fn

    assert embeddings.frozen_reason(frozen_model_fn(3, SHAPE)) is None
    assert "trainable weights" in embeddings.frozen_reason(default_model_fn(3, SHAPE))
    inputs = keras.Input(SHAPE)
    x = keras.layers.Dropout(0.5)(keras.layers.Flatten()(inputs))
    x = keras.layers.Dense(8, trainable=False, name="embedding")(x)
    noisy = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    assert "random while training" in embeddings.frozen_reason(noisy)
    plain = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))
    assert "no layer named 'embedding'" in embeddings.frozen_reason(plain)
    with pytest.raises(ValueError, match="frozen-backbone mode.*trainable weights"):
        embeddings.split(default_model_fn(3, SHAPE))


def test_training_the_head_trains_the_full_model(digits_dir):
    from oal_widget.training import frozen as embeddings

    model = frozen_model_fn(10, SHAPE)
    backbone, head = embeddings.split(model)
    assert [id(w) for w in head.trainable_weights] == [id(w) for w in model.trainable_weights]
    X = images(digits_dir)
    y = np.arange(len(X)) % 10
    before = np.asarray(model.predict_on_batch(X))
    E = np.asarray(backbone.predict_on_batch(X))
    for _ in range(5):
        head.train_on_batch(E, y)
    after = np.asarray(model.predict_on_batch(X))
    assert np.abs(after - before).max() > 1e-3  # the full model changed...
    np.testing.assert_allclose(after, np.asarray(head.predict_on_batch(E)), atol=1e-6)  # ...exactly so


# --- the trainer ----------------------------------------------------------------------------------
def test_trainer_learns_on_cached_embeddings_and_a_restart_embeds_nothing(digits_dir, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    trainer = make_trainer(digits_dir, tmp_path)
    assert trainer.build()
    assert trainer.frozen_backbone
    assert "frozen backbone" in trainer.latest.message
    label_some(trainer)
    row = trainer.evaluate()
    assert row["n_test"] == len(trainer.test_paths) and row["accuracy"] >= 0.5  # chance: 0.1
    update = trainer.query()
    assert sorted(update.order) == sorted(
        p for p in trainer.pool.paths if p not in trainer.test_paths and p not in trainer.labels.train
    )
    steps = []
    while (work := trainer.prefill_step()) is not None:
        steps.append(work)
    n = len(trainer.pool.paths)
    # Every image embedded exactly once over training, evaluation, query and the idle prefill.
    assert trainer.learner.frozen.embeddings.computed == n
    assert trainer.learner.frozen.embeddings.cache.filled() == n
    assert ("embedding images", n, n) in steps and steps[-1] == ("indexing images", n, n)
    # The full model's predictions equal the head's over the cached (float16) embeddings.
    X = images(digits_dir, 20)
    E, _ = trainer.learner.frozen.embeddings.vectors(trainer.pool.paths[:20])
    np.testing.assert_allclose(
        np.asarray(trainer.model.predict_on_batch(X)),
        np.asarray(trainer.learner.head().predict_on_batch(E)),
        atol=1e-2,
    )

    again = make_trainer(digits_dir, tmp_path)  # a new session: new pool, new model, same workdir
    assert again.build() and again.frozen_backbone
    label_some(again, every=3)
    again.evaluate()
    again.query()
    while again.prefill_step() is not None:
        pass
    assert again.learner.frozen.embeddings.computed == 0
    assert len(list((tmp_path / "cache").glob("embeddings-*.data"))) == 1


def test_an_edited_image_or_other_backbone_weights_are_embedded_again(small_digits, tmp_path):
    first = make_trainer(small_digits, tmp_path)
    assert first.build()
    while first.prefill_step() is not None:
        pass
    n = len(first.pool.paths)
    assert first.learner.frozen.embeddings.computed == n
    edited = small_digits / first.pool.paths[0]
    Image.fromarray(np.full((16, 16), 200, dtype=np.uint8)).save(edited)

    second = make_trainer(small_digits, tmp_path)
    assert second.build()
    while second.prefill_step() is not None:
        pass
    assert second.learner.frozen.embeddings.computed == 1  # only the edited file

    other = make_trainer(small_digits, tmp_path, model_fn=lambda k, s: frozen_model_fn(k, s, seed=2))
    assert other.build()
    while other.prefill_step() is not None:
        pass
    assert other.learner.frozen.embeddings.computed == n  # other weights: other embeddings
    assert len(list((tmp_path / "cache").glob("embeddings-*.data"))) == 1  # the stale file is gone


def test_saved_model_is_the_full_transfer_model_and_resumes_without_embedding_again(small_digits, tmp_path):
    import keras

    from oal_widget.training import frozen as embeddings
    from oal_widget.training.models import reload_model, transfer_model_fn

    weights = tmp_path / "mobilenet_v2.weights.h5"
    keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35
    ).save_weights(weights)
    config = CFG.replace(input_shape=(32, 32, 1), train_steps=2)
    trainer = make_trainer(small_digits, tmp_path / "wd", model_fn=transfer_model_fn(weights), config=config)
    assert trainer.build() and trainer.frozen_backbone
    label_some(trainer)
    while trainer.prefill_step() is not None:
        pass
    saved = trainer.save()
    X = trainer.pool.arrays(trainer.pool.paths)[0]
    model = reload_model(saved["model"])
    assert model.input_shape == (None, 32, 32, 1) and model.output_shape == (None, 10)
    assert embeddings.frozen_reason(model) is None
    np.testing.assert_allclose(model.predict_on_batch(X), trainer.model.predict_on_batch(X), atol=1e-5)

    resumed = make_trainer(
        small_digits,
        tmp_path / "wd",
        model_fn=transfer_model_fn(weights),
        config=config,
        resume_model=saved["model"],
    )
    assert resumed.build() and resumed.frozen_backbone
    assert "continuing from" in resumed.latest.message
    resumed.evaluate()
    resumed.query()
    assert resumed.learner.frozen.embeddings.computed == 0


def test_frozen_backbone_setting_true_and_false(digits_dir, tmp_path):
    from oal_widget.training.models import default_model_fn

    required = make_trainer(
        digits_dir, tmp_path / "a", model_fn=default_model_fn, config=CFG.replace(frozen_backbone=True)
    )
    assert not required.build()
    assert "frozen_backbone=True" in required.error and "trainable weights" in required.error
    assert "Labels are kept" in required.error

    off = make_trainer(digits_dir, tmp_path / "b", config=CFG.replace(frozen_backbone=False))
    assert off.build() and not off.frozen_backbone
    label_some(off, every=8)
    assert off.trained_paths and off.learner.frozen.embeddings is None
    with pytest.raises(ValueError, match="frozen_backbone"):
        Config(frozen_backbone="yes")


def test_idle_trainer_thread_embeds_the_pool_with_progress_then_trains_on_new_labels(digits_dir, tmp_path):
    updates: list[Update] = []
    lock = threading.Lock()

    def keep(update):
        with lock:
            updates.append(update)

    trainer = make_trainer(digits_dir, tmp_path, config=CFG.replace(idle_rounds=2), on_update=keep)
    n = len(trainer.pool.paths)
    trainer.start()
    try:

        def embedded():
            with lock:
                return any(u.work == ("embedding images", n, n) for u in updates)

        wait_for(lambda: embedded() or trainer.error)
        assert trainer.error is None
        with lock:
            work = [u.work for u in updates if u.work is not None and u.work[0] == "embedding images"]
        assert [w[1] for w in work] == sorted(w[1] for w in work)  # done only grows
        assert all(w[2] == n for w in work)
        train = [p for p in trainer.pool.paths if p not in trainer.test_paths][:3]
        for p in train:
            trainer.send(Labelled(p, p.split("/")[0], sent_at=time.monotonic()))
        wait_for(lambda: len(trainer.label_latency) == 3 or trainer.error)
        assert {p for p, _ in trainer.label_latency} == set(train)
    finally:
        final = trainer.stop(timeout=WAIT)
    assert final.status == "stopped" and "model" in final.saved
    assert trainer.learner.frozen.embeddings.computed == n


def test_idle_trainer_decodes_the_pool_into_the_disk_cache_without_frozen_backbone(digits_dir, tmp_path):
    from oal_widget.training.models import default_model_fn

    trainer = make_trainer(digits_dir, tmp_path, model_fn=default_model_fn)
    assert trainer.build() and not trainer.frozen_backbone
    steps = []
    while (work := trainer.prefill_step()) is not None:
        steps.append(work)
    n = len(trainer.pool.paths)
    assert ("caching images", n, n) in steps  # then the pool's representation is learned (if on)
    assert steps[-1] == ("indexing images", n, n)  # then every image's features, for "more like this"
    assert trainer.pool.disk_cache.filled() == n


# --- progress in the session, the panel and simulate ----------------------------------------------
def test_panel_shows_work_progress_only_while_it_runs(small_digits):
    from oal_widget import Annotator

    factory = Factory()
    annotator = Annotator(small_digits, ["0", "1", "2"], trainer_factory=factory, input_shape=SHAPE)
    try:
        box = annotator.labelling.work
        assert "oal-work-progress" in box._dom_classes
        assert box.layout.display == "none"
        factory.last.publish(Update(status="waiting", work=("embedding images", 1200, 5000)))
        settle(annotator)
        assert box.layout.display != "none"
        assert annotator.labelling.work_bar.value == 1200 and annotator.labelling.work_bar.max == 5000
        assert annotator.labelling.work_text.value == "embedding images 1200 / 5000"
        factory.last.publish(Update(status="training", n_labels=1))  # says nothing about the work
        settle(annotator)
        assert box.layout.display != "none" and annotator.session.work == ("embedding images", 1200, 5000)
        factory.last.publish(Update(status="waiting", work=("embedding images", 5000, 5000)))
        settle(annotator)
        assert box.layout.display == "none" and annotator.session.work is None
        factory.last.publish(Update(status="waiting", work=("caching images", 3, 24)))
        settle(annotator)
        assert box.layout.display != "none"
    finally:
        annotator.session.close()
    assert annotator.session.work is None  # stopped: nothing is running any more


def test_simulate_prints_plain_progress_lines_for_long_work(digits_dir, capsys):
    from oal_widget.simulate import simulate

    lines: list[str] = []
    simulate(
        digits_dir,
        budget=10,
        input_shape=SHAPE,
        model_fn=frozen_model_fn,
        progress=lines.append,
        train_steps=2,
    )
    work = [m for line in lines if (m := re.fullmatch(r"embedding images (\d+)/(\d+)", line))]
    assert work, lines
    assert work[-1].group(1) == work[-1].group(2)  # it ended
    simulate(digits_dir, budget=5, input_shape=SHAPE, model_fn=frozen_model_fn, progress=None, train_steps=2)
    assert capsys.readouterr().out == ""
