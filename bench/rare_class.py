"""A rare class: how soon the person meets it, and how well the model then knows it.

One command per data set: ``.venv/bin/python bench/rare_class.py --dataset digits``. The pool is one of
``bench/label_efficiency.py``'s sets (its writers, imported) with one class cut to 1% of the pool: nine
classes of up to ``--per-class`` images (400) and the rare one of 1/99 of theirs (animals: nine of 400
and 36, 3,636 images). The rare class is ``classes[seed % 10]``: each seed meets another class, so no
setting is chosen for one class. Tuning pools: ``digits`` and ``mnist5k``; confirmation: ``animals``.

Every run is ``python -m oal_widget simulate`` in its own process (the product's own order and
trainer; an oracle set of 20% nobody labels). For each configuration and seed the table gives the rare
class's images the person has labelled (test labels included) after 50, 150 and 400 labels (at the
last evaluation at or before each: evaluations every ``--every`` labels), the labels given when it
first had a training label (``first_train``: at the evaluation that first saw one; a first label that
went to the test split teaches the model nothing, and seeking then still looks for an unseen class),
the rare class's recall on the oracle set and the overall true accuracy at 150 and 400 labels; then
the mean over seeds.
``random`` is random order with the plain network (``label_efficiency.py``'s reference), ``no-seek``
the default without seeking the short classes (``--seek-share 0``). Writes
``bench/results/rare_class_<dataset>.csv`` (the table, per seed and mean) and prints it.

``--balanced`` cuts no class (every class at ``--per-class``): the cost check, where seeking should
change nothing (``rare_class_balanced_<dataset>.csv``; its found columns count an ordinary class).
``--keep DIR`` keeps every run's curve and per-class CSVs (when each class was met, label by label).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_efficiency import CONFIGS, DATASETS, ROOT, write_images  # noqa: E402

RESULTS = ROOT / "bench" / "results"
#: name -> simulate options.
RARE_CONFIGS = {"random": CONFIGS["random"], "default": [], "no-seek": ["--seek-share", "0"]}
CHECKPOINTS = (50, 150, 400)
RARE_SHARE = 0.01


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="digits", choices=[d for d in DATASETS if d != "faces"])
    parser.add_argument("--configs", default="random,default,no-seek", help=f"from {list(RARE_CONFIGS)}")
    parser.add_argument("--seeds", type=int, default=2, help="seeds first..first+N-1 (default 2)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=400, help="labels per run, test labels included")
    parser.add_argument("--per-class", type=int, default=400, help="images of each common class (at most)")
    parser.add_argument("--every", type=int, default=10, help="labels between evaluations and queries")
    parser.add_argument("--jobs", type=int, default=2, help="runs at the same time")
    parser.add_argument("--extra", default="", help="further simulate options for every non-random run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tag", default=None, help="file name stem (default: rare_class_<dataset>)")
    parser.add_argument(
        "--balanced", action="store_true", help="no class cut: every class at --per-class (the cost check)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep each run's curves in")
    args = parser.parse_args(argv)
    args.names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in args.names if c not in RARE_CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}: choose from {list(RARE_CONFIGS)}")
    args.size = DATASETS[args.dataset][1]
    args.tag = args.tag or f"rare_class_{'balanced_' if args.balanced else ''}{args.dataset}"
    return args


def rare_pool(
    full: Path, folder: Path, rare: str, per_class: int, seed: int, share: float = RARE_SHARE
) -> int:
    """Copy of ``full`` with at most ``per_class`` images of each class and ``share`` of the pool in
    ``rare`` (seeded choice; 0: no class cut); returns the rare class's image count."""
    rng = np.random.default_rng((seed, 19))
    classes = sorted(p.name for p in full.iterdir() if p.is_dir())
    common = [sorted((full / c).iterdir()) for c in classes if c != rare]
    kept = min(per_class, *(len(files) for files in common))
    n_rare = max(1, round(share / (1 - share) * kept * len(common))) if share else kept
    for c in classes:
        files = sorted((full / c).iterdir())
        take = n_rare if c == rare else kept
        (folder / c).mkdir(parents=True)
        for i in sorted(rng.choice(len(files), min(take, len(files)), replace=False)):
            shutil.copy(files[i], folder / c / files[i].name)
    return n_rare


def run_one(images: Path, name: str, seed: int, args, tmp: Path) -> tuple[list[dict], list[dict]]:
    """(curve rows, per-class rows) of one simulate run in its own process."""
    out = tmp / f"{name}-{seed}.csv"
    cmd = [sys.executable, "-m", "oal_widget", "simulate", str(images), "--budget", str(args.budget)]
    cmd += ["--seed", str(seed), "--out", str(out), "--input-shape", f"{args.size},{args.size},1"]
    cmd += ["--eval-every", str(args.every), "--query-every", str(args.every), "--quiet"]
    cmd += RARE_CONFIGS[name] + (args.extra.split() if name != "random" else [])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{name} seed {seed} failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    per_class = out.with_name(f"{out.stem}_per_class.csv")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        for path in (out, per_class):
            shutil.copy(path, args.keep / f"{args.tag}_{path.name}")
    with out.open(newline="") as f, per_class.open(newline="") as g:
        return list(csv.DictReader(f)), list(csv.DictReader(g))


def at(rows: list[dict], n: int, column: str, **match) -> float:
    """``column`` of the last row with n_labels <= n (and the ``match``ing fields); NaN where the run
    stopped short of n (a smaller ``--budget``)."""
    if not rows or max(int(r["n_labels"]) for r in rows) < n:
        return float("nan")
    hit = [r for r in rows if int(r["n_labels"]) <= n and all(r[k] == v for k, v in match.items())]
    return float(max(hit, key=lambda r: int(r["n_labels"]))[column]) if hit else float("nan")


def first_train(per_class: list[dict], rare: str) -> float:
    """Labels given at the first evaluation where ``rare`` had a training label (NaN: never)."""
    seen = [int(r["n_labels"]) for r in per_class if r["class"] == rare and int(r["train_labels"]) > 0]
    return float(min(seen)) if seen else float("nan")


def summary_row(name: str, seed, rare: str, n_rare: int, curve: list[dict], per_class: list[dict]) -> dict:
    row: dict = {"config": name, "seed": seed, "rare_class": rare, "rare_images": n_rare}
    for n in CHECKPOINTS:
        row[f"found@{n}"] = at(per_class, n, "labels", **{"class": rare})
    row["first_train"] = first_train(per_class, rare)
    for n in CHECKPOINTS[1:]:
        row[f"rare_recall@{n}"] = at(per_class, n, "recall", **{"class": rare})
        row[f"accuracy@{n}"] = at(curve, n, "true_accuracy")
    return row


def mean_row(rows: list[dict], name: str) -> dict:
    mine = [r for r in rows if r["config"] == name]
    out: dict = {"config": name, "seed": "mean", "rare_class": "", "rare_images": ""}
    for key in mine[0]:
        if key.startswith(("found@", "first_train", "rare_recall@", "accuracy@")):
            out[key] = round(float(np.nanmean([r[key] for r in mine])), 3)
    return out


def print_table(table: list[dict]) -> None:
    cols = list(table[0])
    print("  ".join(f"{c:>14}" for c in cols))
    for row in table:
        print("  ".join(f"{(f'{v:.3g}' if isinstance(v, float) else str(v)):>14}" for v in row.values()))


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    table: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="oal-rare-") as tmp:
        tmp = Path(tmp)
        full = tmp / "full"
        write_images(args.dataset, args.size, full)
        classes = sorted(p.name for p in full.iterdir() if p.is_dir())
        pools = {}
        for seed in seeds:
            rare = classes[seed % len(classes)]
            pools[seed] = (tmp / f"pool-{seed}", rare)
            share = 0.0 if args.balanced else RARE_SHARE
            n_rare = rare_pool(full, pools[seed][0], rare, args.per_class, seed, share)
            pools[seed] += (n_rare,)
        jobs = [(name, seed) for seed in seeds for name in args.names]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
            futures = {ex.submit(run_one, pools[s][0], n, s, args, tmp): (n, s) for n, s in jobs}
            for fut in concurrent.futures.as_completed(futures):
                name, seed = futures[fut]
                _, rare, n_rare = pools[seed]
                table.append(summary_row(name, seed, rare, n_rare, *fut.result()))
                print(f"done {name} seed {seed} ({time.monotonic() - start:.0f} s)", flush=True)
    table.sort(key=lambda r: (args.names.index(r["config"]), r["seed"]))
    table += [mean_row(table, name) for name in args.names]
    path = args.out / f"{args.tag}.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    print_table(table)
    print(
        f"\n{len(jobs)} runs ({args.dataset} with one class at 1%, budget {args.budget}, seeds "
        f"{args.first_seed}..{args.first_seed + args.seeds - 1}) in {time.monotonic() - start:.0f} s on "
        f"{os.cpu_count()} CPU cores (load {os.getloadavg()[0]:.1f}), {time.strftime('%Y-%m-%d')}; "
        f"wrote {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
