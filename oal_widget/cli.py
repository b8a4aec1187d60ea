"""Command line: ``python -m oal_widget simulate | export | import | copy-store ...``.

Wherever a store goes, a workdir (SQLite) or a ``postgresql://`` URL (PostgreSQL, with ``--project``)
is accepted; a URL is only ever printed with its password masked.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .data.store.errors import StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m oal_widget", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser(
        "simulate",
        help="a simulated person labels in the panel's order (class = top-level sub-folder name); "
        "true accuracy on an oracle set nobody labels",
    )
    sim.add_argument("images_dir", type=Path, help="folder of images in class sub-folders")
    sim.add_argument("--strategy", default=None, help="query strategy name (default: the product's default)")
    sim.add_argument("--policy", default=None, help="exploration/exploitation policy name")
    sim.add_argument("--budget", type=int, default=200, help="labels to give in all, test labels included")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument(
        "--out",
        type=Path,
        default=None,
        help="CSV with one row per evaluation; per-class rows (labels given, oracle recall and precision) "
        "go to <stem>_per_class.csv beside it",
    )
    sim.add_argument("--workdir", type=Path, default=None, help="store and model folder (default: temp dir)")
    sim.add_argument("--eval-every", type=int, default=10, help="training labels between evaluations")
    sim.add_argument("--query-every", type=int, default=10, help="training labels between queries")
    sim.add_argument("--input-shape", default="32,32,1", help="H,W[,C] the model sees (default 32,32,1)")
    sim.add_argument("--quiet", action="store_true", help="no progress lines")
    sim.add_argument(
        "--tf-logs", action="store_true", help="show TensorFlow's C++ start-up lines (hidden by default)"
    )
    # Label-efficiency settings (Config fields of the same name; default: the product's default).
    sim.add_argument("--epsilon", type=float, default=None, help="exploration share of epsilon_greedy")
    sim.add_argument("--temperature", type=float, default=None, help="power/softmax policy temperature")
    sim.add_argument("--mc-samples", type=int, default=None, help="Monte-Carlo dropout passes for bald")
    sim.add_argument("--diversity", default=None, help="none or kcenter (spread each batch over embeddings)")
    sim.add_argument(
        "--cold-start", type=int, default=None, help="random order until each class has N labels"
    )
    sim.add_argument("--schedule", default=None, help="warm, shrink_perturb or refit")
    sim.add_argument(
        "--class-balance", default=None, choices=("on", "off"), help="class-balanced training batches"
    )
    sim.add_argument("--train-steps", type=int, default=None, help="gradient steps per label")
    sim.add_argument(
        "--typical-start", type=int, default=None, help="first N training labels: TypiClust (0: off)"
    )
    sim.add_argument(
        "--seek-share",
        type=float,
        default=None,
        help="share of the order seeking the classes with fewest labels (0: off; default 0.5)",
    )
    sim.add_argument(
        "--propagation", default=None, choices=("on", "off"), help="blend in label spreading over the images"
    )
    sim.add_argument(
        "--semi-supervised",
        default=None,
        choices=("on", "off"),
        help="pseudo-labels from the unlabelled images",
    )
    sim.add_argument(
        "--augment", default=None, choices=("on", "off"), help="shift training images by a few pixels"
    )
    sim.add_argument(
        "--representation", default=None, choices=("on", "off"), help="learn features from the pool's images"
    )
    sim.add_argument("--pseudo-threshold", type=float, default=None, help="confidence of a pseudo-label")
    sim.add_argument("--pseudo-ratio", type=float, default=None, help="pseudo-labels per training label")
    sim.add_argument(
        "--test-fraction", type=float, default=None, help="share of the images reserved for testing"
    )
    sim.add_argument(
        "--timing",
        action="store_true",
        help="add train_seconds, query_seconds, queries, trainer_s_per_label to the CSV; print the "
        "trainer's seconds per training label",
    )

    exp = sub.add_parser(
        "export", help="write the labels of a store as CSV, JSON or class folders (keras-loadable)"
    )
    exp.add_argument("store", help="the .oal folder (or images folder) holding annotations.sqlite, or a URL")
    exp.add_argument("--out", type=Path, required=True, help="file (csv, json) or folder (folders) to write")
    exp.add_argument(
        "--format",
        default=None,
        help="csv, json or folders; default: from --out's suffix (.csv, .json; anything else: folders)",
    )
    exp.add_argument(
        "--split", default="all", help="folders only: all, train, test, or both (out/train, out/test)"
    )
    exp.add_argument("--images", type=Path, default=None, help="folders only: the images folder if it moved")
    exp.add_argument("--project", default=None, help="the project (needed when the store holds several)")

    imp = sub.add_parser(
        "import", help="label images from a CSV (path,label), a JSON export or a folder in class sub-folders"
    )
    imp.add_argument("images_dir", type=Path, help="the images folder being labelled")
    imp.add_argument("source", type=Path, help="CSV / JSON file, or a folder sorted into <label>/<image>")
    imp.add_argument(
        "--workdir", default=None, help="store folder (default: <images_dir>/.oal) or a postgresql:// URL"
    )
    imp.add_argument("--project", default=None, help="the project (default: the images folder's name)")
    imp.add_argument("--annotator", default=None, help="who the labels are from (default: the login name)")
    imp.add_argument("--overwrite", action="store_true", help="replace labels the store already has")

    cop = sub.add_parser(
        "copy-store",
        help="copy a project between stores (workdir <-> PostgreSQL): labels, provenance, annotations, "
        "test split, label names and history",
    )
    cop.add_argument("src", help="a workdir (.oal folder or images folder) or a postgresql:// URL")
    cop.add_argument("dst", help="a workdir (created if missing) or a postgresql:// URL")
    cop.add_argument("--project", default=None, help="the project to copy (needed when SRC holds several)")
    cop.add_argument("--dst-project", default=None, help="its name in DST (default: the same name)")
    return parser


def _label_efficiency_settings(args) -> dict:
    """The Config settings given on the command line (those left out keep Config's defaults)."""
    names = (
        "epsilon",
        "temperature",
        "mc_samples",
        "diversity",
        "cold_start",
        "schedule",
        "train_steps",
        "typical_start",
        "test_fraction",
        "pseudo_threshold",
        "pseudo_ratio",
        "seek_share",
    )
    settings = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    for switch in ("class_balance", "propagation", "semi_supervised", "augment", "representation"):
        if getattr(args, switch) is not None:
            settings[switch] = getattr(args, switch) == "on"
    return settings


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "simulate":
            from .simulate import simulate
            from .training.quiet_tf import import_tensorflow

            if args.tf_logs:
                os.environ["OAL_TF_LOGS"] = "1"
            import_tensorflow()  # before simulate's own import: TensorFlow's start-up lines stay off

            shape = tuple(int(v) for v in args.input_shape.split(","))
            rows = simulate(
                args.images_dir,
                strategy=args.strategy,
                policy=args.policy,
                budget=args.budget,
                seed=args.seed,
                out=args.out,
                workdir=args.workdir,
                eval_every=args.eval_every,
                query_every=args.query_every,
                input_shape=shape,
                progress=None if args.quiet else print,
                timing=args.timing,
                bar=not args.quiet,
                **_label_efficiency_settings(args),
            )
            if args.timing and rows:
                last = rows[-1]
                print(
                    f"trainer: {last['trainer_s_per_label']:.3f} s per training label "
                    f"({last['train_seconds']:.1f} s training, {last['query_seconds']:.1f} s in "
                    f"{last['queries']} queries, {last['n_train']} training labels)"
                )
        elif args.command == "export":
            from .reports.exports import export

            with _open_existing(args.store, args.project) as store:
                result = export(store, args.out, args.format, images_root=args.images, split=args.split)
            print(result)
        elif args.command == "import":
            print(_import(args))
        else:
            print(_copy_store(args.src, args.dst, args.project, args.dst_project))
    except (ValueError, FileNotFoundError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


# --- stores named on the command line ------------------------------------------------------------
def _open_existing(where: str, project: str | None):
    """The store ``where`` names, which must exist (a labelled workdir, or a URL with the project)."""
    from .data.store import is_postgres_url, open_existing, open_store

    if is_postgres_url(where):
        return open_store(where, project=project, create=False)
    return open_existing(where, project=project)


def _import(args):
    """Labels from a file into the store of an images folder, with source ``imported``.

    As a session would: the label names come from the file when the store has none, and the test
    split is fixed first (Config's test_fraction and seed), so an imported test image is a test label.
    """
    from .config import Config
    from .data.pool import scan, split_test
    from .data.store import is_postgres_url, open_store
    from .reports.imports import import_labels

    images = Path(args.images_dir).expanduser().resolve()
    paths, _skipped = scan(images)  # FileNotFoundError names a missing folder
    if not paths:
        raise ValueError(f"{images} holds no images: pass the folder being labelled")
    where = args.workdir if args.workdir is not None else str(images / ".oal")
    url = where if is_postgres_url(where) else None
    with open_store(
        url,
        workdir=None if url else where,
        images_root=images,
        project=args.project,
        annotator=args.annotator,
    ) as store:
        if not store.test_paths():
            labelled = store.labels()
            defaults = Config()
            candidates = [p for p in paths if p not in labelled]
            test = split_test(candidates, defaults.test_fraction, defaults.seed)
            if test:
                store.add_test_paths(sorted(test))
        return import_labels(store, args.source, images, paths, overwrite=args.overwrite)


def _copy_store(src: str, dst: str, project: str | None, dst_project: str | None) -> str:
    from .data.store import is_postgres_url, open_store

    with _open_existing(src, project) as source:
        dump = source.dump()
        where = source.location_text()
    name = dst_project or dump.name
    url = dst if is_postgres_url(dst) else None
    with open_store(url, workdir=None if url else dst, project=name) as target:
        target.load(dump)
        return f"copied project {name!r} ({dump.summary()}) from {where} to {target.location_text()}"
