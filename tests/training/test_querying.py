"""Queries in the trainer: cold start, MC dropout and embeddings for BALD / k-center (from the cached
embeddings in frozen-backbone mode), and the bandit credited per draw on the same images. Real (tiny)
TensorFlow training on real digit images."""

import numpy as np
import pytest

from oal_widget.config import Config
from oal_widget.messages import Labelled
from oal_widget.training.trainer import Trainer

SHAPE = (16, 16, 1)
LABELS = [str(d) for d in range(10)]
CFG = Config(input_shape=SHAPE, train_steps=2, batch_size=16, eval_every=5, query_every=5, min_test_labels=1)


def make(pool, split, tmp_path, model_fn=None, **settings):
    return Trainer(
        pool, LABELS, CFG.replace(**settings), test_paths=split[1], workdir=tmp_path, model_fn=model_fn
    )


def give(trainer, paths, split_name="train"):
    for p in paths:
        trainer.handle(Labelled(p, p.split("/")[0], split_name))


def by_class(paths, classes, n):
    return [p for c in classes for p in [q for q in paths if q.split("/")[0] == c][:n]]


# --- without TensorFlow: the bookkeeping ------------------------------------------------------------
def test_cold_start_is_random_until_every_class_has_its_labels(pool, split, tmp_path):
    trainer = make(pool, split, tmp_path, strategy="margin", cold_start=1)
    give(trainer, by_class(split[0], LABELS[:9], 1))  # class 9 still missing
    assert trainer.querier.in_cold_start(trainer.labels)
    give(trainer, by_class(split[0], ["9"], 1))
    assert not trainer.querier.in_cold_start(trainer.labels)
    # A class nobody labels cannot keep the session random for ever: the cap is 3 x cold_start x classes.
    capped = make(pool, split, tmp_path / "c", strategy="margin", cold_start=1)
    give(capped, by_class(split[0], LABELS[:9], 4))
    assert not capped.querier.in_cold_start(capped.labels)


def test_the_first_order_leads_with_typical_images_of_most_classes(pool, split, tmp_path):
    """TypiClust needs no model: the order is published before TensorFlow has trained anything."""
    trainer = make(pool, split, tmp_path, typical_start=10)
    update = trainer.first_order()
    assert sorted(update.order) == sorted(split[0]) and not update.predictions
    first = update.order[:10]
    assert list(first) == trainer.querier.typical
    assert len({p.split("/")[0] for p in first}) >= 8  # ten random picks of ten classes: ~6.5
    assert trainer.first_order() is None  # once: a restart with enough labels gets none either
    assert make(pool, split, tmp_path / "off", typical_start=0).first_order() is None


# --- with TensorFlow ---------------------------------------------------------------------------------
def test_typical_picks_lead_every_order_until_they_are_labelled(pool, split, tmp_path):
    trainer = make(pool, split, tmp_path, typical_start=10)
    assert trainer.build()
    first = trainer.first_order().order[:10]
    give(trainer, first[:3])
    trainer.train_round()
    assert trainer.query().order[:7] == first[3:]
    give(trainer, [p for p in split[0] if p not in first][:7])  # ten training labels: over
    trainer.train_round()
    assert trainer.query().order[:7] != first[3:]


def test_the_graph_takes_weight_when_it_predicts_new_labels_better(pool, split, tmp_path):
    """A barely trained network on digits: label spreading over the pixels' PCA predicts the next
    labels better, so the blend weight rises from 0 and the predictions are the blend's."""
    trainer = make(pool, split, tmp_path, typical_start=0, strategy="random")
    assert trainer.build()
    give(trainer, by_class(split[0], LABELS, 1))
    trainer.train_round()
    trainer.query()  # the first graph: from here each new label is scored by both before training
    assert trainer.graph.weight == 0.0 and trainer.graph.graph is not None
    give(trainer, [p for p in by_class(split[0], LABELS, 3) if p not in trainer.labels.train][:15])
    trainer.train_round()
    update = trainer.query()
    assert len(trainer.graph.records) == 15 and trainer.graph.weight > 0
    paths = list(update.predictions)[:20]
    network, _ = trainer.learner.predict_paths(paths)
    blended, _ = trainer.classify(paths)
    assert not np.allclose(network, blended)
    assert [update.predictions[p][1] for p in paths] == pytest.approx(blended.max(1).tolist(), abs=1e-6)
    # The estimate rests on the first sights of the latest half of the training labels, here without
    # any test label.
    row = trainer.evaluate()
    assert row is not None and row["n_test"] == 0 and row["n_eval"] == len(trainer.sight.for_estimate()) == 13


def test_a_query_of_the_whole_pool_keeps_the_graph_and_its_memory_bounded(pool, split, tmp_path, monkeypatch):
    """query_sample=0 on a large pool: the graph takes the labelled images and a random part of the rest
    (MAX_NODES), features are computed a chunk at a time, and every image still gets a prediction."""
    from oal_widget.training import graph as graph_module

    monkeypatch.setattr(graph_module, "MAX_NODES", 40)
    monkeypatch.setattr(graph_module, "FEATURE_CHUNK", 16)
    chunks = []
    raw = graph_module._Space._raw
    monkeypatch.setattr(
        graph_module._Space, "_raw", lambda self, paths: chunks.append(len(paths)) or raw(self, paths)
    )
    trainer = make(pool, split, tmp_path, typical_start=0, query_sample=0)
    assert trainer.build()
    give(trainer, by_class(split[0], LABELS, 2))
    trainer.train_round()
    trainer.graph.records = [(0.1, 0.9)] * 10  # the graph predicted better: it takes weight
    update = trainer.query()
    assert len(trainer.graph._node) == 40 and len(trainer.labels.train) == 20 and trainer.graph.weight > 0
    assert all(p in trainer.graph._node for p in trainer.labels.train), "every labelled image is a node"
    unlabelled = [p for p in split[0] if p not in trainer.labels.train]
    assert set(unlabelled) <= set(update.predictions) and len(unlabelled) > 40
    assert chunks[0] <= graph_module.PCA_SAMPLE and max(chunks[1:]) <= 16  # after the PCA's own sample
    assert sum(chunks[1:]) >= len(unlabelled), "the images outside the graph got their neighbours' vote"


def test_bald_and_kcenter_get_mc_passes_and_embeddings_and_the_order_is_a_permutation(pool, split, tmp_path):
    trainer = make(pool, split, tmp_path, strategy="bald", mc_samples=3, diversity="kcenter")
    assert trainer.build()
    give(trainer, split[1], "test")
    give(trainer, split[0][:5])
    trainer.train_round()
    update = trainer.query()
    labelled = set(split[0][:5])
    assert sorted(update.order) == sorted(p for p in split[0] if p not in labelled)
    mc = trainer.learner.mc_probs(split[0][5:15], 3)
    assert mc.shape == (3, 10, 10) and not np.allclose(mc[0], mc[1])  # dropout on: passes differ
    assert trainer.learner.embeddings(split[0][5:15]).shape[0] == 10


def test_bandit_credits_every_draw_on_the_same_images_before_and_after(pool, split, tmp_path):
    """query_every < eval_every draws twice per evaluation: both arms are credited, and a test set
    that grew in between does not count: the gain is measured on the images of the baseline."""
    trainer = make(pool, split, tmp_path, strategy="bandit", query_every=2, eval_every=4)
    assert trainer.build()
    first_test, later_test = split[1][:10], split[1][10:]
    give(trainer, first_test, "test")
    give(trainer, split[0][:4])
    trainer.train_round()
    trainer.evaluate()
    trainer.query()
    trainer.query()
    assert len(trainer.querier.pending) == 2
    give(trainer, later_test, "test")  # the test set grows between the two measurements
    give(trainer, split[0][4:8])
    trainer.train_round()
    trainer.evaluate()
    bandit = trainer.querier.strategy
    assert len(bandit.rewards) == 2 and not trainer.querier.pending
    before = trainer.history[-2]["test_accuracy"]  # the first evaluation had the first ten only
    # The reward is the gain on the first ten test images only (what both measurements share).
    probs, scored = trainer.classify(first_test)
    gain = np.mean(probs.argmax(1) == [int(p.split("/")[0]) for p in scored]) - before
    for _, reward in bandit.rewards:
        assert reward == pytest.approx(min(1.0, max(0.0, 0.5 + gain / (2 * bandit.scale))))


def batchnorm_dropout_model_fn(num_classes, input_shape):
    import keras

    model = keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dropout(0.5, name="embedding"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=False)
    return model


def test_mc_dropout_leaves_a_users_batchnorm_alone(pool, split, tmp_path):
    """Only dropout is random in the BALD passes: BatchNormalization keeps its statistics."""
    trainer = make(pool, split, tmp_path, model_fn=batchnorm_dropout_model_fn, strategy="bald", mc_samples=4)
    assert trainer.build()
    give(trainer, split[0][:8])
    trainer.train_round()
    bn = trainer.model.get_layer("bn")
    before = [np.array(w) for w in bn.non_trainable_weights]
    mc = trainer.learner.mc_probs(split[0][8:40], 4)
    trainer.query()
    assert not np.allclose(mc[0], mc[1])  # dropout still random
    for old, new in zip(before, bn.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(old, np.array(new))  # moving mean and variance untouched
    # And the layers are themselves again: an ordinary prediction is deterministic.
    X, _ = pool.arrays(split[0][:5])
    np.testing.assert_allclose(trainer.model(X, training=False), trainer.model(X, training=False))


def test_frozen_mode_queries_bald_and_kcenter_on_the_cached_embeddings(digits_dir, tmp_path):
    """No image is decoded again and the backbone does not run: the passes use the head."""
    from test_frozen import frozen_model_fn, make_trainer

    config = CFG.replace(strategy="bald", mc_samples=3, diversity="kcenter", query_sample=0)
    trainer = make_trainer(digits_dir, tmp_path, config=config)
    assert trainer.build() and trainer.frozen_backbone
    while trainer.prefill_step() is not None:  # every image embedded, as the idle thread would
        pass
    test = sorted(trainer.test_paths)
    train = [p for p in trainer.pool.paths if p not in trainer.test_paths]
    for p in test:
        trainer.handle(Labelled(p, p.split("/")[0], "test"))
    for p in train[:6]:
        trainer.handle(Labelled(p, p.split("/")[0]))
    trainer.train_round()
    embeddings = trainer.learner.frozen.embeddings
    computed = embeddings.computed
    decoded = []
    original = trainer.pool.arrays
    trainer.pool.arrays = lambda paths: decoded.append(len(paths)) or original(paths)
    update = trainer.query()
    assert sorted(update.order) == sorted(train[6:])
    assert decoded == [] and embeddings.computed == computed
    assert frozen_model_fn  # the model of make_trainer: a frozen projection named "embedding"


def test_a_rare_class_with_one_label_is_sought_in_the_next_images(pool, split, tmp_path):
    """Nine classes of six labels, and a rare one (seven images, one labelled): the next ten images hold
    more of the rare class when seeking is on (its most probable images are moved in) than without."""
    from oal_widget.data.pool import ImagePool

    nines = [p for p in pool.paths if p.startswith("9/")]
    keep = [p for p in pool.paths if not p.startswith("9/") or p in nines[:7]]
    rare_pool = ImagePool(pool.root, SHAPE, paths=keep)
    train = [p for p in split[0] if p in set(keep)]
    rare_split = (train, [p for p in split[1] if p in set(keep)])
    labelled = by_class(train, LABELS[:9], 6) + by_class(train, ["9"], 1)
    found = {}
    for share in (0.5, 0.0):
        trainer = make(
            rare_pool, rare_split, tmp_path / str(share), typical_start=0, epsilon=0.0, seek_share=share
        )
        assert trainer.build()
        give(trainer, labelled)
        for _ in range(10):
            trainer.train_round()
        order = trainer.query().order
        assert sorted(order) == sorted(p for p in train if p not in set(labelled))  # a permutation
        found[share] = sum(p.split("/")[0] == "9" for p in order[:10])
    assert found[0.5] >= 2 and found[0.5] > found[0.0], found


def test_random_order_seeks_nothing(pool, split, tmp_path, monkeypatch):
    import oal_widget.training.querying as querying

    def refuse(*args, **kwargs):
        raise AssertionError("random order must stay random")

    monkeypatch.setattr(querying, "seek_picks", refuse)
    trainer = make(pool, split, tmp_path, strategy="random", policy="greedy", typical_start=0)
    assert trainer.build()
    give(trainer, by_class(split[0], LABELS[:9], 2))  # class 9 has no label: it would be sought
    trainer.train_round()
    assert len(trainer.query().order) == len(split[0]) - 18


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_a_bad_seek_share_is_refused_naming_the_setting(bad):
    with pytest.raises(ValueError, match="seek_share"):
        Config(seek_share=bad)
