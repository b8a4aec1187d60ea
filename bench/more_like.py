""" "More like this": how many images of a rare class one example finds, in the product's own index.

A person who has found one image of a rare class presses Shift+M on it and gets a grid page of the
``--page`` (24) images still to label most like it. For each data set, each class in turn is made rare
(1% of the pool: the other classes whole, that class cut to 1% of the pool's size, seeded) and every one
of its images is the anchor once: the table gives the mean number of the rare class's other images on
that first page, the share of them found (of those there are), and what a page in random order holds.
A second line per set, balanced: the share of a page of the anchor's own class (200 random anchors).

The index is the product's: the trainer's idle work (``training/idle.py``) over the pool's images, in
the graph's space before any label (the pixels' principal components; a frozen backbone's embeddings in
that mode). No labels, no TensorFlow training: seconds per set. Sets: those of
``bench/label_efficiency.py`` (digits, mnist5k, animals, faces; written from packages). Nothing here was
tuned: the index has no setting this bench could choose.

    .venv/bin/python bench/more_like.py --datasets digits,mnist5k,animals
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_efficiency import DATASETS, write_images  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def build_index(root: Path, paths: list[str], size: int):
    from oal_widget.config import Config
    from oal_widget.data.pool import ImagePool
    from oal_widget.training.core import TrainingCore

    names = sorted({p.split("/", 1)[0] for p in paths})
    pool = ImagePool(root, (size, size, 1), paths=paths)
    core = TrainingCore(
        pool, names, Config(input_shape=(size, size, 1)), test_paths=(), workdir=root / ".oal"
    )
    while core.idle_work.step() is not None:
        pass
    return core.idle_work.take_index()


COLUMNS = ("dataset", "pool", "rare_class", "n_pool", "n_rare", "found_on_page", "share_found", "random_page",
           "same_class_share", "index_s")  # fmt: skip


def row(dataset: str, pool: str, **values) -> dict:
    return {"dataset": dataset, "pool": pool, **{c: values.get(c, "") for c in COLUMNS[2:]}}


def run(dataset: str, page: int, seed: int) -> list[dict]:
    size = DATASETS[dataset][1]
    folder = Path(tempfile.mkdtemp(prefix=f"more_like_{dataset}_"))
    try:
        write_images(dataset, size, folder)
        everything = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
        classes = sorted({p.split("/", 1)[0] for p in everything})
        rows = []
        started = time.perf_counter()
        index = build_index(folder, everything, size)
        seconds = time.perf_counter() - started
        rng = np.random.default_rng(seed)
        anchors = rng.choice(len(everything), min(200, len(everything)), replace=False)
        same = [
            np.mean(
                [
                    q.split("/", 1)[0] == everything[i].split("/", 1)[0]
                    for q in index.nearest(everything[i], page)
                ]
            )
            for i in anchors
        ]
        share = round(float(np.mean(same)), 3)
        rows.append(
            row(
                dataset, "balanced", n_pool=len(everything), same_class_share=share, index_s=round(seconds, 2)
            )
        )
        if len(classes) < 3:
            return rows  # a 1% class of a two-class set is a detection task, not this one
        for rare in classes:
            others = [p for p in everything if not p.startswith(rare + "/")]
            mine = [p for p in everything if p.startswith(rare + "/")]
            n_rare = max(2, round(0.01 * len(others) / 0.99))
            kept = sorted(rng.choice(mine, n_rare, replace=False).tolist())
            paths = sorted(others + kept)
            index = build_index(folder, paths, size)
            found = [sum(q.startswith(rare + "/") for q in index.nearest(a, page)) for a in kept]
            random_page = page * (n_rare - 1) / (len(paths) - 1)
            mean = float(np.mean(found))
            rows.append(row(dataset, "one class at 1%", rare_class=rare, n_pool=len(paths), n_rare=n_rare,
                            found_on_page=round(mean, 2), share_found=round(mean / (n_rare - 1), 3),
                            random_page=round(random_page, 3)))  # fmt: skip
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="digits,mnist5k,animals,faces")
    parser.add_argument("--page", type=int, default=24, help="images on the page (grid_size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "more_like.csv")
    args = parser.parse_args(argv)
    rows = [row for d in args.datasets.split(",") if d for row in run(d, args.page, args.seed)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"more like this, page of {args.page}, {time.strftime('%Y-%m-%d')}")
    head = ("set", "pool", "n", "rare", "rare on page", "of them", "random", "own class")
    line = "{:<8} {:<16} {:>5} {:>4} {:>12} {:>7} {:>7} {:>9}"
    print(line.format(*head))
    for r in rows:
        if r["pool"] == "balanced":
            print(line.format(r["dataset"], "balanced", r["n_pool"], "", "", "", "", r["same_class_share"]))
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        rare = [r for r in rows if r["dataset"] == dataset and r["pool"] != "balanced"]
        if rare:
            found = np.mean([r["found_on_page"] for r in rare])
            share = np.mean([r["share_found"] for r in rare])
            rand = np.mean([r["random_page"] for r in rare])
            cells = (
                dataset,
                "one class at 1%",
                rare[0]["n_pool"],
                rare[0]["n_rare"],
                f"{found:.1f}",
                f"{share:.0%}",
            )
            print(line.format(*cells, f"{rand:.2f}", "") + f"  (mean over the {len(rare)} classes made rare)")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
