"""Issue 4 in the trainer and the simulator: MC dropout, embeddings, cold start, bandit rewards, schedules,
class balance. Real (tiny) TensorFlow training on real digit images."""

import numpy as np
import pytest

from oal_widget.config import Config
from oal_widget.messages import Labelled
from oal_widget.simulate import simulate
from oal_widget.training.trainer import Trainer

SHAPE = (16, 16, 1)
LABELS = [str(d) for d in range(10)]
CFG = Config(input_shape=SHAPE, train_steps=2, batch_size=16, eval_every=5, query_every=5, min_test_labels=1)


def make(pool, split, tmp_path, **settings):
    return Trainer(pool, LABELS, CFG.replace(**settings), test_paths=split[1], workdir=tmp_path)


def give(trainer, paths, split_name="train"):
    for p in paths:
        trainer.handle(Labelled(p, p.split("/")[0], split_name))


def by_class(paths, classes, n):
    return [p for c in classes for p in [q for q in paths if q.split("/")[0] == c][:n]]


# --- without TensorFlow: the bookkeeping ------------------------------------------------------------
def test_class_balance_gives_every_class_the_same_share_of_a_batch(pool, split, tmp_path):
    trainer = make(pool, split, tmp_path, class_balance=True)
    give(trainer, by_class(split[0], ["0"], 9) + by_class(split[0], ["1"], 1))
    w = trainer._batch_weights()
    y = np.array([int(p.split("/")[0]) for p in trainer._train])
    assert w[y == 0].sum() == pytest.approx(0.5) and w[y == 1].sum() == pytest.approx(0.5)
    assert make(pool, split, tmp_path / "b", class_balance=False)._batch_weights() is None


def test_cold_start_is_random_until_every_class_has_its_labels_then_the_strategy(pool, split, tmp_path):
    trainer = make(pool, split, tmp_path, strategy="margin", cold_start=1)
    rng = np.random.default_rng(0)
    give(trainer, by_class(split[0], LABELS[:9], 1))  # class 9 still missing
    assert trainer._query_strategy(rng) == "random"
    give(trainer, by_class(split[0], ["9"], 1))
    assert trainer._query_strategy(rng).__name__ == "margin"
    # A class nobody labels cannot keep the session random for ever: the cap is 3 x cold_start x classes.
    capped = make(pool, split, tmp_path / "c", strategy="margin", cold_start=1)
    give(capped, by_class(split[0], LABELS[:9], 4))
    assert capped._query_strategy(rng).__name__ == "margin"


# --- with TensorFlow ---------------------------------------------------------------------------------
def test_bald_query_uses_mc_dropout_and_the_bandit_is_rewarded_by_accuracy_gains(pool, split, tmp_path):
    trainer = make(pool, split, tmp_path, strategy="bandit", mc_samples=3, diversity="kcenter", cold_start=0)
    assert trainer.build()
    give(trainer, split[1], "test")
    train = split[0]
    give(trainer, train[:5])
    trainer.train_round()
    trainer.evaluate()
    bandit = trainer._strategy
    assert bandit is None  # created at the first query, one per trainer
    update = trainer.query()
    bandit = trainer._strategy
    assert len(trainer._pending_arms) == 1
    labelled = set(train[:5])
    assert sorted(update.order) == sorted(p for p in train if p not in labelled)
    # The dropout passes really differ (dropout on): BALD gets real disagreement to score.
    X, _ = pool.arrays(train[5:15])
    passes = [np.asarray(trainer.model(X, training=True)) for _ in range(2)]
    assert not np.allclose(passes[0], passes[1])
    inputs = trainer._query_inputs("bald", train[5:15])
    assert inputs["mc_probs"].shape == (3, 10, 10) and inputs["embeddings"].shape[0] == 10
    give(trainer, train[5:10])
    trainer.train_round()
    row = trainer.evaluate()
    assert len(bandit.rewards) == 1 and not trainer._pending_arms
    arm, reward = bandit.rewards[0]
    assert arm in bandit.arms and 0.0 <= reward <= 1.0
    gain = row["accuracy"] - trainer.history[-2]["accuracy"]
    assert reward == pytest.approx(min(1.0, max(0.0, 0.5 + gain / (2 * bandit.scale))))


@pytest.mark.parametrize("schedule", ["shrink_perturb", "refit"])
def test_schedules_reset_when_labels_doubled_and_catch_up(pool, split, tmp_path, schedule):
    trainer = make(pool, split, tmp_path, schedule=schedule)
    assert trainer.build()
    give(trainer, split[0][:19])
    trainer.train_round()
    before = trainer.model
    kernel = np.array(before.get_layer("embedding").kernel)
    assert trainer._catch_up == 0 and trainer._labels_at_reset == 0  # below RESET_MIN_LABELS: no reset
    give(trainer, split[0][19:20])
    trainer._maybe_reset()
    assert trainer._labels_at_reset == 20 and trainer._catch_up > 0
    if schedule == "refit":
        assert trainer.model is not before
    else:
        after = np.array(trainer.model.get_layer("embedding").kernel)
        assert trainer.model is before
        assert np.linalg.norm(after) < 0.6 * np.linalg.norm(kernel)  # shrunk to 0.4 w + 0.1 fresh
    steps = []
    original = trainer._step
    trainer._step = lambda: steps.append(1) or original()
    assert trainer.train_round()
    assert len(steps) > CFG.train_steps and trainer._catch_up == 0  # the catch-up ran in the round
    give(trainer, split[0][20:30])
    trainer._maybe_reset()
    assert trainer._labels_at_reset == 20  # 30 < 2 x 20: no reset yet


@pytest.mark.parametrize(
    "strategy, policy, extra",
    [
        ("margin", "epsilon_greedy", {}),
        ("margin", "power", {"diversity": "kcenter"}),
        ("bald", "softmax", {"temperature": 0.1, "mc_samples": 2, "class_balance": True}),
        ("bandit", "greedy", {"cold_start": 1, "schedule": "shrink_perturb"}),
    ],
)
def test_small_simulation_per_policy(digits_dir, strategy, policy, extra):
    rows = simulate(
        digits_dir,
        strategy=strategy,
        policy=policy,
        budget=20,
        eval_every=10,
        query_every=5,
        input_shape=SHAPE,
        progress=None,
        train_steps=2,
        timing=True,
        **extra,
    )
    assert [r["n_labels"] for r in rows] == [10, 20]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert rows[-1]["queries"] == 3  # after 5, 10 and 15 labels (not after the last)
    assert rows[-1]["query_seconds"] > 0 and rows[-1]["train_seconds"] > 0
    assert {r["strategy"] for r in rows} == {strategy}
