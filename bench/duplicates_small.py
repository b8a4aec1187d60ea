"""Near-duplicate groups in small pools: how many look-alikes are grouped where nothing was planted, and
what that costs in recall where copies were.

A small pool gives each image a thin crowd: its third-best neighbour among 24 digits sits far lower
than among 1,797, so a pair of look-alikes can stand out above it. For each set, random subsets of
24, 100, 300 and 1,000 distinct images (``bench/duplicates.py``'s sets, exact copies and flat images
removed) are grouped twice:

- *unplanted*: the subset alone. Every group found is a false group (or one of the set's own
  near-identical images: scikit-learn's digits hold a few); ``false_pools`` is the share of pools with
  at least one group, ``false_per_1000`` the images grouped per 1,000;
- *planted*: the subset with a quarter of its images given planted copies (as ``bench/duplicates.py``):
  group precision and recall, and the recall of crops (the copies scoring lowest).

Each pool is scored once (``score_pairs``) and every rule replayed on the scores (``select_pairs``):
``relative`` (``MARGIN`` at every size), ``absolute`` (a bar at ``CLEAR`` alone, the rule before the
relative test), and the margin growing by ``THIN_MARGIN`` per tenfold below ``FULL_CROWD`` images
(``k<growth>N<full crowd>``; ``coarse`` is the module's growth alone, ``product`` adds the closer looks
at the pairs that growth alone leaves out and at the pairs left out for their crowd, as ``find_groups``:
``oal_widget.data.closer_look``). Chosen on the tuning sets
(digits, MNIST5k): the smallest growth whose false groups match ``absolute``'s at every size; animals,
faces and photos only confirm it. Results: ``results/duplicates_small.csv``.

    nice -n 10 .venv/bin/python bench/duplicates_small.py                 # tuning sets, every rule
    nice -n 10 .venv/bin/python bench/duplicates_small.py --sets animals,faces,photos --rules product
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from duplicates import RESULTS, ROOT, Base, base_images, distinct, measure, print_table, write_csv, write_pool  # noqa: E402

from oal_widget.data import duplicate_scores as scores  # noqa: E402
from oal_widget.data import duplicates as dup  # noqa: E402
from oal_widget.data.closer_look import contest_winners, rescued  # noqa: E402
from oal_widget.data.pool import ImagePool  # noqa: E402

#: Pool size -> pools drawn (fewer of the larger: their rates are averages over more images).
SIZES = {24: 30, 100: 12, 300: 6, 1000: 3}
#: Growth of the margin per tenfold fewer images, and the pool size from which it is ``MARGIN``.
GROWTHS, FULL_CROWDS = (0.08, 0.1, 0.12), (1000, 2000, 5000)


def rules(names: str) -> dict[str, dict]:
    """Rule name -> ``select_pairs`` arguments (``full_crowd`` set on the module while replaying)."""
    every = {
        "relative": {"thin_margin": 0.0},
        "absolute": {"threshold": dup.CLEAR},
        "coarse": {},
        "product": {"closer_look": True},
    }
    every |= {f"k{k}N{n}": {"thin_margin": k, "full_crowd": n} for k in GROWTHS for n in FULL_CROWDS}
    if names == "all":
        return every
    unknown = set(names.split(",")) - set(every)
    if unknown:
        raise SystemExit(f"--rules {','.join(sorted(unknown))}: unknown; choose from {', '.join(every)}")
    return {name: every[name] for name in names.split(",")}


def replay(scored: dup.ScoredPairs, rule: dict, pool=None) -> list[tuple[str, ...]]:
    """The groups ``find_groups`` would find on ``scored`` under ``rule`` (``pool``: for the closer look)."""
    rule = dict(rule)
    closer = rule.pop("closer_look", False)
    threshold = rule.pop("threshold", dup.NEAR_THRESHOLD)
    full_crowd = rule.pop("full_crowd", scores.FULL_CROWD)
    kept, scores.FULL_CROWD = scores.FULL_CROWD, full_crowd
    try:
        verified, top = dup.select_pairs(scored.pairs, threshold, scored.best, scored.start, **rule)
        if closer:
            doubtful = dup.in_doubt(scored.pairs, threshold, top, verified)
            verified |= {p: scored.pairs[p] for p in rescued(pool, scored.order, doubtful)}
            contests = dup.contested(scored.pairs, threshold, verified, scored.hashes, top)
            verified |= {p: scored.pairs[p] for p in contest_winners(pool, scored.order, contests)}
    finally:
        scores.FULL_CROWD = kept
    order = scored.order
    return [tuple(order[i] for i in members) for members in dup.grouped(len(order), verified)]


def _unplanted(sub: Base, folder: Path) -> tuple[dict, dict]:
    folder.mkdir(parents=True)
    truth, kinds = {}, {}
    for k, image in enumerate(sub.images):
        name = f"img_{k:04d}.png"
        Image.fromarray(image).save(folder / name)
        truth[name], kinds[name] = k, "original"
    return truth, kinds


def run_set(name: str, tmp: Path, chosen: dict[str, dict]) -> list[dict]:
    base = distinct(base_images(name, tmp))
    first = base.images[0]
    shape = (*first.shape[:2], 3 if first.ndim == 3 else 1)
    tally: dict[tuple[int, str], dict[str, list]] = {}
    for size, draws in SIZES.items():
        if size > 0.8 * len(base.images):  # a subset of nearly the whole set is no random pool
            continue
        for draw in range(draws):
            pick = np.random.default_rng([size, draw]).choice(len(base.images), size, replace=False)
            sub = Base([base.images[i] for i in pick], [base.context[i] for i in pick])
            for planted in (False, True):
                folder = tmp / f"{name}-{size}-{draw}-{'planted' if planted else 'alone'}"
                truth, kinds = write_pool(sub, folder, seed=draw) if planted else _unplanted(sub, folder)
                pool = ImagePool(folder, shape)
                scored = dup.score_pairs(pool)
                for rule, args in chosen.items():
                    groups = [tuple(Path(p).name for p in g) for g in replay(scored, args, pool)]
                    t = tally.setdefault((size, rule), {})
                    if planted:
                        m = measure(groups, truth, kinds)
                        for key in ("group_precision", "group_recall", "recall_crop"):
                            t.setdefault(key, []).append(m[key])
                    else:
                        t.setdefault("false_pools", []).append(bool(groups))
                        t.setdefault("false_per_1000", []).append(1000 * sum(map(len, groups)) / size)
    rows = []
    for (size, rule), t in tally.items():
        row = {"set": name, "size": size, "pools": SIZES[size], "rule": rule}
        for key in ("false_pools", "false_per_1000", "group_precision", "group_recall", "recall_crop"):
            row[key] = round(float(np.nanmean(t[key])), 3)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="digits,mnist5k")
    parser.add_argument("--rules", default="all", help="comma-separated rule names, or all")
    parser.add_argument("--out", type=Path, default=RESULTS / "duplicates_small.csv")
    args = parser.parse_args(argv)
    chosen = rules(args.rules)
    cache = ROOT / "bench" / "out"
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=cache) as tmp_name:
        for name in args.sets.split(","):
            rows += run_set(name, Path(tmp_name), chosen)
            print(f"{name}: done", flush=True)
    print_table(rows, list(rows[0]))
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
