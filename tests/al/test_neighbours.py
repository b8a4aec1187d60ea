import numpy as np

from oal_widget.al.neighbours import Neighbours


def test_nearest_are_the_most_similar_first_never_itself():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 5
    X = np.concatenate([c + rng.normal(size=(20, 8)) * 0.1 for c in centres])
    paths = [f"c{i // 20}/{i}.png" for i in range(60)]
    index = Neighbours(paths, X)
    got = index.nearest("c1/25.png", 10)
    assert len(got) == 10 and "c1/25.png" not in got
    assert all(p.startswith("c1/") for p in got)
    sims = [float(index._X[paths.index(p)] @ index._X[25]) for p in got]
    assert sims == sorted(sims, reverse=True)


def test_keep_filters_and_the_window_grows_until_enough():
    X = np.arange(200, dtype=np.float32)[:, None] * np.array([[1.0, 0.5]]) + np.array([[0.0, 1.0]])
    X[:, 1] = np.sin(np.arange(200))
    paths = [str(i) for i in range(200)]
    index = Neighbours(paths, X)
    kept = index.nearest("0", 5, keep=lambda p: int(p) % 17 == 0)  # few pass: the window must grow
    assert len(kept) == 5 and all(int(p) % 17 == 0 for p in kept)


def test_unknown_path_or_nothing_left():
    index = Neighbours(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert index.nearest("zzz", 3) == []
    assert index.nearest("a", 3, keep=lambda p: False) == []
    assert index.nearest("a", 3) == ["b"]
    assert "a" in index and len(index) == 2
