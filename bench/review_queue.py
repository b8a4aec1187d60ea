"""How well the review queue finds wrong labels: labels flipped on purpose, the real model, the real session.

For each seed: one of ``label_efficiency.py``'s sets (``--dataset``: scikit-learn's digits as 16x16 PNGs by
default; ``mnist5k``, ``animals``, ``faces`` at their own size), a ``Session`` with the
product's default small CNN trained synchronously (``simulate.SyncTrainer``: one training round of
``train_steps`` steps per label, as the simulator does), no test split (every label is a training label
the review queue can rank). A simulated person labels ``--labels`` images in the panel's order; a share
``--flip`` of them, drawn at random, get a wrong label (another class, at random). Then the queue is
ranked from ``first_sight`` (each image's prediction before the model trained on it) and the first
``--top`` images are checked: how many flipped labels they hold, against ``top * flipped / labels``
expected of ``top`` images drawn at random (the ratio; its ceiling is ``labels / top`` when every
flipped label is in the top). Each ranking method of ``session.review.METHODS`` is measured.

    .venv/bin/python bench/review_queue.py                 # seeds 0 1 2, 150 labels, 10% flipped, top 50
    .venv/bin/python bench/review_queue.py --seeds 0 1 2 3 4 --labels 300
    .venv/bin/python bench/review_queue.py --dataset animals --labels 50   # -> review_queue_animals_50.csv

The judge's window and threshold (``session.review``) were chosen on digits; mnist5k, animals and faces
only confirm them.

Writes ``bench/results/review_queue.csv`` (digits; ``review_queue_<dataset>_<labels>.csv`` for another
set; one row per seed and method, plus the means) and prints the table.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import report  # noqa: E402
from label_efficiency import DATASETS, write_images  # noqa: E402

from oal_widget.session.review import METHODS, rank  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def flipped_run(
    images: Path, n_labels: int, flip: float, seed: int, workdir: Path, size: int = 16, train_steps: int = 10
):
    """Label ``n_labels`` images in the session's order, a share ``flip`` of them wrongly; returns
    (first_sight, given labels, the set of flipped paths, label names)."""
    from oal_widget.session.session import Session
    from oal_widget.simulate import SyncTrainer, _seed_everything

    _seed_everything(seed)
    names = sorted(d.name for d in images.iterdir() if d.is_dir())
    session = Session(
        images,
        names,
        trainer_factory=SyncTrainer,
        input_shape=(size, size, 1),
        test_fraction=0.0,
        seed=seed,
        train_steps=train_steps,
        workdir=workdir,
        image_cache=False,
    )
    try:
        rng = random.Random(seed)
        flipped = set()
        for _ in range(n_labels):
            path = session.current
            truth = path.split("/", 1)[0]
            label = truth
            if rng.random() < flip:
                label = rng.choice([n for n in names if n != truth])
                flipped.add(path)
            session.label(label)
            session.trainer.train_round()
        return session.first_sight(), dict(session.labels()), flipped, names
    finally:
        session.close(stop=False)


def measure(first_sight, labels, flipped, names, top: int, method: str) -> dict:
    paths = [p for p in first_sight if p in labels]
    probs = np.stack([first_sight[p] for p in paths])
    given = np.array([names.index(labels[p]) for p in paths])
    order, _, flags, _ = rank(probs, given, len(names), method)
    ranked = [paths[i] in flipped for i in order]
    hits = sum(ranked[:top])
    n_flipped = sum(ranked)
    expected = top * n_flipped / len(paths)
    # Rank-based ROC AUC: the chance a flipped label is ranked before a correct one.
    positions = np.flatnonzero(ranked)
    before = sum(len(ranked) - pos - 1 - (n_flipped - k) for k, pos in enumerate(positions, start=1))
    auc = before / (n_flipped * (len(ranked) - n_flipped)) if 0 < n_flipped < len(ranked) else float("nan")
    return {
        "hits": hits,
        "precision_at_flipped": sum(ranked[:n_flipped]) / max(1, n_flipped),
        "auc": auc,
        "expected_random": expected,
        "ratio": hits / expected if expected else float("nan"),
        "recall": hits / max(1, len(flipped)),
        "flagged": int(flags.sum()),
        "flagged_flipped": int(sum(flags[i] for i in range(len(paths)) if paths[i] in flipped)),
        # Correct labels marked "likely mistake": what costs a person their trust in the queue.
        "flagged_correct": int(sum(flags[i] for i in range(len(paths)) if paths[i] not in flipped)),
        "correct": len(paths) - sum(p in flipped for p in paths),
        "scored": len(paths),
        "flipped": len(flipped),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--labels", type=int, default=150)
    ap.add_argument("--flip", type=float, default=0.1)
    ap.add_argument("--top", type=int, default=50)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.out is None:
        stem = "review_queue" if args.dataset == "digits" else f"review_queue_{args.dataset}_{args.labels}"
        args.out = RESULTS / f"{stem}.csv"
    size = DATASETS[args.dataset][1]
    rows, ratios = [], {m: [] for m in METHODS}
    correct_flagged = [0, 0]  # correct labels marked "likely mistake", correct labels (all seeds)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oal-review-bench-") as tmp:
        images = Path(tmp) / args.dataset
        write_images(args.dataset, size, images)
        for seed in args.seeds:
            t = time.monotonic()
            run = flipped_run(images, args.labels, args.flip, seed, Path(tmp) / f"work{seed}", size)
            seconds = time.monotonic() - t
            for method in METHODS:
                m = measure(*run, top=args.top, method=method)
                ratios[method].append(m["ratio"])
                note = (
                    f"{m['hits']} of {m['flipped']} flipped in the top {args.top} (random: "
                    f"{m['expected_random']:.1f}); precision at {m['flipped']} "
                    f"{m['precision_at_flipped']:.2f}; AUC {m['auc']:.3f}; flagged {m['flagged']} "
                    f"({m['flagged_flipped']} flipped, {m['flagged_correct']} of {m['correct']} correct); "
                    f"run {seconds:.0f} s"
                )
                rows.append((f"ratio {method} seed {seed}", m["ratio"], "x", "", note))
                if method == METHODS[0]:
                    correct_flagged[0] += m["flagged_correct"]
                    correct_flagged[1] += m["correct"]
    for method in METHODS:
        values = np.array(ratios[method])
        note = f"min {values.min():.2f} max {values.max():.2f} over {len(values)} seeds"
        rows.append((f"ratio {method} mean", float(values.mean()), "x", ">1", note))
    share = correct_flagged[0] / max(1, correct_flagged[1])
    rows.append((
        "correct labels flagged", share, "share", "<=0.05",
        f"{correct_flagged[0]} of {correct_flagged[1]} correct labels marked 'likely mistake' (all seeds)",
    ))  # fmt: skip
    load = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report(
        f"Review queue ({args.dataset}): flipped labels in its top {args.top} against {args.top} at random "
        f"({args.labels} labels, {args.flip:.0%} flipped, ceiling {args.labels / args.top:.1f}x)",
        rows,
        args.out,
        extra={
            "dataset": args.dataset,
            "labels": args.labels,
            "flip": args.flip,
            "top": args.top,
            "load1": f"{load:.1f}",
        },
    )
    print(f"{time.monotonic() - started:.0f} s in all; load average {load:.1f}")


if __name__ == "__main__":
    main()
