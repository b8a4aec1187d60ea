"""Near-duplicate groups on the LFW set, split: the 100 faces and the 100 non-faces (scikit-image's
``lfw_subset`` holds both; its non-faces are background crops, mostly flat grey with an edge).

The pools are ``bench/duplicates.py``'s ``faces`` (same planting, same seeds); each planted group counts
for the part its original comes from. A confirmation set: this says where the misses are, it chose
nothing. Results: ``results/duplicates_faces_split.csv``.

    nice -n 10 .venv/bin/python bench/duplicates_faces_split.py --seeds 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from duplicates import RESULTS, ROOT, _to_uint8, base_images, distinct, print_table, write_csv, write_pool  # noqa: E402

from oal_widget.data import duplicates as dup  # noqa: E402
from oal_widget.data.pool import ImagePool  # noqa: E402


def split(seed: int, tmp: Path) -> list[dict]:
    from skimage.data import lfw_subset

    faces = {im.tobytes() for im in _to_uint8(lfw_subset())[:100]}  # the first 100 are the faces
    base = distinct(base_images("faces", tmp))
    is_face = [im.tobytes() in faces for im in base.images]
    folder = tmp / f"pool-faces-{seed}"
    truth, _ = write_pool(base, folder, seed)
    found = [set(g) for g in dup.find_groups(ImagePool(folder, (25, 25, 1))).groups]
    planted: dict[int, set] = {}
    for path, i in truth.items():
        planted.setdefault(i, set()).add(path)
    rows = []
    for part, face in (("faces", True), ("non-faces", False)):
        groups = [g for i, g in planted.items() if len(g) > 1 and is_face[i] == face]
        mine = [g for g in found if is_face[truth[next(iter(g))]] == face]
        pure = [len({truth[p] for p in g}) == 1 for g in mine]
        hit = sum(any(f == g for f in found) for g in groups)
        rows.append(
            {
                "seed": seed,
                "part": part,
                "originals": sum(f == face for f in is_face),
                "planted_groups": len(groups),
                "group_recall": round(hit / len(groups), 3) if groups else np.nan,
                "found_groups": len(mine),
                "group_precision": round(sum(pure) / len(mine), 3) if mine else np.nan,
            }
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "duplicates_faces_split.csv")
    args = parser.parse_args(argv)
    cache = ROOT / "bench" / "out"
    cache.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows += split(seed, Path(tmp))
    print_table(rows, list(rows[0]))
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
