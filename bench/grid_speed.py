"""Labels committed per minute: the grid against the single view, for a simulated person who accepts the
model's right predictions and fixes its wrong ones.

The labelling runs on the product's own code: a real ``Session`` (order, test split, store), the real
grid page logic (``session.grid.Grid``) and the single view's actions (``accept_prediction``, ``label``),
with the default small CNN trained by the real trainer core, synchronously (``simulate.SyncTrainer``:
one training round per label given, a query every ``query_every`` training labels), on scikit-learn's
digits as 16x16 PNGs. So the predictions the person sees, and how often they are right, are real.
The person is perfect (every label stored is the true one); only their TIME is modelled:

===============  =======  ==========================================================================
name             seconds  what
===============  =======  ==========================================================================
KEY              0.28     one key press (the Keystroke-Level Model's K for an average typist;
                          Card, Moran & Newell 1983)
POINT            1.10     one pointing move with the mouse (KLM's P); the person takes it instead of
                          the arrow keys when it is cheaper
CHECK            0.60     look at an image and check the label shown with it (assumption)
RECALL           0.60     more, to decide the class when no right label is shown (naming an image
                          unaided: CHECK + RECALL = 1.2 s, about KLM's mental act M)
ORIENT           1.00     per grid page: take in the new page, eyes to its first tile (assumption)
SCREEN_SINGLE    0.043    per image in the single view: key to the next image on screen (measured,
                          bench/key_to_image.py, p50 on the 2-core box)
SCREEN_PAGE      0.10     per grid page: Enter to the next page on screen (assumption: 24 thumbnails)
===============  =======  ==========================================================================

Single view, per image: CHECK + KEY when the prediction shown is right (Enter), else CHECK + RECALL +
KEY (a label key; also a test image, which never shows a prediction), then SCREEN_SINGLE. Grid, per
page: ORIENT, per tile CHECK (``--grid-check``: the grid's own check time, default CHECK; the table
also gives 0.4 s and 0.8 s), for a tile whose label is missing or wrong RECALL + the cursor's way
there (arrow keys, KEY each, or POINT) + KEY; then KEY (Enter) + SCREEN_PAGE. The kernel time of the
session's calls (label, accept, commit, the next page) is measured and added; training is not (in
the product it runs in its own thread while the person looks).

    .venv/bin/python bench/grid_speed.py                  # 2 seeds, 600 labels per run
    .venv/bin/python bench/grid_speed.py --seeds 0 --labels 300

Writes ``bench/results/grid_speed.csv`` (the table) and ``grid_speed_runs.csv`` (per run and phase).

At low accuracy a blind Enter stores the model's wrong predictions. The table also weighs the panel's
answer (a warning on the page) against pre-setting only the tiles above ``DOUBT`` confidence: wrong
labels a blind Enter stores with each, and what leaving doubtful tiles empty costs a careful person.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import report  # noqa: E402

from oal_widget.data.samples import write_digits  # noqa: E402
from oal_widget.session.grid import Grid  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KEY, POINT, CHECK, RECALL, ORIENT = 0.28, 1.10, 0.60, 0.60, 1.00
SCREEN_SINGLE, SCREEN_PAGE = 0.043, 0.10
#: Labels after which a run's second phase starts (the model is decent by then).
PHASE = 200
#: The single view; the grid with pages in the order (the active-learning ranking: least sure first);
#: the grid with pages of the model's surest predictions (the grid's "surest first" button).
VIEWS = ("single", "grid", "grid_surest")
#: Confidence below which a tile counts as doubtful (the "pre-set only the sure tiles" design).
DOUBT = 0.9


@dataclass
class Tally:
    """What the person did, counted per phase, so any check time can be priced afterwards."""

    labels: int = 0
    checks: int = 0  # images looked at with a label shown or not
    recalls: int = 0  # images whose class the person had to name
    keys: int = 0
    moves_s: float = 0.0  # cursor moves, priced already (arrow keys or pointing)
    pages: int = 0
    screens_s: float = 0.0
    kernel_s: float = 0.0
    shown: int = 0  # predictions shown (not on test images)
    shown_right: int = 0
    # The two answers to a low accuracy (issue: a blind Enter stores the wrong predictions): warn, or
    # pre-set only the sure tiles. Counted on the same pages: wrong predictions a blind Enter stores,
    # those below DOUBT (a design leaving doubtful tiles empty would not store them), and right ones
    # below DOUBT (that design makes a careful person name them: RECALL + a move + KEY each).
    preset_wrong: int = 0
    doubtful_wrong: int = 0
    doubtful_right: int = 0

    def seconds(self, check: float) -> float:
        return (
            self.checks * check + self.recalls * RECALL + self.keys * KEY + self.moves_s
            + self.pages * ORIENT + self.screens_s + self.kernel_s
        )  # fmt: skip


@dataclass
class Run:
    view: str
    seed: int
    phases: dict = field(default_factory=lambda: {"early": Tally(), "late": Tally()})
    #: The model's accuracy at the end on the test split (the same images for every view of a seed,
    #: never trained on; their true class from their folder, labelled or not).
    test_accuracy: float = float("nan")

    def tally(self, labelled: int) -> Tally:
        return self.phases["early" if labelled < PHASE else "late"]


def truth(path: str) -> str:
    return path.split("/", 1)[0]


def make_session(images: Path, workdir: Path, seed: int):
    from oal_widget.session.session import Session
    from oal_widget.simulate import SyncTrainer, _seed_everything

    _seed_everything(seed)
    return Session(
        images, [str(d) for d in range(10)], trainer_factory=SyncTrainer, input_shape=(16, 16, 1),
        seed=seed, workdir=workdir, image_cache=False, eval_every=10, query_every=10,
    )  # fmt: skip


def train(session, rounds: int) -> None:
    """What the trainer's thread does meanwhile: a round per label, a query and an evaluation when due."""
    trainer = session.trainer
    for _ in range(rounds):
        trainer.train_round()
        if trainer.cadence.eval_due:
            trainer.evaluate()
        if trainer.cadence.query_due:
            trainer.query()  # the session takes the new order and predictions, as in the panel


def single_view(session, budget: int, run: Run) -> None:
    done = 0
    while done < budget and session.current is not None:
        path = session.current
        tally = run.tally(done)
        shown = None if session.is_test(path) else session.prediction(path)
        right = shown is not None and shown[0] == truth(path)
        tally.shown += shown is not None
        tally.shown_right += right
        tally.checks += 1
        tally.keys += 1
        t = time.perf_counter()
        if right:
            session.accept_prediction(shown=(path, shown[0]))
        else:
            tally.recalls += 1
            session.label(truth(path))
        tally.kernel_s += time.perf_counter() - t
        tally.screens_s += SCREEN_SINGLE
        tally.labels += 1
        done += 1
        train(session, 1)


def grid_view(session, budget: int, run: Run, size: int, surest: bool = False) -> None:
    grid = Grid(session, size=size, surest=surest)
    t = time.perf_counter()
    grid.open()
    kernel = time.perf_counter() - t
    done = 0
    while done < budget and grid.tiles:
        tally = run.tally(done)
        tally.kernel_s += kernel
        tally.pages += 1
        for index, tile in enumerate(grid.shown):
            tally.checks += 1
            if tile.prediction is not None:
                right = tile.prediction[0] == truth(tile.path)
                tally.shown += 1
                tally.shown_right += right
                doubtful = tile.prediction[1] < DOUBT
                if grid.gets(tile) is not None and not right:
                    tally.preset_wrong += 1
                    tally.doubtful_wrong += doubtful
                tally.doubtful_right += right and doubtful and grid.gets(tile) is not None
            if grid.gets(tile) == (truth(tile.path), "accepted"):
                continue
            rows, cols = divmod(index, grid.columns), divmod(grid.cursor, grid.columns)
            steps = abs(rows[0] - cols[0]) + abs(rows[1] - cols[1])
            tally.moves_s += min(steps * KEY, POINT)
            tally.recalls += 1
            tally.keys += 1
            t = time.perf_counter()
            grid.point(index)
            grid.set(truth(tile.path))
            tally.kernel_s += time.perf_counter() - t
        tally.keys += 1  # Enter
        tally.screens_s += SCREEN_PAGE
        t = time.perf_counter()
        stored = grid.commit()  # stores the page, builds the next one
        kernel = time.perf_counter() - t
        tally.labels += len(stored)
        done += len(stored)
        train(session, len(stored))


def one_run(images: Path, workdir: Path, seed: int, view: str, args) -> Run:
    session = make_session(images, workdir, seed)
    run = Run(view, seed)
    try:
        if view == "single":
            single_view(session, args.labels, run)
        else:
            grid_view(session, args.labels, run, args.grid_size, surest=view == "grid_surest")
        wrong = {p: lab for p, lab in session.labels().items() if lab != truth(p)}
        assert not wrong, f"the simulated person stored wrong labels: {list(wrong)[:3]}"
        test = sorted(p for p in session.pool.paths if session.is_test(p))
        probs, scored = session.trainer.learner.predict_paths(test)
        said = [session.label_names[int(k)] for k in probs.argmax(1)]
        run.test_accuracy = sum(s == truth(p) for s, p in zip(said, scored, strict=True)) / len(scored)
    finally:
        session.close(stop=False)
    return run


def per_minute(tallies, check: float) -> float:
    labels = sum(t.labels for t in tallies)
    seconds = sum(t.seconds(check) for t in tallies)
    return 60 * labels / seconds if seconds else float("nan")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--labels", type=int, default=600)
    ap.add_argument("--grid-size", type=int, default=24)
    ap.add_argument("--grid-check", type=float, default=CHECK)
    ap.add_argument("--out", type=Path, default=RESULTS / "grid_speed.csv")
    args = ap.parse_args(argv)
    from oal_widget.training.quiet_tf import import_tensorflow

    import_tensorflow()  # its C++ start-up lines stay out of the table's output
    started, load_before = time.monotonic(), os.getloadavg()[0]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="oal-grid-bench-") as tmp:
        images = Path(tmp) / "digits"
        write_digits(images, per_class=None, size=16, seed=0)
        for seed in args.seeds:
            for view in VIEWS:
                run = one_run(images, Path(tmp) / f"{view}{seed}", seed, view, args)
                runs.append(run)
                print(f"{view} seed {seed}: {sum(t.labels for t in run.phases.values())} labels")

    def of(view, phases=("early", "late")):
        return [r.phases[p] for r in runs if r.view == view for p in phases]

    rows = []
    for phases, what in ((("early", "late"), f"all {args.labels} labels"), (("late",), f"labels {PHASE}+")):
        single = per_minute(of("single", phases), CHECK)
        rows.append((f"single view, {what}", single, "/min", "", "labels committed per minute"))
        for view, name in (("grid", "grid in order"), ("grid_surest", "grid surest first")):
            for check in sorted({args.grid_check, 0.4, 0.8}):
                grid = per_minute(of(view, phases), check)
                note = f"check {check:.2f} s per tile; {grid / single:.2f}x the single view"
                rows.append((f"{name}, {what}, check {check:.1f}", grid, "/min", ">single", note))
        for view in VIEWS:
            shown = sum(t.shown for t in of(view, phases))
            right = sum(t.shown_right for t in of(view, phases))
            note = f"of {shown} predictions shown"
            rows.append((f"predictions right, {view}, {what}", right / max(1, shown), "", "", note))
    for view in VIEWS:
        accuracy = [r.test_accuracy for r in runs if r.view == view]
        note = "the model at the end, on the test split (all of it, labelled or not), mean over seeds"
        rows.append((f"model accuracy after, {view}", sum(accuracy) / len(accuracy), "", "", note))
    for phases, what in ((("early",), f"labels 0-{PHASE}"), (("early", "late"), f"all {args.labels}")):
        tallies = of("grid", phases)
        labels = max(1, sum(t.labels for t in tallies))
        wrong = sum(t.preset_wrong for t in tallies)
        kept = wrong - sum(t.doubtful_wrong for t in tallies)
        move = sum(t.moves_s for t in tallies) / max(1, sum(t.recalls for t in tallies))
        extra = sum(t.doubtful_right for t in tallies) * (RECALL + KEY + move)
        note = "stored by Enter without looking, per 100 labels (pages in order)"
        rows.append((f"blind Enter, wrong labels, warn, {what}", 100 * wrong / labels, "", "", note))
        note = f"the same pages with tiles below {DOUBT:.0%} confidence left empty"
        rows.append((f"blind Enter, wrong labels, doubtful empty, {what}", 100 * kept / labels, "", "", note))
        note = "a careful person's extra seconds per 100 labels: naming the right doubtful tiles"
        rows.append((f"doubtful empty, extra time, {what}", 100 * extra / labels, "s", "", note))
    grid_all = of("grid")
    pages = sum(t.pages for t in grid_all)
    kernel_ms = 1000 * sum(t.kernel_s for t in grid_all) / max(1, pages)
    rows.append(
        ("kernel ms per grid page", kernel_ms, "ms", "", "store it in one transaction, build the next")
    )
    load = max(load_before, os.getloadavg()[0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_name(args.out.stem + "_runs.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["view", "seed", "phase", *Tally.__dataclass_fields__, "seconds_at_check"])
        for run in runs:
            for phase, t in run.phases.items():
                writer.writerow([run.view, run.seed, phase, *vars(t).values(), round(t.seconds(CHECK), 2)])
    report(
        f"Grid vs single view: labels per minute of a simulated person ({len(args.seeds)} seeds, "
        f"{args.labels} labels per run, pages of {args.grid_size}, real model and session)",
        rows,
        args.out,
        extra={"seeds": len(args.seeds), "labels": args.labels, "load1": f"{load:.1f}"},
    )
    print(f"{time.monotonic() - started:.0f} s in all; load average up to {load:.1f}")


if __name__ == "__main__":
    main()
