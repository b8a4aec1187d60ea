"""Moving a project between backends (``copy-store``) with nothing lost, and the command line's
export / import on a workdir or a PostgreSQL URL."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from oal_widget.cli import main
from oal_widget.config import Config
from oal_widget.data.pool import split_test
from oal_widget.data.store import Store, open_store

pytest_plugins = ["pg_server"]


def rich_project(workdir, images) -> None:
    """A project with every kind of row: provenance, double labels, a settlement, test split, history."""
    alice = Store(workdir, images_root=images, annotator="alice")
    bob = Store(workdir, annotator="bob")
    alice.set_label_names(["cat", "dog, really", "ü 🐱"])
    alice.label_many(
        [("a.png", "cat"), ("b.png", "dog, really", "accepted"), ("c/ü.png", "ü 🐱")], model_labels=12
    )
    alice.label("d.png", "cat", source="imported")
    alice.label("e.png", "cat")
    alice.undo()  # history with an undone step
    bob.label("a.png", "dog, really")  # a conflict...
    bob.label("b.png", "dog, really")  # ...and an agreement
    bob.settle("a.png", "ü 🐱")
    alice.add_test_paths(["b.png", "z/unlabelled.png"])
    alice.claim(["f.png"], lease_s=600)  # claims are not part of a copy
    bob.close()
    alice.close()


def comparable(store) -> dict:
    dump = store.dump()
    return {
        "records": store.records(),
        "annotations": store.annotations(),
        "tests": store.test_paths(),
        "names": store.label_names(),
        "root": dump.images_root,
        "settlements": dump.settlements,
        "history": [{k: v for k, v in row.items()} for row in dump.history],
        "agreement": store.agreement(),
        "version": dump.version,
    }


def test_copy_store_round_trip_sqlite_postgres_sqlite(tmp_path, pg_url, capsys):
    images = tmp_path / "pets"
    images.mkdir()
    rich_project(tmp_path / "one", images)
    with Store(tmp_path / "one") as s:
        before = comparable(s)
    assert main(["copy-store", str(tmp_path / "one"), pg_url]) == 0
    out = capsys.readouterr().out
    assert "copied project 'pets' (4 labels, 6 annotations, 2 settled, 2 test images" in out
    with open_store(pg_url, project="pets") as on_server:
        assert comparable(on_server) == before
        assert on_server.claimed() == set()
    assert main(["copy-store", pg_url, str(tmp_path / "two"), "--project", "pets"]) == 0
    with Store(tmp_path / "two") as back:
        assert comparable(back) == before
        assert back.project == "pets" and back.conflicts() == []
        # A new session on the copy carries on: its own steps are undoable, the copied ones are not.
        back.label("new.png", "cat")
        assert back.undo() == "new.png" and back.undo() is None


def test_copy_store_refuses_a_destination_that_holds_the_project(tmp_path, pg_url, capsys):
    images = tmp_path / "pets"
    images.mkdir()
    rich_project(tmp_path / "one", images)
    assert main(["copy-store", str(tmp_path / "one"), pg_url]) == 0
    capsys.readouterr()
    assert main(["copy-store", str(tmp_path / "one"), pg_url]) == 2
    err = capsys.readouterr().err
    assert "already holds 4 row(s) of labels in project 'pets'" in err and "--dst-project NAME" in err
    assert main(["copy-store", str(tmp_path / "one"), pg_url, "--dst-project", "pets2"]) == 0
    with open_store(pg_url, project="pets2", create=False) as copy:
        assert copy.count() == 4
    assert main(["copy-store", str(tmp_path / "nowhere"), pg_url]) == 2
    assert "no annotations.sqlite in" in capsys.readouterr().err


def test_cli_export_and_import_with_a_url(small_digits, tmp_path, pg_url, capsys):
    paths = sorted(p.relative_to(small_digits).as_posix() for p in small_digits.rglob("*.png"))
    source = tmp_path / "in.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows([(p, p.split("/")[0]) for p in paths])
    assert main(["import", str(small_digits), str(source), "--workdir", pg_url, "--project", "digits"]) == 0
    assert "24 new" in capsys.readouterr().out
    with open_store(pg_url, project="digits") as store:
        assert store.counts_by_source()["imported"] == 24
        # The test split was fixed first, as a session does (its defaults), so these are test labels.
        assert store.test_paths() == set(split_test(paths, Config().test_fraction, Config().seed))
        assert store.label_names() == ["0", "1", "2"]
    out = tmp_path / "out.csv"
    assert main(["export", pg_url, "--project", "digits", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 24 and {r["source"] for r in rows} == {"imported"}
    assert {r["split"] for r in rows} == {"train", "test"}
    assert main(["export", pg_url, "--project", "nope", "--out", str(out)]) == 2
    assert "has no project 'nope' (projects: 'digits')" in capsys.readouterr().err
    with open_store(pg_url, project="second"):
        pass
    assert main(["export", pg_url, "--out", str(out)]) == 2
    assert "holds several projects ('digits', 'second')" in capsys.readouterr().err


def test_cli_export_of_a_workdir(tmp_path):
    with Store(tmp_path / ".oal", images_root=tmp_path, annotator="alice") as store:
        store.set_label_names(["cat", "dog"])
        store.label("a/1.png", "cat")
        store.label("b/2.png", "dog", source="accepted", model_labels=3)
        store.add_test_paths(["b/2.png"])
    out = tmp_path / "out.csv"
    cli = [sys.executable, "-m", "oal_widget", "export"]
    done = subprocess.run([*cli, str(tmp_path / ".oal"), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote 2 labels" in done.stdout
    rows = [line.split(",")[:6] for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        ["path", "label", "split", "source", "annotator", "model_labels"],
        ["a/1.png", "cat", "train", "person", "alice", ""],
        ["b/2.png", "dog", "test", "accepted", "alice", "3"],
    ]
    # The images folder itself is accepted too (its .oal holds the store).
    done = subprocess.run([*cli, str(tmp_path), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and "wrote 2 labels" in done.stdout
    missing = tmp_path / "never_labelled"
    done = subprocess.run([*cli, str(missing), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2
    assert f"no annotations.sqlite in {missing}: pass the .oal folder" in done.stderr
    assert not missing.exists()  # a failed export creates nothing


def test_a_bad_store_argument_says_what_is_accepted(tmp_path, capsys):
    assert main(["copy-store", str(tmp_path), "mysql://u:secret@h/db"]) == 2
    assert "no annotations.sqlite" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"store='mysql://u:\*\*\*@h/db' is not supported"):
        open_store("mysql://u:secret@h/db", workdir=tmp_path)
