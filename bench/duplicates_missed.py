"""Why planted near-duplicates are missed: for each planted copy not grouped with its original, the step
that lost it, per set and kind of copy.

The pools are ``bench/duplicates.py``'s (same sets, same planting, same seeds). Each pool is scored once
(``score_pairs``) and the product's rule is followed pair by pair, the copy paired with its original:

- ``no candidate``: the candidate search (faiss over the coarse descriptor and its zoomed-in queries)
  never proposed the pair, so it was never verified;
- ``under floor``: verified, scored below ``NEAR_THRESHOLD``;
- ``margin``: reached the floor, but stood less than ``MARGIN`` (``CLEAR_MARGIN`` from ``CLEAR`` on)
  above the higher of its two images' ``CROWD_RANK``-th best scores, and did not win its contest at the
  closer look (``closer_look.contest_winners``; ``--coarse``: without that look);
- ``small pool``: stood ``MARGIN`` above its crowd, not the grown ``pool_margin``, and the closer look
  (``closer_look.rescued``) did not confirm it;
- ``linking``: kept, but the groups joined it elsewhere (another partner was better, or its group
  holds other images).

Columns ``score``, ``crowd``: medians of the missed pairs' scores and crowds (the higher third-best of
the two images). ``--rows`` prints every missed pair. Results: ``results/duplicates_missed.csv``
(``--coarse``: ``results/duplicates_missed_coarse.csv``).

    nice -n 10 .venv/bin/python bench/duplicates_missed.py --sets photos,faces --seeds 2 --coarse
    nice -n 10 .venv/bin/python bench/duplicates_missed.py --sets photos,faces --seeds 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from duplicates import KINDS, RESULTS, ROOT, base_images, distinct, print_table, write_csv, write_pool  # noqa: E402

from oal_widget.data import duplicate_scores as scores  # noqa: E402
from oal_widget.data import duplicates as dup  # noqa: E402
from oal_widget.data.closer_look import contest_winners, rescued  # noqa: E402
from oal_widget.data.pool import ImagePool  # noqa: E402

STEPS = ("no candidate", "under floor", "margin", "small pool", "linking")


def missed_pairs(name: str, seed: int, tmp: Path, coarse: bool = False) -> list[dict]:
    """One row per planted copy, with the step that lost it (``found`` when it was grouped right);
    ``coarse``: without the closer look at pairs left out for their crowd."""
    base = distinct(base_images(name, tmp))
    folder = tmp / f"pool-{name}-{seed}"
    truth, kinds = write_pool(base, folder, seed)
    first = base.images[0]
    pool = ImagePool(folder, (*first.shape[:2], 3 if first.ndim == 3 else 1))
    scored = dup.score_pairs(pool)
    threshold = scores.NEAR_THRESHOLD
    verified, top = dup.select_pairs(scored.pairs, threshold, scored.best, scored.start)
    doubtful = dup.in_doubt(scored.pairs, threshold, top, verified)
    kept = dict(verified)
    kept |= {p: scored.pairs[p] for p in rescued(pool, scored.order, doubtful)}
    if not coarse:  # as find_groups: the pairs left out for their crowd get a closer look
        contests = dup.contested(scored.pairs, threshold, kept, scored.hashes, top)
        kept |= {p: scored.pairs[p] for p in contest_winners(pool, scored.order, contests)}
    groups = dup.grouped(len(scored.order), kept)
    group_of = {i: k for k, members in enumerate(groups) for i in members}
    at = {Path(p).name: i for i, p in enumerate(scored.order)}
    original = {truth[p]: at[p] for p, kind in kinds.items() if kind == "original"}
    crowd = [t[-1] if len(t) == scores.CROWD_RANK else -1.0 for t in top]
    margin = dup.pool_margin(len(scored.order))
    rows = []
    for path, kind in kinds.items():
        if kind == "original":
            continue
        i, j = sorted((at[path], original[truth[path]]))
        score = scored.pairs.get((i, j))
        c = max(crowd[i], crowd[j])
        if i in group_of and group_of[i] == group_of.get(j):
            step = "found"
        elif score is None:
            step = "no candidate"
        elif score < threshold:
            step = "under floor"
        elif not dup.stands_out(score, c):
            step = "margin"
        elif not dup.stands_out(score, c, margin):
            step = "small pool"
        else:
            step = "linking"
        rows.append(
            {
                "set": name,
                "seed": seed,
                "kind": kind,
                "step": step,
                "score": np.nan if score is None else round(score, 3),
                "crowd": round(c, 3),
                "file": path,
            }
        )
    return rows


def table(rows: list[dict]) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["set"] for r in rows):
        for kind in KINDS:
            these = [r for r in rows if r["set"] == name and r["kind"] == kind]
            lost = [r for r in these if r["step"] != "found"]
            row = {"set": name, "kind": kind, "copies": len(these), "missed": len(lost)}
            for step in STEPS:
                row[step] = sum(r["step"] == step for r in lost)
            scored = [r["score"] for r in lost if not np.isnan(r["score"])]
            row["score"] = round(float(np.median(scored)), 3) if scored else np.nan
            row["crowd"] = round(float(np.median([r["crowd"] for r in lost])), 3) if lost else np.nan
            out.append(row)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="photos,faces")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--rows", action="store_true", help="print every missed pair")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--coarse", action="store_true", help="without the closer look at crowded pairs")
    args = parser.parse_args(argv)
    cache = ROOT / "bench" / "out"
    cache.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(dir=cache) as tmp_name:
        for name in args.sets.split(","):
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                rows += missed_pairs(name, seed, Path(tmp_name), args.coarse)
    summary = table(rows)
    print_table(summary, list(summary[0]))
    name = "duplicates_missed_coarse.csv" if args.coarse else "duplicates_missed.csv"
    write_csv(summary, args.out or RESULTS / name)
    if args.rows:
        lost = [r for r in rows if r["step"] != "found"]
        print_table(lost, list(lost[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
