"""Pseudo-labels from the unlabelled pool: only candidates, ramped, balanced, and a collapsed model
cannot teach itself to stay collapsed."""

import numpy as np
import pytest
from helpers import labelset_of

from oal_widget.config import Config
from oal_widget.training import pseudo

LABELS = [str(d) for d in range(10)]


def sure_of(k: int, n: int, classes: int = 10) -> np.ndarray:
    probs = np.full((n, classes), 0.001)
    probs[:, k] = 1.0
    return probs / probs.sum(1, keepdims=True)


def test_the_quota_ramps_with_the_labels_and_never_exceeds_the_ratio():
    assert pseudo.quota(pseudo.START - 1, 2.0) == 0 and pseudo.quota(500, 0.0) == 0
    counts = [pseudo.quota(n, 2.0) for n in range(pseudo.START, 300)]
    assert counts == sorted(counts) and counts[0] < 2 * pseudo.START
    assert all(q <= 2 * n for q, n in zip(counts, range(pseudo.START, 300), strict=True))
    assert pseudo.quota(pseudo.RAMP, 2.0) == 2 * pseudo.RAMP


def test_only_confident_predictions_of_unlabelled_training_candidates_of_labelled_classes():
    train = [f"{d}/t{i}.png" for d in range(5) for i in range(8)]  # classes 0-4 labelled, 40 labels
    test = [f"{d}/x{i}.png" for d in range(10) for i in range(3)]
    labels = labelset_of(train, test)
    labels.add(test[0], "0", "test")
    pool = [f"{d}/u{i}.png" for d in range(10) for i in range(20)]
    paths = pool + train + test
    probs = np.concatenate([sure_of(int(p.split("/")[0]), 1) for p in paths])
    probs[:10] = 0.1  # unsure: below any threshold
    chosen = pseudo.select(paths, probs, labels, threshold=0.9, ratio=2.0)
    assert chosen and set(chosen) <= set(pool[10:])  # never a labelled image nor a test image
    assert set(chosen.values()) <= {0, 1, 2, 3, 4}  # a class the person never labelled gets none
    per_class = np.bincount(list(chosen.values()), minlength=10)
    assert per_class.max() <= max(1, pseudo.quota(len(train), 2.0) // 10)
    assert all(chosen[p] == int(p.split("/")[0]) for p in chosen)


def test_a_model_that_predicts_one_class_everywhere_gets_one_share_only():
    train = [f"{d}/t{i}.png" for d in range(10) for i in range(10)]  # 100 labels, every class
    labels = labelset_of(train)
    pool = [f"{d}/u{i}.png" for d in range(10) for i in range(100)]
    chosen = pseudo.select(pool, sure_of(0, len(pool)), labels, threshold=0.9, ratio=2.0)
    assert set(chosen.values()) == {0}
    assert len(chosen) == pseudo.quota(100, 2.0) // 10 == 20  # a tenth of the quota, not all 1,000


def test_the_batch_leaves_out_images_labelled_since_the_query():
    labels = labelset_of([f"{d}/t{i}.png" for d in range(10) for i in range(4)])
    p = pseudo.PseudoLabels(Config(input_shape=(8, 8, 1), batch_size=8))
    pool = [f"{d}/u{i}.png" for d in range(10) for i in range(10)]
    probs = np.concatenate([sure_of(int(q.split("/")[0]), 1) for q in pool])
    p.refresh(pool, probs, labels)
    assert p.labels
    for q in p.labels:
        labels.add(q, q.split("/")[0], "train")  # the person labelled every one of them meanwhile
    assert p.batch(labels) == ([], pytest.approx(np.zeros(0)))
    off = pseudo.PseudoLabels(Config(input_shape=(8, 8, 1), semi_supervised=False))
    off.refresh(pool, probs, labels)
    assert not off.labels


def test_trust_is_checked_on_the_first_sight_of_the_persons_labels():
    collapsed = [(sure_of(0, 1)[0], k) for k in range(10) for _ in range(3)]  # sure of 0, right on a tenth
    assert not pseudo.trusted(collapsed, 0.9)
    good = [(sure_of(k, 1)[0], k) for k in range(10) for _ in range(3)]
    unsure = [(np.full(10, 0.1), k) for k in range(10)]
    assert pseudo.trusted(good + collapsed[:3], 0.9) and pseudo.trusted(unsure, 0.9)


def test_a_collapsed_network_does_not_teach_itself_to_stay_collapsed(pool, split, tmp_path):
    """The network predicts class 0 for every image, sure of it. The person labels images of every
    class; with pseudo-labels on (the default settings), the trainer must not learn from the collapsed
    model's predictions, and must end with a network that predicts the classes."""
    from helpers import tiny_model_fn

    from oal_widget.messages import Labelled
    from oal_widget.training.trainer import Trainer

    config = Config(input_shape=(16, 16, 1), train_steps=10, eval_every=1000, query_every=1000, seed=0)
    trainer = Trainer(pool, LABELS, config, test_paths=split[1], workdir=tmp_path, model_fn=tiny_model_fn)
    assert trainer.build()
    dense = trainer.model.layers[-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([np.zeros_like(kernel), np.where(np.arange(10) == 0, 30.0, 0.0).astype(bias.dtype)])
    train = sorted(split[0], key=lambda p: p.split("/")[1])  # interleaved classes
    given, rest = train[:60], train[60:]
    for p in given:  # each scored at first sight by the collapsed network: sure it is a 0
        trainer.handle(Labelled(p, p.split("/")[0]))
    trainer.query()
    assert not trainer.learner.pseudo.trusted and not trainer.learner.pseudo.labels
    trainer.train_round()
    assert not trainer.learner.pseudo.used  # it never learnt from its own collapsed predictions
    for i in range(0, 40, 10):  # the person goes on; the trainer trains and queries between labels
        for p in rest[i : i + 10]:
            trainer.handle(Labelled(p, p.split("/")[0]))
        trainer.query()
        chosen = trainer.learner.pseudo.labels
        assert (
            len(set(chosen.values())) != 1
            or len(chosen) <= pseudo.quota(len(trainer.labels.train), config.pseudo_ratio) // 10
        )
        for _ in range(3):
            trainer.train_round()
    unlabelled = rest[40:]
    probs, scored = trainer.classify(unlabelled)
    truth = np.array([int(p.split("/")[0]) for p in scored])
    assert len(set(probs.argmax(1))) >= 5 and (probs.argmax(1) == truth).mean() > 0.5
    assert not trainer.learner.pseudo.used & trainer.labels.test_paths
