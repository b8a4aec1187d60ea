"""Responsiveness: cell run to panel, the key handler while the trainer trains, label-to-model latency.

One command: ``.venv/bin/python bench/responsiveness.py`` (about 1-2 min on 2 CPU cores).

Each measurement runs in a fresh Python process, so imports are cold as in a new notebook kernel:

- panel: the time from the start of the cell (``from oal_widget import Annotator``) until
  ``Annotator(...)`` returns the panel, ready to display (TensorFlow is imported afterwards, in
  the trainer's thread; the browser's own rendering is not included);
- key handler: ``Annotator._on_key`` fed keydown events exactly as ipyevents sends them, one label
  every ``--interval`` seconds (a quick person), while the trainer trains on both cores; p50/p99
  of the time inside the handler (store commit, next image, trainer hand-over);
- label-to-model: for every label, the time from the key handler's start to the end of the first
  training step that included it (``Trainer.label_latency``, measured from ``send``, plus the whole
  handler time: a slight over-estimate).

Default settings throughout (64x64x3 input, the small CNN, batch 32, 10 steps per round), on the
sample digits. Writes ``bench/results/responsiveness.csv`` and prints the table.

``--pool N`` labels in a pool of N distinct images instead (mosaics of four of scikit-learn's digits,
32x32, in the folder of the top-left digit's class), so the keys fall while the session's background
work on a big pool runs beside the trainer: the near-duplicate search and the trainer's idle caching;
the table says how many keys fell while the search was still running::

    .venv/bin/python bench/responsiveness.py --pool 20000 --out bench/results/responsiveness_20k.csv
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _report import report  # noqa: E402  (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from oal_widget import Annotator
images, workdir, n_keys, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
panel = Annotator(images, labels=[str(d) for d in range(10)], workdir=workdir)
t_panel = time.perf_counter() - t0
session = panel.session
deadline = time.monotonic() + 120
while (session.trainer is None or session.trainer.model is None) and time.monotonic() < deadline:
    time.sleep(0.05)
t_model = time.perf_counter() - t0
trainer = session.trainer
handler, pressed, searching = [], {}, 0
for i in range(n_keys):
    path = session.current
    if path is None:
        break
    key = path.split("/")[0]  # the right class, as a person would press
    event = {"type": "keydown", "event": "keydown", "key": key, "code": "Digit" + key, "repeat": False,
             "ctrlKey": False, "metaKey": False, "altKey": False, "shiftKey": False}
    searching += not session.duplicates.join(0)
    start = time.monotonic()
    panel._on_key(event)
    handler.append(time.monotonic() - start)
    pressed[path] = start
    time.sleep(interval)
deadline = time.monotonic() + 30
while trainer.latest.status == "training" and trainer.labels.has_fresh and time.monotonic() < deadline:
    time.sleep(0.05)  # let the last labels reach a step
# label_latency is measured from send(), inside the handler: adding the whole handler time makes it
# key-event-to-step (a slight over-estimate: send is not the handler's very last step).
took = dict(zip(pressed, handler))
latency = [seconds + took[path] for path, seconds in trainer.label_latency if path in took]
print("RESULT " + json.dumps({"panel": t_panel, "model_ready": t_model, "handler": handler,
                              "latency": latency, "trained_paths": len(trainer.trained_paths),
                              "searching": searching,
                              "status": trainer.latest.status}))
panel.stop(timeout=30)
"""


def run_child(images: Path, n_keys: int, interval: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="oal-resp-") as wd:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(images), wd, str(n_keys), str(interval)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the measuring process failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def write_mosaics(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` distinct 32x32 images, each four of scikit-learn's digits, in the top-left digit's folder."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    tiles = (digits.images * 255 / 16).astype(np.uint8).repeat(2, axis=1).repeat(2, axis=2)
    rng = np.random.default_rng(seed)
    seen = set()
    while len(seen) < n:
        pick = tuple(int(i) for i in rng.integers(len(tiles), size=4))
        if pick in seen:
            continue
        seen.add(pick)
        q = tiles[list(pick)]
        out = folder / str(digits.target[pick[0]])
        out.mkdir(exist_ok=True)
        Image.fromarray(np.block([[q[0], q[1]], [q[2], q[3]]])).save(out / f"mosaic_{len(seen):06d}.png")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=150, help="labels given per run (default 150)")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between keys (default 0.3)")
    parser.add_argument("--runs", type=int, default=2, help="fresh processes (default 2)")
    parser.add_argument(
        "--pool", type=int, default=None, help="N distinct mosaic images (default: 600 digits)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "responsiveness.csv")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from oal_widget.data.samples import write_digits

    rows = []
    with tempfile.TemporaryDirectory(prefix="oal-resp-images-") as images:
        if args.pool:
            write_mosaics(Path(images), args.pool)
        else:
            write_digits(images, per_class=60, size=32, seed=0)
        results = []
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs} ...", flush=True)
            results.append(run_child(Path(images), args.keys, args.interval))
    panel = [r["panel"] for r in results]
    handler = np.array([h for r in results for h in r["handler"]]) * 1000
    latency = np.array([s for r in results for s in r["latency"]])

    def add(metric, value, unit, target="", note=""):
        rows.append((metric, value, unit, target, note))

    add(
        "cell run to panel (median of runs)",
        float(np.median(panel)),
        "s",
        "< 1 s",
        f"{args.runs} fresh processes",
    )
    add(
        "TensorFlow imported + model built",
        float(np.median([r["model_ready"] for r in results])),
        "s",
        "",
        "",
    )
    add("key handler p50 while training", float(np.percentile(handler, 50)), "ms", "", f"{len(handler)} keys")
    add("key handler p99 while training", float(np.percentile(handler, 99)), "ms", "< 20 ms", "")
    add("key handler max while training", float(handler.max()), "ms", "", "")
    searching = sum(r["searching"] for r in results)
    add("keys while the near-duplicate search ran", searching, "", "", f"pool of {args.pool or 600} images")
    add(
        "label-to-model median (small CNN)", float(np.median(latency)), "s", "< 2 s", f"{len(latency)} labels"
    )
    add("label-to-model p90 (small CNN)", float(np.percentile(latency, 90)), "s", "", "")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    title = f"responsiveness bench: interval {args.interval} s between keys, pool {args.pool or 600}"
    report(title, rows, args.out, extra={"load1": f"{os.getloadavg()[0]:.1f}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
