"""What the representation learned from the pool costs, in time and memory, as the pool grows.

``.venv/bin/python bench/representation_cost.py --sizes 5000,100000``: an in-memory pool of N 28x28 grey
images (scikit-learn's digits, upscaled and shifted a few pixels at random so no two are alike) stands in
for a folder (decoding is the disk cache's cost, measured by bench/scale.py). For each size: the seconds
to read the sample and learn the autoencoder (idle work before and between labels), the longest idle
chunk (what a new label can wait; the first training chunk also builds and traces the model), the
seconds to encode every image of the pool (a query with ``query_sample=0``; the default scores 2,000 a
query) and the memory the codes and the model take.
TensorFlow runs on one thread, as in the benchmarks.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class MemoryPool:
    """``paths`` and ``arrays`` over images held in memory (the product's pool reads a disk cache)."""

    def __init__(self, X: np.ndarray):
        self.X = X
        self.paths = [f"{i // 1000}/img_{i:06d}.png" for i in range(len(X))]
        self._index = {p: i for i, p in enumerate(self.paths)}

    def arrays(self, paths):
        return self.X[[self._index[p] for p in paths]].astype(np.float32) / 255, list(paths)


def images(n: int, seed: int = 0) -> np.ndarray:
    from sklearn.datasets import load_digits

    from oal_widget.training.augment import shift

    base = load_digits().images  # (1797, 8, 8), 0..16
    rng = np.random.default_rng(seed)
    pick = base[rng.integers(0, len(base), n)]
    X = np.kron(pick, np.ones((3, 3)))[:, :, :, None]  # 24x24
    X = np.pad(X, ((0, 0), (2, 2), (2, 2), (0, 0))) * (255 / 16)
    out = np.empty((n, 28, 28, 1), np.uint8)
    for i in range(0, n, 10_000):
        out[i : i + 10_000] = shift(X[i : i + 10_000], rng).clip(0, 255).astype(np.uint8)
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(n: int) -> dict:
    from oal_widget.training.graph import GraphBlend

    class NoNetwork:
        model = None

        def head(self):
            return None

    pool = MemoryPool(images(n))
    graph = GraphBlend(pool, NoNetwork(), [str(d) for d in range(10)], seed=0, learned=True)
    rep = graph.representation
    before = rss_mb()
    start, longest = time.perf_counter(), 0.0
    while True:
        t = time.perf_counter()
        if rep.step() is None:
            break
        longest = max(longest, time.perf_counter() - t)
    learn = time.perf_counter() - start
    t = time.perf_counter()
    E, ok = graph.pixel_features(pool.paths)  # every image encoded (the PCA's sample first)
    encode = time.perf_counter() - t
    params = rep.encoder.count_params()
    return {
        "images": n,
        "sample": len(rep._todo),
        "steps": rep.steps,
        "learn_s": round(learn, 1),
        "longest_chunk_ms": round(1000 * longest),
        "encode_all_s": round(encode, 1),
        "codes_mb": round(E.nbytes / 2**20, 1),
        "encoder_params": params,
        "rss_growth_mb": round(rss_mb() - before),
        "pool_mb": round(pool.X.nbytes / 2**20),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="5000,100000", help="pool sizes, comma-separated")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from oal_widget.training.quiet_tf import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rows = [measure(int(n)) for n in args.sizes.split(",")]
    cols = list(rows[0])
    print("  ".join(f"{c:>16}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]!s:>16}" for c in cols))
    print(f"\n{os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
