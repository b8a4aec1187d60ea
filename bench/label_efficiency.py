"""Label efficiency: learning curves of query strategies against random, on scikit-learn's 1,797 digits.

One command: ``.venv/bin/python bench/label_efficiency.py`` (about 10-15 min on 2 CPU cores).

Every run is the product's own loop, ``python -m oal_widget simulate`` (a simulated annotator answers
with the class folder), in its own process. Seeds are paired: for one seed every configuration gets
the same test split, the same first labels and the same initial weights, so differences between
configurations are not differences of luck. Writes ``bench/results/label_efficiency.csv`` (one row per
evaluation of every run), ``label_efficiency_summary.csv`` (the table) and ``label_efficiency.png``
(all configurations on one plot: mean and min-max band over the seeds), and prints the table.
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
#: The others say --cold-start 0 so that each differs from plain margin in one thing only.
_OPTIONS = {
    "random": "--strategy random --policy greedy",
    "default": "",
    # The foundation's default, kept as the default by this benchmark (so "default" runs the same).
    "margin+eps0.1": "--strategy margin --policy epsilon_greedy --epsilon 0.1 --cold-start 0",
    # The first choice from an exploration run: power and a cold start, each better there on its own.
    "margin+power+cold2": "--strategy margin --policy power --cold-start 2",
    "margin": "--strategy margin --policy greedy --cold-start 0",
    "margin+power": "--strategy margin --policy power --cold-start 0",
    "margin+cold2": "--strategy margin --policy greedy --cold-start 2",
    "margin+kcenter": "--strategy margin --policy greedy --diversity kcenter --cold-start 0",
    "margin+eps+kcenter": "--strategy margin --policy epsilon_greedy --diversity kcenter --cold-start 0",
    "bald": "--strategy bald --policy greedy --cold-start 0",
    "bandit": "--strategy bandit --policy greedy --cold-start 0",
    "entropy": "--strategy entropy --policy greedy --cold-start 0",
    "margin+shrink": "--strategy margin --policy greedy --schedule shrink_perturb --cold-start 0",
    "margin+refit": "--strategy margin --policy greedy --schedule refit --cold-start 0",
    "margin+balanced": "--strategy margin --policy greedy --class-balance on --cold-start 0",
}
CONFIGS = {name: options.split() for name, options in _OPTIONS.items()}
#: What one plain command runs (about 10 min on 2 idle cores): "old default" is the foundation's default.
DEFAULT_SET = (
    "random",
    "default",
    "margin",
    "margin+power",
    "margin+cold2",
    "margin+power+cold2",
    "margin+kcenter",
    "bald",
    "bandit",
    "margin+shrink",
    "margin+balanced",
)
QUICK = ("random", "default", "margin", "bald")
BUDGETS = (20, 50, 100, 200, 300, 500)
TARGETS = (0.90, 0.95)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--configs", default=",".join(DEFAULT_SET), help=f"comma-separated, from {list(CONFIGS)}"
    )
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}, 2 seeds, 150 labels")
    parser.add_argument("--seeds", type=int, default=3, help="paired seeds: N of them (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first..first+N-1 (default 0)")
    parser.add_argument("--budget", type=int, default=300, help="training labels per run (default 300)")
    parser.add_argument(
        "--random-budget",
        type=int,
        default=500,
        help="labels for random (default 500): it needs more to reach 95%%, the ratios are to its curve",
    )
    parser.add_argument("--size", type=int, default=16, help="image side in pixels (default 16)")
    parser.add_argument("--every", type=int, default=10, help="labels between evaluations and queries")
    parser.add_argument("--jobs", type=int, default=2, help="runs at the same time (default 2: 2 cores)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the CSVs and the PNG")
    parser.add_argument("--tag", default="label_efficiency", help="file name stem of the outputs")
    parser.add_argument(
        "--from-csv", type=Path, default=None, help="no runs: table and plot again from a CSV this wrote"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.seeds, args.budget, args.random_budget = ",".join(QUICK), 2, 150, 200
    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}: choose from {list(CONFIGS)}")
    if "random" not in names:
        names.insert(0, "random")  # every ratio is to random
    args.names = names
    return args


def _seeds(args) -> range:
    return range(args.first_seed, args.first_seed + args.seeds)


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
        rows = list(csv.DictReader(f))
    return [{**r, "config": name} for r in rows]


def curves(rows: list[dict], names: list[str], seeds):
    """{config: (n_labels (m,), accuracy (seeds, m))} on the evaluation points all seeds share."""
    out = {}
    for name in names:
        per_seed = []
        for seed in seeds:
            mine = {
                int(r["n_labels"]): float(r["accuracy"])
                for r in rows
                if r["config"] == name and int(r["seed"]) == seed
            }
            per_seed.append(mine)
        ns = sorted(set.intersection(*(set(m) for m in per_seed)))
        out[name] = (np.array(ns), np.array([[m[n] for n in ns] for m in per_seed]))
    return out


def labels_to_reach(ns: np.ndarray, acc: np.ndarray, target: float) -> float:
    """First evaluated label count where the accuracy reaches ``target`` (NaN: not within the budget)."""
    hit = np.flatnonzero(acc >= target)
    return float(ns[hit[0]]) if len(hit) else math.nan


def summarise(rows, names, args) -> list[dict]:
    data = curves(rows, names, _seeds(args))
    rns, racc = data["random"]
    table = []
    for name in names:
        ns, acc = data[name]
        mean = acc.mean(axis=0)
        within = ns <= args.budget  # random runs further; compare areas on the same range
        row = {"config": name, "options": " ".join(CONFIGS[name]) or "(product defaults)"}
        for b in BUDGETS:
            if b in ns:
                i = int(np.flatnonzero(ns == b)[0])
                row[f"acc@{b}"] = round(float(mean[i]), 4)
        # Area under the learning curve: mean accuracy over the shared evaluation points (trapezoid / span).
        xs, ys = ns[within], mean[within]
        row["aulc"] = round(float(np.trapezoid(ys, xs) / (xs[-1] - xs[0])), 4) if len(xs) > 1 else math.nan
        for t in TARGETS:
            # Labels to reach the target on the MEAN curve, and its ratio to random's.
            need = labels_to_reach(ns, mean, t)
            rneed = labels_to_reach(rns, racc.mean(axis=0), t)
            row[f"labels@{t:.0%}"] = need
            row[f"ratio@{t:.0%}"] = (
                round(need / rneed, 3) if math.isfinite(need) and math.isfinite(rneed) else math.nan
            )
            per_seed = [labels_to_reach(ns, a, t) for a in acc]
            row[f"labels@{t:.0%} per seed"] = "/".join(
                "-" if math.isnan(v) else str(int(v)) for v in per_seed
            )
        # Paired difference to random from 20 labels up: its worst mean, and the noise (2 standard errors).
        common = [n for n in ns if 20 <= n <= args.budget and n in rns]
        if name != "random" and common:
            ia = [int(np.flatnonzero(ns == n)[0]) for n in common]
            ir = [int(np.flatnonzero(rns == n)[0]) for n in common]
            diff = acc[:, ia] - racc[:, ir]
            d = diff.mean(axis=0)
            se = diff.std(axis=0, ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else np.zeros_like(d)
            worst = int(np.argmin(d))
            row["worst_vs_random"] = round(float(d[worst]), 4)
            row["worst_at"] = int(common[worst])
            row["below_random_beyond_noise"] = int(np.sum(d + 2 * se < 0))
        mine = [r for r in rows if r["config"] == name]
        last = {}
        for r in mine:  # the cumulative timing of each run's last row
            last[int(r["seed"])] = r
        q = sum(float(r["query_seconds"]) for r in last.values())
        nq = sum(int(r["queries"]) for r in last.values())
        tr = sum(float(r["train_seconds"]) for r in last.values())
        nl = sum(int(r["n_labels"]) for r in last.values())
        row["s_per_query"] = round(q / nq, 3) if nq else math.nan
        row["s_per_update"] = round(tr / nl, 4) if nl else math.nan
        table.append(row)
    return table


def plot(rows, names, args, path: Path) -> None:
    from matplotlib.figure import Figure

    data = curves(rows, names, _seeds(args))
    fig = Figure(figsize=(9, 5.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for name in names:
        ns, acc = data[name]
        style = {"lw": 1.2, "alpha": 0.8}
        if name in ("random", "default"):  # the comparison that matters: drawn on top, with their spread
            style = {"lw": 2.8, "zorder": 5, "color": "black" if name == "random" else "tab:red"}
        (line,) = ax.plot(ns, acc.mean(axis=0), label=name, **style)
        if name in ("random", "default"):
            ax.fill_between(
                ns, acc.min(axis=0), acc.max(axis=0), color=line.get_color(), alpha=0.15, zorder=4
            )
    for t in TARGETS:
        ax.axhline(t, color="grey", ls=":", lw=0.8)
    ax.set_ylim(0.5, 1.0)
    ax.set_xlabel("training labels")
    ax.set_ylabel("test accuracy")
    ax.set_title(
        f"digits (1,797, {args.size}x{args.size}): mean over {args.seeds} paired seeds "
        f"(band: min-max of random and default), {time.strftime('%Y-%m-%d')}",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, ncol=2)
    fig.savefig(path)


def print_table(table) -> None:
    cols = ["config", *[f"acc@{b}" for b in BUDGETS], "aulc", "labels@90%", "ratio@90%", "labels@95%"]
    cols += ["ratio@95%", "worst_vs_random", "s_per_query", "s_per_update"]
    print("  ".join(f"{c:>15}" if i else f"{c:<16}" for i, c in enumerate(cols)))
    for row in table:
        cells = []
        for i, c in enumerate(cols):
            v = row.get(c, "")
            text = f"{v:.4g}" if isinstance(v, float) else str(v)
            cells.append(f"{text:>15}" if i else f"{text:<16}")
        print("  ".join(cells))


def main(argv=None) -> int:
    args = parse_args(argv)
    from oal_widget.data.samples import write_digits

    start = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_csv is not None:
        with args.from_csv.open(newline="") as f:
            rows = list(csv.DictReader(f))
        args.names = list(dict.fromkeys(r["config"] for r in rows))
        args.seeds = len({r["seed"] for r in rows})
        args.first_seed = min(int(r["seed"]) for r in rows)
        return _report(rows, args, start, runs=0)
    with tempfile.TemporaryDirectory(prefix="oal-bench-") as tmp:
        tmp = Path(tmp)
        images = tmp / "digits"
        write_digits(images, per_class=None, size=args.size, seed=0)
        jobs = [(name, seed) for seed in _seeds(args) for name in args.names]
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
    return _report(rows, args, start, runs=len(jobs))


def _report(rows, args, start, runs: int) -> int:
    """Summary CSV, plot and printed table from the rows of every run."""
    stem = args.out / args.tag
    table = summarise(rows, args.names, args)
    with open(f"{stem}_summary.csv", "w", newline="") as f:
        keys = list(dict.fromkeys(k for row in table for k in row))
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(table)
    plot(rows, args.names, args, Path(f"{stem}.png"))
    print_table(table)
    print(
        f"\n{runs} runs ({args.seeds} seeds, budget {args.budget}, {args.size}x{args.size}) in "
        f"{time.monotonic() - start:.0f} s on {os.cpu_count()} CPU cores; wrote {stem}.csv, "
        f"{stem}_summary.csv, {stem}.png"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
