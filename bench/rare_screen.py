"""Offline screen for finding an unseen rare class: a cheap stand-in for ``simulate``, no TensorFlow.

The pool is ``rare_class.py``'s (one class at 1%, the rare class ``classes[seed % 10]``); a fifth is
held out (the oracle) and a tenth of the rest is the test split, never sought. The first 30 labels are
TypiClust's picks (``al.coldstart``) in the cold-start space, then each round of 10 gives half to
the seek for a class with no label (each of ``--rules`` in each of ``--spaces``) and half to the
smallest margin of a logistic regression on the pixels' PCA (the stand-in for the network), until the
rare class has its first training label. Prints, per space and rule, the training labels given when
the rare class was first labelled (mean and per seed) and the seeds that never found it within
``--budget``. Tuning sets only: ``digits``, ``mnist5k``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_efficiency import DATASETS, ROOT  # noqa: E402
from rare_class import rare_pool, write_images  # noqa: E402

sys.path.insert(0, str(ROOT))
from oal_widget.al import balance, coldstart  # noqa: E402


def load(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    X, y = [], []
    for k, c in enumerate(classes):
        for f in sorted((folder / c).iterdir()):
            X.append(np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255.0)
            y.append(k)
    return np.stack(X)[..., None], np.asarray(y), classes


def spaces(X: np.ndarray, names: list[str], seed: int) -> dict[str, np.ndarray]:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    flat = coldstart.shrink(X)
    sample = flat[rng.choice(len(flat), min(2000, len(flat)), replace=False)]
    out = {"pixels": coldstart.Pca(sample)(flat)}
    if "white" in names:
        out["white"] = PCA(32, whiten=True, random_state=0).fit(sample).transform(flat).astype(np.float32)
    if "hog" in names:
        from skimage.feature import hog

        H = np.stack([hog(x[..., 0], pixels_per_cell=(7, 7), cells_per_block=(2, 2)) for x in X])
        out["hog"] = PCA(32, random_state=0).fit_transform(H).astype(np.float32)
    if "hogw" in names:
        from skimage.feature import hog

        H = np.stack([hog(x[..., 0], pixels_per_cell=(7, 7), cells_per_block=(2, 2)) for x in X])
        out["hogw"] = PCA(32, whiten=True, random_state=0).fit_transform(H).astype(np.float32)
    return {n: out[n] for n in names}


def stand_in(E: np.ndarray, y: np.ndarray, train: list[int], rows: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    k = int(y.max()) + 1
    seen = np.unique(y[train])
    p = np.zeros((len(rows), k))
    if len(seen) < 2:
        p[:, seen] = 1.0
        return p
    model = LogisticRegression(C=1.0, max_iter=300).fit(E[train], y[train])
    p[:, model.classes_] = model.predict_proba(E[rows])
    return p


def first_rare(E: dict, space: str, y, rare: int, rule, seed: int, budget: int) -> float:
    """Training labels given when the rare class had its first (NaN: not within ``budget``)."""
    rng = np.random.default_rng((seed, 5))
    n = len(y)
    order = rng.permutation(n)
    oracle = set(order[: n // 5].tolist())
    test = set(order[n // 5 : n // 5 + n // 10].tolist())
    pool = np.array([i for i in range(n) if i not in oracle and i not in test])
    cold = coldstart.typiclust(E["pixels"][pool], 30, seed)
    train = [int(pool[i]) for i in cold]
    if (y[train] == rare).any():
        return float(1 + [y[t] for t in train].index(rare))
    q = 0
    while len(train) < budget:
        taken = set(train)
        cands = np.array([i for i in pool if i not in taken])
        scored = rng.choice(cands, min(2000, len(cands)), replace=False)
        p = stand_in(E["pixels"], y, train, scored)
        doubt = 1.0 - p.max(1)
        seek = rule(E[space][scored], E[space][train], seed + q, doubt)[:5]
        s = np.sort(p, 1)
        margin_order = [i for i in np.argsort(s[:, -1] - s[:, -2]) if i not in set(seek)][:5]
        q += 1
        for i in [x for pair in zip(seek, margin_order, strict=False) for x in pair]:
            train.append(int(scored[i]))
            if y[scored[i]] == rare:
                return float(len(train))
    return float("nan")


def uncovered(E_candidates, E_labelled, seed: int, extra: int = 50, uncertainty=None) -> list[int]:
    """Indices of candidates: the most typical of each cluster holding no labelled image (k-means of
    both sets into ``len(labelled) + extra`` clusters), the cluster of the highest mean
    ``uncertainty`` (one value per candidate, e.g. 1 - the top probability) first; without it, the
    cluster farthest from the labels first."""
    E_c = np.asarray(E_candidates, dtype=np.float32)
    E_l = np.asarray(E_labelled, dtype=np.float32).reshape(-1, E_c.shape[1] if E_c.ndim == 2 else 0)
    n = len(E_c)
    k = min(len(E_l) + extra, (n + len(E_l)) // coldstart.MIN_CLUSTER)
    if n < 2 * coldstart.MIN_CLUSTER or k < 2:
        return []
    clusters = coldstart.kmeans(np.concatenate([E_c, E_l]), k, np.random.default_rng(seed))
    covered = set(clusters[n:].tolist())
    own = clusters[:n]
    doubt = None if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    picks, first = [], []
    for c in range(k):
        members = np.flatnonzero(own == c)
        if c in covered or len(members) < coldstart.MIN_CLUSTER:
            continue
        picks.append(int(members[coldstart.most_typical(E_c[members])]))
        if doubt is not None:
            first.append(float(doubt[members].mean()))
        else:  # novelty: distance of the cluster's centre to the nearest label
            centre = E_c[members].mean(0)
            first.append(float(np.min(np.sum((E_l - centre) ** 2, 1))) if len(E_l) else 0.0)
    return [picks[i] for i in np.argsort(-np.asarray(first), kind="stable")]


def _d2(A, B):
    return np.maximum(np.sum(A**2, 1)[:, None] - 2 * A @ B.T + np.sum(B**2, 1)[None], 0)


def isolated(E_c, E_l, k=5, power=1.0, doubt=None, n=50):
    """Far from every label relative to the mean distance to the ``k`` nearest candidates to the
    ``power`` (0: far from every label alone), times ``doubt`` if given; greedy, each pick's ``k``
    nearest candidates left out after it."""
    D = np.sqrt(_d2(E_c, E_c))
    np.fill_diagonal(D, np.inf)
    nn = np.argsort(D, 1)[:, :k]
    r = np.take_along_axis(D, nn, 1).mean(1)
    score = np.sqrt(_d2(E_c, E_l).min(1)) / (r**power + 1e-9)
    if doubt is not None:
        score = score * doubt
    picks, banned = [], np.zeros(len(E_c), bool)
    for i in np.argsort(-score):
        if not banned[i]:
            picks.append(int(i))
            banned[nn[i]] = True
        if len(picks) >= n:
            break
    return picks


def alternate(a, b):
    out: list = []
    for pair in zip(a, b, strict=False):
        out += [i for i in pair if i not in out]
    return out


#: name -> (candidates' features, labelled features, seed, the stand-in's doubt) -> candidate indices.
RULES = {
    # TypiClust's uncovered clusters: the most typical image of each, the stand-in's least sure first
    "uncovered": lambda E_c, E_l, s, d: uncovered(E_c, E_l, s, uncertainty=d),
    "uncovered-far": lambda E_c, E_l, s, d: uncovered(E_c, E_l, s),
    "fine": lambda E_c, E_l, s, d: uncovered(E_c, E_l, s, extra=200, uncertainty=d),
    "fine-far": lambda E_c, E_l, s, d: uncovered(E_c, E_l, s, extra=200),
    "tight5": lambda E_c, E_l, s, d: isolated(E_c, E_l, 5),
    "tight10": lambda E_c, E_l, s, d: isolated(E_c, E_l, 10),
    "tight5-doubt": lambda E_c, E_l, s, d: isolated(E_c, E_l, 5, doubt=d),
    "tight5-squared": lambda E_c, E_l, s, d: isolated(E_c, E_l, 5, power=2.0),
    "far5": lambda E_c, E_l, s, d: isolated(E_c, E_l, 5, power=0.0),
    "far10": lambda E_c, E_l, s, d: isolated(E_c, E_l, 10, power=0.0),
    # the product's rule (al.balance): k-center greedy from the labels
    "farthest-first": lambda E_c, E_l, s, d: balance.farthest_first(E_c, E_l, 50),
    "alternate": lambda E_c, E_l, s, d: alternate(
        balance.farthest_first(E_c, E_l, 50), uncovered(E_c, E_l, s, uncertainty=d)
    ),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="digits", choices=["digits", "mnist5k"])
    parser.add_argument("--spaces", default="pixels", help="from pixels, white, hog, hogw")
    parser.add_argument("--rules", default="uncovered,farthest-first", help=f"from {list(RULES)}")
    parser.add_argument("--seeds", default="2-11")
    parser.add_argument("--budget", type=int, default=200)
    args = parser.parse_args(argv)
    a, b = (int(x) for x in args.seeds.split("-"))
    names = args.spaces.split(",")
    start = time.monotonic()
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="oal-screen-") as tmp:
        full = Path(tmp) / "full"
        write_images(args.dataset, DATASETS[args.dataset][1], full)
        classes = sorted(p.name for p in full.iterdir() if p.is_dir())
        for seed in range(a, b + 1):
            folder = Path(tmp) / f"pool-{seed}"
            rare = classes[seed % len(classes)]
            rare_pool(full, folder, rare, 400, seed)
            X, y, _ = load(folder)
            E = spaces(X, sorted(set(names) | {"pixels"}), seed)
            for space in names:
                for rule in args.rules.split(","):
                    got = first_rare(E, space, y, classes.index(rare), RULES[rule], seed, args.budget)
                    results.setdefault((space, rule), []).append(got)
                    print(f"seed {seed} {space} {rule}: {got}", flush=True)
    for (space, rule), got in results.items():
        g = np.asarray(got)
        print(f"{space:>8} {rule:>15}: mean {np.nanmean(g):6.1f}  never {int(np.isnan(g).sum())}  {got}")
    print(f"{time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
