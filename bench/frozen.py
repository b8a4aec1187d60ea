"""Frozen-backbone mode at scale: one-off embedding cost, label-to-model latency, query over the pool.

One command: ``.venv/bin/python bench/frozen.py`` (about 5 min on 2 CPU cores with the 100,000-image
pool of ``bench/scale.py``, generated once into ``/tmp/oal-scale-100000`` and reused).

The model is ``transfer_model_fn`` with MobileNetV2 (alpha 0.35) at 32x32x1: input -> grey to RGB
-> frozen backbone -> ``embedding`` (1280 values) -> Dropout -> softmax. There are no pretrained
weights on this machine (nothing is downloaded), so the bench saves the weights of a randomly
initialised MobileNetV2 first and loads those: the timings do not depend on the weight values.
Everything else is the product's own Trainer at default settings (``query_sample`` 2000,
``train_steps`` 10, batch 32):

- embed: every image decoded and embedded once by the trainer's idle work (``prefill_step``),
  as a session does in the background; the float16 file in ``<workdir>/cache``;
- label-to-model: the trainer thread running, one label every ``--interval`` s; time from
  ``send`` to the end of the first training step that included the label (``label_latency``);
- query: ``Trainer.query()`` over the pool at default settings and scoring every image
  (``query_sample=0``), then in a NEW trainer on the same workdir (a restart: the cached embeddings
  are checked against the image files once, nothing is embedded again);
- for reference, a training step of the full model (``frozen_backbone=False``) on the same images.

Writes ``bench/results/frozen.csv`` and prints the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import peak_mb, report, timed  # noqa: E402  (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="images in the pool (default 100000)")
    parser.add_argument("--images", type=Path, default=None, help="folder (default /tmp/oal-scale-<n>)")
    parser.add_argument("--side", type=int, default=32, help="input height and width (default 32)")
    parser.add_argument("--labels", type=int, default=60, help="labels sent to the running trainer (60)")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between labels (0.3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "frozen.csv")
    args = parser.parse_args(argv)

    from scale import generate

    folder = args.images or Path(tempfile.gettempdir()) / f"oal-scale-{args.n}"
    gen_s = generate(folder, args.n)

    import keras

    from oal_widget.config import Config
    from oal_widget.data.pool import ImagePool, split_test
    from oal_widget.messages import Labelled
    from oal_widget.training.models import transfer_model_fn
    from oal_widget.training.trainer import Trainer

    rows: list[tuple[str, float, str, str, str]] = []

    def add(metric, value, unit, target="", note=""):
        rows.append((metric, value, unit, target, note))
        print(f"  {metric}: {value:.4g} {unit}  {note}", flush=True)

    shape = (args.side, args.side, 1)
    config = Config(input_shape=shape)  # defaults otherwise; frozen_backbone="auto"
    with tempfile.TemporaryDirectory(prefix="oal-frozen-") as tmp:
        tmp = Path(tmp)
        weights = tmp / "mobilenet_v2_random.weights.h5"  # random weights: no download (see the docstring)
        keras.applications.MobileNetV2(
            include_top=False, weights=None, input_shape=(args.side, args.side, 3), alpha=0.35
        ).save_weights(weights)
        model_fn = transfer_model_fn(weights)
        wd = tmp / "wd"

        def new_trainer(cfg=config):
            pool = ImagePool(folder, shape)
            pool.use_disk_cache(wd / "cache")
            test = split_test(pool.paths, cfg.test_fraction, cfg.seed)
            return Trainer(pool, names, cfg, test_paths=test, workdir=wd, model_fn=model_fn), test

        pool0 = ImagePool(folder, shape)
        answer = {p: p.split("/", 1)[0] for p in pool0.paths}
        names = sorted(set(answer.values()))
        trainer, test = new_trainer()
        n = len(trainer.pool.paths)
        # As in a session: the thread builds the model, then embeds the pool while nobody labels.
        started = time.perf_counter()
        trainer.start()
        while trainer.latest.status == "importing" or trainer.model is None and trainer.error is None:
            time.sleep(0.05)
        assert trainer.error is None and trainer.frozen_backbone, trainer.error
        add("TensorFlow import + model build", time.perf_counter() - started, "s", "", trainer.latest.message)
        started = time.perf_counter()
        last = 0.0
        while trainer.latest.work != ("embedding images", n, n) and trainer.error is None:
            time.sleep(0.05)
            if time.perf_counter() - last > 10 and trainer.latest.work:
                last = time.perf_counter()
                print("  {} {}/{}".format(*trainer.latest.work), flush=True)
        embed_s = time.perf_counter() - started
        emb = trainer.learner.frozen.embeddings
        add(
            "embed every image once (decode + backbone)",
            embed_s,
            "s",
            "one-off",
            f"{emb.computed} images, idle thread",
        )
        add("  per image", 1000 * embed_s / max(emb.computed, 1), "ms")
        add(
            "embeddings file on disk",
            os.stat(emb.cache.data_path).st_blocks * 512 / 2**20,
            "MB",
            "",
            "float16",
        )

        # Label-to-model with the thread running: test labels first, then one training label at a time.
        test_set = set(test)
        rng = np.random.default_rng(0)
        train = [p for p in trainer.pool.paths if p not in test_set]
        for p in test[:200]:
            trainer.send(Labelled(p, answer[p], "test"))
        picked = [train[i] for i in rng.choice(len(train), size=args.labels, replace=False)]
        for p in picked:
            trainer.send(Labelled(p, answer[p], sent_at=time.monotonic()))
            time.sleep(args.interval)
        deadline = time.monotonic() + 60
        while len(trainer.label_latency) < len(picked) and time.monotonic() < deadline:
            time.sleep(0.05)
        latency = np.array([s for p, s in trainer.label_latency if p in set(picked)])
        trainer.stop(timeout=60)  # saves model.keras; query() still works on the stopped trainer
        add(
            "label-to-model, median",
            1000 * float(np.median(latency)),
            "ms",
            "< 100 ms",
            f"{len(latency)} labels, one per {args.interval} s, thread running",
        )
        add("label-to-model, p90", 1000 * float(np.percentile(latency, 90)), "ms")
        trainer.evaluate()
        q_default, update = timed(trainer.query)
        add(
            "query, default settings (query_sample 2000)",
            q_default,
            "s",
            "< 2 s",
            f"{len(update.order)} candidates, {len(update.predictions)} scored",
        )
        trainer.config = trainer.querier.config = config.replace(query_sample=0)  # the querier reads it
        q_all, update = timed(trainer.query)
        add(
            "query scoring every image (query_sample=0)",
            q_all,
            "s",
            "< 1 s",
            f"{len(update.predictions)} scored",
        )

        # A restart: a new trainer (new model object from the same weights file) on the same workdir.
        again, _ = new_trainer(config.replace(query_sample=0))
        assert again.build() and again.frozen_backbone
        for p in picked:
            again.handle(Labelled(p, answer[p]))
        for p in test[:200]:
            again.handle(Labelled(p, answer[p], "test"))
        again.train_round()  # traces the step
        round_s, _ = timed(again.train_round)
        add("training round (10 steps) on the head", 1000 * round_s, "ms", "", f"{len(picked)} labels")
        again.evaluate()
        q_restart, update = timed(again.query)
        add(
            "query scoring every image, first after a restart",
            q_restart,
            "s",
            "",
            f"embedded again: {again.learner.frozen.embeddings.computed}; slots checked against the files",
        )
        q_again, _ = timed(again.query)
        add("query scoring every image, next one", q_again, "s", "< 1 s")

        # Reference: the same model trained through the backbone (frozen_backbone=False).
        full, _ = new_trainer(config.replace(frozen_backbone=False))
        assert full.build() and not full.frozen_backbone
        for p in picked:
            full.handle(Labelled(p, answer[p]))
        full.train_round()  # traces the step
        full_s, _ = timed(full.train_round)
        add(
            "reference: training round (10 steps) through the backbone",
            1000 * full_s,
            "ms",
            "",
            "frozen_backbone=False",
        )
        add("peak memory (max RSS, TensorFlow included)", peak_mb(), "MB", "< 1536 MB")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report(
        f"frozen bench: {n} images in {folder} (generated in {gen_s:.0f} s this run)",
        rows,
        args.out,
        {"n_images": n, "input": "x".join(map(str, shape))},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
