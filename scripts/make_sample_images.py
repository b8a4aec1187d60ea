"""Write the sample images in images/: scikit-learn's digits as PNG files, one folder per digit.

python scripts/make_sample_images.py [--out images] [--per-class 30] [--size 32]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from oal_widget.data.samples import write_digits  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="images")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = write_digits(args.out, args.per_class, args.size, args.seed)
    print(f"wrote {len(paths)} images under {args.out}/")


if __name__ == "__main__":
    main()
