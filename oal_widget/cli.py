"""Command line: ``python -m oal_widget simulate | export | import ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m oal_widget", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser(
        "simulate",
        help="run the trainer with a simulated annotator (class = top-level sub-folder name)",
    )
    sim.add_argument("images_dir", type=Path, help="folder of images in class sub-folders")
    sim.add_argument("--strategy", default=None, help="query strategy name (default: the product's default)")
    sim.add_argument("--policy", default=None, help="exploration/exploitation policy name")
    sim.add_argument("--budget", type=int, default=200, help="training labels to give (test split excluded)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--out", type=Path, default=None, help="CSV with one row per evaluation")
    sim.add_argument("--workdir", type=Path, default=None, help="store and model folder (default: temp dir)")
    sim.add_argument("--eval-every", type=int, default=10, help="training labels between evaluations")
    sim.add_argument("--query-every", type=int, default=10, help="training labels between queries")
    sim.add_argument("--input-shape", default="32,32,1", help="H,W[,C] the model sees (default 32,32,1)")
    sim.add_argument("--quiet", action="store_true", help="no progress lines")
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
        "--timing", action="store_true", help="add train_seconds, query_seconds, queries to the CSV"
    )

    exp = sub.add_parser(
        "export", help="write the labels of a workdir as CSV, JSON or class folders (keras-loadable)"
    )
    exp.add_argument("workdir", type=Path, help="the .oal folder holding annotations.sqlite")
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

    imp = sub.add_parser(
        "import", help="label images from a CSV (path,label), a JSON export or a folder in class sub-folders"
    )
    imp.add_argument("images_dir", type=Path, help="the images folder being labelled")
    imp.add_argument("source", type=Path, help="CSV / JSON file, or a folder sorted into <label>/<image>")
    imp.add_argument("--workdir", type=Path, default=None, help="store folder (default: <images_dir>/.oal)")
    imp.add_argument("--overwrite", action="store_true", help="replace labels the store already has")
    return parser


def _label_efficiency_settings(args) -> dict:
    """The Config settings given on the command line (those left out keep Config's defaults)."""
    names = ("epsilon", "temperature", "mc_samples", "diversity", "cold_start", "schedule", "train_steps")
    settings = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.class_balance is not None:
        settings["class_balance"] = args.class_balance == "on"
    return settings


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "simulate":
            from .simulate import simulate

            shape = tuple(int(v) for v in args.input_shape.split(","))
            simulate(
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
        elif args.command == "export":
            from .data.store import open_existing
            from .reports.exports import export

            with open_existing(args.workdir) as store:
                result = export(store, args.out, args.format, images_root=args.images, split=args.split)
            print(result)
        else:
            from .session.session import Session

            # start=False: the labels go to the store only; no trainer, no TensorFlow.
            session = Session(args.images_dir, None, workdir=args.workdir, start=False)
            try:
                print(session.import_labels(args.source, overwrite=args.overwrite))
            finally:
                session.close()
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
