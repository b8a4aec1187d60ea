"""Label spreading, the choice of its blend weight, and the cold start's TypiClust. Pure numpy, on
scikit-learn's digits (the arrays; no files) and on blobs."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from oal_widget.al.coldstart import Pca, kmeans, shrink, typiclust
from oal_widget.al.propagation import LabelSpreading, blend, choose_weight


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return Pca(X.astype(np.float32))(X), y


def test_spreading_from_three_labels_per_class_classifies_most_digits(digits):
    E, y = digits
    rng = np.random.default_rng(0)
    seeds = np.concatenate([rng.choice(np.flatnonzero(y == c), 3, replace=False) for c in range(10)])
    graph = LabelSpreading(E[:1500])
    P = graph.spread(seeds[seeds < 1500], y[seeds[seeds < 1500]], 10)
    assert P.shape == (1500, 10) and np.allclose(P.sum(1), 1)
    assert np.mean(P.argmax(1) == y[:1500]) > 0.8  # a nearest-centroid of 30 labels does far worse
    voted = graph.vote(E[1500:])  # images outside the graph: their neighbours' soft labels
    assert np.mean(voted.argmax(1) == y[1500:]) > 0.75


def test_the_weight_follows_whichever_predicted_the_latest_labels_better():
    rng = np.random.default_rng(1)
    good, bad = rng.uniform(0.7, 1.0, 50), rng.uniform(0.0, 0.2, 50)
    assert choose_weight(good, bad) == 0.0  # the graph did worse: the network alone
    assert choose_weight(bad, good) == 1.0
    assert choose_weight(good[:4], bad[:4]) == 0.0  # too few records to trust either
    p = np.array([[0.8, 0.2]])
    assert np.allclose(blend(p, np.array([[0.0, 1.0]]), 0.5), [[0.4, 0.6]])
    assert blend(p, None, 0.5) is p


def test_typiclust_takes_the_typical_image_of_every_cluster_largest_first():
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    sizes = [80, 40, 30, 20]
    E = np.concatenate([c + rng.normal(0, 1, (n, 2)) for c, n in zip(centres, sizes, strict=True)])
    blob = np.repeat(np.arange(4), sizes)
    picks = typiclust(E.astype(np.float32), k=4, seed=0)
    assert sorted(blob[picks]) == [0, 1, 2, 3] and blob[picks[0]] == 0  # one each, the largest first
    assert all(np.linalg.norm(E[i] - centres[blob[i]]) < 1.0 for i in picks)  # typical, not outliers
    assert len(set(kmeans(E, 4, np.random.default_rng(0)))) == 4


def test_typiclust_covers_more_classes_than_random_picks(digits):
    E, y = digits
    covered = len(set(y[typiclust(E, k=20, seed=0)]))
    rng = np.random.default_rng(3)
    by_chance = np.mean([len(set(y[rng.choice(len(y), 20, replace=False)])) for _ in range(200)])
    assert covered >= 9 and covered > by_chance  # random: ~8.8 of 10


def test_shrink_averages_large_images_down():
    X = np.ones((2, 64, 48, 3), np.float32)
    assert shrink(X).shape == (2, 21 * 24 * 3)  # 3x2 blocks: at most 24 pixels a side
    assert shrink(np.ones((1, 16, 16, 1))).shape == (1, 256)
