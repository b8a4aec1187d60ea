"""The simulator: a folder-name oracle labelling through the product's own Session (order, evaluation,
store) and trainer, end to end: every label counts, and true accuracy is measured on an oracle set
nobody labels, trains on or queries."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oal_widget.config import Config
from oal_widget.simulate import CSV_COLUMNS, PER_CLASS_COLUMNS, TIMING_COLUMNS, simulate


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root (hidden ones too) with size and mtime: any write shows."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_simulate_learns_and_never_writes_into_the_images_folder(digits_dir, tmp_path):
    before = listing(digits_dir)
    out = tmp_path / "curve.csv"
    cmd = [sys.executable, "-m", "oal_widget", "simulate", str(digits_dir), "--budget", "80", "--seed", "0"]
    cmd += ["--out", str(out), "--input-shape", "16,16,1", "--eval-every", "20", "--query-every", "20"]
    cmd += ["--timing"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_csv(out)
    assert list(rows[0]) == list(CSV_COLUMNS + TIMING_COLUMNS)
    # The trainer's cost (training and querying) per training label, in the CSV and on stdout.
    cost = float(rows[-1]["trainer_s_per_label"])
    train_s, query_s = float(rows[-1]["train_seconds"]), float(rows[-1]["query_seconds"])
    assert cost > 0 and cost == pytest.approx((train_s + query_s) / int(rows[-1]["n_train"]), abs=2e-3)
    assert f"trainer: {cost:.3f} s per training label" in done.stdout
    assert [int(r["n_labels"]) for r in rows] == [20, 40, 60, 80]  # every label: test ones too
    assert all(int(r["n_labels"]) == int(r["n_train"]) + int(r["n_test"]) for r in rows)
    assert all(
        0.0 <= float(r["accuracy_low"]) <= float(r["accuracy"]) <= float(r["accuracy_high"]) <= 1
        for r in rows
    )
    assert float(rows[-1]["true_accuracy"]) > 0.3  # 10 classes: chance is 0.1
    assert {r["strategy"] for r in rows} == {Config().strategy} and {r["seed"] for r in rows} == {"0"}
    assert 0 < int(rows[-1]["n_test"]) <= 20  # test labels are a small share of the person's labels
    assert done.stdout.count(" true ") == 4  # one progress line per evaluation
    assert "80/80" in done.stderr  # the tqdm bar of labels given reached the budget
    assert listing(digits_dir) == before
    # Per class, beside the curve: labels given of each class and the model's recall on its oracle images.
    per_class = read_csv(tmp_path / "curve_per_class.csv")
    assert list(per_class[0]) == list(PER_CLASS_COLUMNS)
    assert len(per_class) == 10 * len(rows) and {r["class"] for r in per_class} == {str(d) for d in range(10)}
    for row in rows:
        mine = [r for r in per_class if r["n_labels"] == row["n_labels"]]
        assert sum(int(r["labels"]) for r in mine) == int(row["n_labels"])
        assert sum(int(r["train_labels"]) for r in mine) == int(row["n_train"])
        oracle = sum(int(r["oracle_images"]) for r in mine)
        recalled = sum(float(r["recall"]) * int(r["oracle_images"]) for r in mine)
        assert recalled / oracle == pytest.approx(float(row["true_accuracy"]), abs=1e-6)


def test_same_seed_gives_the_same_curve_and_rows_are_returned(digits_dir, tmp_path):
    kw = dict(budget=20, seed=3, eval_every=10, query_every=5, input_shape=(16, 16, 1), progress=None)
    kw["train_steps"] = 4  # a Config setting passed through
    first = simulate(digits_dir, strategy="margin", out=tmp_path / "a.csv", **kw)
    second = simulate(digits_dir, strategy="margin", out=tmp_path / "b.csv", **kw)
    assert [r["n_labels"] for r in first] == [10, 20]
    assert [r["accuracy"] for r in first] == [r["accuracy"] for r in second]
    assert [r["true_accuracy"] for r in first] == [r["true_accuracy"] for r in second]
    assert [r["accuracy"] for r in read_csv(tmp_path / "a.csv")] == [
        r["accuracy"] for r in read_csv(tmp_path / "b.csv")
    ]


def test_random_strategy_workdir_kept_and_final_evaluation(digits_dir, tmp_path):
    lines = []
    wd = tmp_path / "wd"
    rows = simulate(
        digits_dir,
        strategy="random",
        policy="greedy",
        budget=7,
        eval_every=5,
        query_every=5,
        input_shape=(16, 16, 1),
        workdir=wd,
        progress=lines.append,
        train_steps=2,
    )
    assert [r["n_labels"] for r in rows] == [5, 7]  # the last label is evaluated too
    assert len([x for x in lines if " true " in x]) == 2  # a line per evaluation (and some for caching)
    assert {r["strategy"] for r in rows} == {"random"}
    assert (wd / "annotations.sqlite").is_file() and (wd / "model.keras").is_file()
    from oal_widget.data.store import Store

    with Store(wd) as store:
        labels = store.labels()
        assert len(labels) == 7  # the budget is every label the person gives
        assert all(p.split("/")[0] == label for p, label in labels.items())


def test_flat_folder_is_refused_with_a_clear_message(small_digits, tmp_path):
    loose = next((small_digits / "0").iterdir())
    loose.rename(small_digits / "loose.png")
    with pytest.raises(ValueError, match="class sub-folders") as e:
        simulate(small_digits, budget=5, progress=None)
    assert str(small_digits) in str(e.value) and "loose.png" in str(e.value)
    done = subprocess.run(
        [sys.executable, "-m", "oal_widget", "simulate", str(small_digits), "--budget", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "class sub-folders" in done.stderr


def test_workdir_inside_images_or_over_a_store_is_refused(small_digits, tmp_path):
    before = listing(small_digits)
    with pytest.raises(ValueError, match="inside the images folder"):
        simulate(small_digits, budget=5, workdir=small_digits / ".oal", progress=None)
    assert listing(small_digits) == before
    used = tmp_path / "used"
    used.mkdir()
    (used / "annotations.sqlite").write_bytes(b"")
    with pytest.raises(ValueError, match="already holds a store"):
        simulate(small_digits, budget=5, workdir=used, progress=None)


def test_bad_arguments_name_the_setting(small_digits, tmp_path):
    with pytest.raises(ValueError, match="budget"):
        simulate(small_digits, budget=0, progress=None)
    with pytest.raises(ValueError, match="strategy"):
        simulate(small_digits, strategy="clever", progress=None)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        simulate(tmp_path / "nowhere", progress=None)


def test_budget_beyond_the_pool_stops_when_every_image_is_labelled(small_digits):
    rows = simulate(
        small_digits,
        budget=100,
        eval_every=10,
        query_every=10,
        input_shape=(16, 16, 1),
        progress=None,
        train_steps=1,
    )
    # 24 images, 5 (20%) the oracle set: the other 19 labelled, evaluated at 10 and at the end.
    assert [r["n_labels"] for r in rows] == [10, 19]
    assert rows[-1]["n_train"] + rows[-1]["n_test"] == 19


@pytest.mark.parametrize(
    "strategy, policy, extra",
    [
        ("margin", "epsilon_greedy", {}),
        ("margin", "power", {"diversity": "kcenter"}),
        ("bald", "softmax", {"temperature": 0.1, "mc_samples": 2, "class_balance": True}),
        ("bandit", "greedy", {"cold_start": 1, "schedule": "shrink_perturb"}),
    ],
)
def test_small_simulation_per_policy(digits_dir, strategy, policy, extra):
    rows = simulate(
        digits_dir,
        strategy=strategy,
        policy=policy,
        budget=20,
        eval_every=10,
        query_every=5,
        input_shape=(16, 16, 1),
        progress=None,
        train_steps=2,
        timing=True,
        **extra,
    )
    assert [r["n_labels"] for r in rows] == [10, 20]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert rows[-1]["queries"] == 3  # after 5, 10 and 15 labels (not after the last)
    assert rows[-1]["query_seconds"] > 0 and rows[-1]["train_seconds"] > 0
    assert {r["strategy"] for r in rows} == {strategy}


def test_the_oracle_set_is_never_labelled_trained_on_or_queried(digits_dir, tmp_path, monkeypatch):
    from oal_widget.data.pool import split_test
    from oal_widget.simulate import ORACLE_FRACTION
    from oal_widget.training import core

    queried: list[str] = []
    original = core.Querier.query

    def spy(self, learner, graph, pool_paths, *args, **kwargs):
        queried.extend(pool_paths)
        return original(self, learner, graph, pool_paths, *args, **kwargs)

    monkeypatch.setattr(core.Querier, "query", spy)
    wd = tmp_path / "wd"
    rows = simulate(digits_dir, budget=60, input_shape=(16, 16, 1), workdir=wd, progress=None, train_steps=2)
    found = sorted(p.relative_to(digits_dir).as_posix() for p in digits_dir.rglob("*.png"))
    oracle = set(split_test(found, ORACLE_FRACTION, 1))  # the simulator's own seed for it: seed + 1
    from oal_widget.data.store import Store

    with Store(wd) as store:
        assert not oracle & set(store.labels())  # never labelled
        assert not oracle & store.test_paths()  # nor a test image
    assert queried and not oracle & set(queried)  # never scored for a query
    assert all(r["n_labels"] == r["n_train"] + r["n_test"] for r in rows)
    assert rows[-1]["n_labels"] == 60 and 0 <= rows[-1]["true_accuracy"] <= 1


def test_test_and_oracle_images_never_reach_the_semi_supervised_training(digits_dir, tmp_path, monkeypatch):
    """Pseudo-labelled batches are drawn from the unlabelled training candidates only: never an image of
    the test split (labelled or not) nor of the oracle set."""
    from oal_widget.data.pool import split_test
    from oal_widget.data.store import Store
    from oal_widget.simulate import ORACLE_FRACTION
    from oal_widget.training import pseudo
    from oal_widget.training.pseudo import PseudoLabels

    drawn: list[str] = []
    original = PseudoLabels.batch

    def spy(self, labels):
        paths, classes = original(self, labels)
        drawn.extend(paths)
        return paths, classes

    monkeypatch.setattr(PseudoLabels, "batch", spy)
    monkeypatch.setattr(pseudo, "TRUST", 0.0)  # the gate is tested elsewhere: here, where they come from
    wd = tmp_path / "wd"
    settings = dict(train_steps=2, pseudo_threshold=0.2, query_every=5)  # low: pseudo-labels for sure
    simulate(digits_dir, budget=60, input_shape=(16, 16, 1), workdir=wd, progress=None, **settings)
    found = sorted(p.relative_to(digits_dir).as_posix() for p in digits_dir.rglob("*.png"))
    oracle = set(split_test(found, ORACLE_FRACTION, 1))
    with Store(wd) as store:
        test = store.test_paths()
    assert drawn and len(set(drawn)) > 20  # it did learn from unlabelled images
    assert not set(drawn) & oracle and not set(drawn) & test


def test_the_simulated_person_labels_in_the_panels_order(small_digits, tmp_path):
    """Before the first query the order is the session's own: the simulator labels exactly what a panel
    on the same images (without the oracle set) shows, test images at the same places."""
    from fake_trainer import Factory

    from oal_widget.data.pool import ImagePool, split_test
    from oal_widget.data.store import Store
    from oal_widget.session.session import Session

    wd = tmp_path / "sim"
    simulate(small_digits, budget=8, query_every=50, input_shape=(16, 16, 1), workdir=wd, progress=None)
    with Store(wd) as store:
        labelled = [r.path for r in sorted(store.records(), key=lambda r: r.created)]
    found = ImagePool(small_digits, (16, 16, 1))
    oracle = set(split_test(found.paths, 0.2, 1))
    pool = ImagePool(small_digits, (16, 16, 1), paths=[p for p in found.paths if p not in oracle])
    panel = Session(
        small_digits,
        sorted({p.split("/")[0] for p in found.paths}),
        trainer_factory=Factory(),
        input_shape=(16, 16, 1),
        workdir=tmp_path / "panel",
        pool=pool,
    )
    shown = []
    while len(shown) < 8:
        shown.append(panel.current)
        panel.label(panel.current.split("/")[0])
    panel.close()
    assert labelled == shown
