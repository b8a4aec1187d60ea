"""Scale: a pool of 100,000 small PNG images on one machine (index, memory, query, cached epochs).

One command: ``.venv/bin/python bench/scale.py`` (about 5-10 min on 2 CPU cores; the images are
generated once into ``/tmp/oal-scale-100000`` and reused).

The images are scikit-learn's 1,797 handwritten digits, upscaled to 20x20, placed at a random shift
on a 28x28 canvas, with Gaussian noise: 100,000 distinct files in 10 class folders. Everything else
is the product's own code at its DEFAULT settings (``Config()``: 64x64x3 input, the small CNN,
``query_sample`` 2000, the memory-mapped image cache in the workdir):

- index: ``ImagePool(folder)`` (list and stat only, no decoding);
- query: ``Trainer.query()`` over the whole unlabelled pool (~80,000 candidates + the test split),
  first with nothing cached, then with every image in the cache; and, for reference, scoring every
  image (``query_sample=0``);
- cache fill: every image decoded once into the cache with 2 worker threads (``pool.fill``);
- epoch: one pass over ``--epoch-images`` labelled images in batches of 32 (decode + a gradient step),
  from a fresh pool (decoding every image) and from the filled cache;
- peak memory: the process's peak resident set (``ru_maxrss``), TensorFlow included.

Writes ``bench/results/scale.csv`` and prints the table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import peak_mb, report, timed  # noqa: E402  (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _make_chunk(args) -> int:
    """Write images ``start..stop`` (a separate process: PNG encoding is CPU-bound)."""
    from PIL import Image

    from oal_widget.data.samples import load_digits_arrays

    out, start, stop, seed = args
    images, targets = load_digits_arrays()
    rng = np.random.default_rng((seed, start))
    for i in range(start, stop):
        k = int(rng.integers(len(images)))
        digit = Image.fromarray(images[k]).resize((20, 20), Image.BICUBIC)
        canvas = np.full((28, 28), 255, dtype=np.float32)
        dy, dx = rng.integers(0, 9, size=2)
        canvas[dy : dy + 20, dx : dx + 20] = np.asarray(digit, dtype=np.float32)
        canvas += rng.normal(0, 12, size=canvas.shape)
        img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
        img.save(Path(out) / str(int(targets[k])) / f"img_{i:06d}.png", compress_level=1)
    return stop - start


def generate(folder: Path, n: int, seed: int = 0) -> float:
    """The pool of ``n`` images in ``folder`` (made once: a ``.complete`` marker says it is whole)."""
    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == str(n):
        return 0.0
    started = time.perf_counter()
    for cls in range(10):
        (folder / str(cls)).mkdir(parents=True, exist_ok=True)
    chunks = [(str(folder), s, min(s + 2000, n), seed) for s in range(0, n, 2000)]
    done = 0
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as ex:
        for count in ex.map(_make_chunk, chunks):
            done += count
            print(f"\rgenerating images: {done}/{n}", end="", flush=True)
    print()
    marker.write_text(str(n))
    return time.perf_counter() - started


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def epoch(model, pool, paths, labels, batch=32) -> float:
    started = time.perf_counter()
    for i in range(0, len(paths), batch):
        X, loaded = pool.arrays(paths[i : i + batch])
        model.train_on_batch(X, np.array([labels[p] for p in loaded]))
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="images in the pool (default 100000)")
    parser.add_argument("--images", type=Path, default=None, help="folder (default /tmp/oal-scale-<n>)")
    parser.add_argument("--epoch-images", type=int, default=5000, help="labelled images per epoch (5000)")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.csv")
    args = parser.parse_args(argv)
    folder = args.images or Path(tempfile.gettempdir()) / f"oal-scale-{args.n}"
    gen_s = generate(folder, args.n)

    from oal_widget.config import Config
    from oal_widget.data.pool import ImagePool, split_test
    from oal_widget.messages import Labelled
    from oal_widget.training.trainer import Trainer

    rows: list[tuple[str, float, str, str, str]] = []  # metric, value, unit, target, note

    def add(metric, value, unit, target="", note=""):
        rows.append((metric, value, unit, target, note))
        print(f"  {metric}: {value:.3f} {unit}", flush=True)

    config = Config()  # the defaults are what is measured
    add("rss before TensorFlow", rss_mb(), "MB")
    index_s, pool = timed(lambda: ImagePool(folder, config.input_shape))
    add("index (scan, no decoding)", index_s, "s", "< 10 s", f"{len(pool.paths)} files")
    with tempfile.TemporaryDirectory(prefix="oal-scale-") as wd:
        wd = Path(wd)
        cache = pool.use_disk_cache(wd / "cache")
        answer = {p: p.split("/", 1)[0] for p in pool.paths}
        names = sorted(set(answer.values()))
        test = split_test(pool.paths, config.test_fraction, config.seed)
        test_set = set(test)
        train = [p for p in pool.paths if p not in test_set]
        rng = np.random.default_rng(0)
        labelled = [train[i] for i in rng.choice(len(train), size=200, replace=False)]
        trainer = Trainer(pool, names, config, test_paths=test, workdir=wd)
        build_s, ok = timed(trainer.build)
        assert ok, trainer.error
        add("TensorFlow import + model build", build_s, "s")
        for p in labelled:
            trainer.handle(Labelled(p, answer[p], "train"))
        for p in test[:100]:
            trainer.handle(Labelled(p, answer[p], "test"))
        for _ in range(5):
            trainer.train_round()
        trainer.evaluate()  # as in a session, an evaluation comes first (its predict traces the model)
        q_cold, update = timed(trainer.query)
        n_candidates = len(update.order)
        add(
            "query, default settings, nothing cached",
            q_cold,
            "s",
            "< 2 s",
            f"{n_candidates} candidates, {len(update.predictions)} scored (sample {config.query_sample})",
        )
        fill_s, filled = timed(lambda: pool.fill(workers=2))
        add("cache fill, every image decoded once (2 threads)", fill_s, "s", "", f"{filled} images")
        on_disk = os.stat(cache.data_path).st_blocks * 512 / 2**20
        add("cache file on disk", on_disk, "MB", "", f"{cache.data_path.name}")
        q_warm, update = timed(trainer.query)
        add(
            "query, default settings, cache filled", q_warm, "s", "< 2 s", f"{len(update.predictions)} scored"
        )
        add("peak memory before scoring every image", peak_mb(), "MB", "< 1536 MB", "default settings so far")
        trainer.config = trainer.querier.config = config.replace(query_sample=0)  # the querier reads it
        q_full, update = timed(trainer.query)
        add(
            "query scoring every image (query_sample=0), cached",
            q_full,
            "s",
            "",
            f"{len(update.predictions)} scored",
        )
        trainer.config = trainer.querier.config = config

        epoch_paths = train[: args.epoch_images]
        labels = {p: names.index(answer[p]) for p in epoch_paths}
        model = trainer.model
        fresh = ImagePool(folder, config.input_shape)  # no cache: every image decoded in the epoch
        e_uncached = epoch(model, fresh, epoch_paths, labels)
        add("epoch, decoding (no cache)", e_uncached, "s", "", f"{len(epoch_paths)} images, batch 32")
        e_cached = epoch(model, pool, epoch_paths, labels)
        add("epoch, from the cache", e_cached, "s", "", f"{len(epoch_paths)} images, batch 32")
        del fresh
        add("rss at the end", rss_mb(), "MB")
        add(
            "peak memory (max RSS, TensorFlow included)",
            peak_mb(),
            "MB",
            "< 1536 MB",
            "cache pages count too",
        )
        cache.close()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report(
        f"scale bench: {args.n} images in {folder} (generated in {gen_s:.0f} s this run)",
        rows,
        args.out,
        {"n_images": args.n},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
