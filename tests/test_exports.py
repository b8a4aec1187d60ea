"""Exports (CSV, JSON, class folders Keras loads as is) and imports (CSV, JSON, class folders)."""

import csv
import json
import os

import pytest
from fake_trainer import FakeTrainer

from oal_widget.cli import main
from oal_widget.data.store import Store
from oal_widget.reports import exports
from oal_widget.session.session import Session


def _session(images, labels=("0", "1", "2"), **kw):
    kw.setdefault("workdir", images.parent / "work")
    return Session(images, list(labels) if labels else None, trainer_factory=FakeTrainer, **kw)


def _label_all(session, oracle=lambda p: p.split("/")[0]):
    while session.current is not None:
        session.label(oracle(session.current))


@pytest.fixture
def labelled(small_digits):
    session = _session(small_digits, input_shape=(16, 16, 1))
    _label_all(session)
    yield session
    session.close()


def test_csv_and_json_exports_round_trip_every_label_and_split(labelled, tmp_path):
    csv_result = labelled.export(tmp_path / "labels.csv")
    json_result = labelled.export(tmp_path / "labels.json")
    assert (csv_result.format, json_result.format) == ("csv", "json")
    with open(tmp_path / "labels.csv", newline="", encoding="utf-8") as f:
        from_csv = {r["path"]: (r["label"], r["split"]) for r in csv.DictReader(f)}
    doc = json.loads((tmp_path / "labels.json").read_text(encoding="utf-8"))
    from_json = {item["path"]: (item["label"], item["split"]) for item in doc["items"]}
    expected = {
        p: (label, "test" if labelled.is_test(p) else "train") for p, label in labelled.labels().items()
    }
    assert from_csv == expected == from_json
    assert len(expected) == 24 and {s for _, s in expected.values()} == {"train", "test"}
    assert doc["label_names"] == ["0", "1", "2"] and sum(doc["counts"].values()) == 24


def test_folder_export_hard_links_and_replaces_an_earlier_export(labelled, tmp_path):
    out = tmp_path / "dataset"
    result = labelled.export(out)
    assert result.format == "folders" and result.rows == 24 and result.linked == 24
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == sorted(f"{label}/{path}" for path, label in labelled.labels().items())
    some = next(out.rglob("*.png"))
    assert os.stat(some).st_nlink >= 2  # a hard link: no extra disk space
    # Relabel one image and export again: the old copy must not linger in the old class folder.
    path = next(iter(labelled.labels()))
    labelled.store.label(path, "2" if not path.startswith("2/") else "1")
    labelled.export(out)
    assert sum(1 for p in out.rglob("*.png") if p.relative_to(out).as_posix().endswith("/" + path)) == 1


def test_folder_export_by_split_and_copy_fallback(labelled, tmp_path):
    result = exports.export_folders(labelled.store, tmp_path / "both", split="both", link=False)
    assert result.copied == 24 and result.linked == 0
    test = {p.name for p in (tmp_path / "both" / "test").rglob("*.png")}
    assert test == {p.rsplit("/", 1)[1] for p in labelled.labels() if labelled.is_test(p)}
    only_train = exports.export_folders(labelled.store, tmp_path / "train", split="train")
    assert only_train.rows == 24 - len(test)


def test_folder_export_refuses_unsafe_targets(labelled, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an earlier oal_widget export"):
        labelled.export(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="inside the images folder"):
        labelled.export(labelled.images / "export")
    with pytest.raises(ValueError, match="format='xml' is invalid"):
        labelled.export(tmp_path / "x", format="xml")


def test_labels_that_are_not_folder_names_and_missing_files(small_digits, tmp_path):
    session = _session(small_digits, labels=["a/b", "c:d", ".."], test_fraction=0)
    for name in ["a/b", "c:d", "..", "a/b"]:
        session.label(name)
    gone = session.labels()
    victim = next(p for p, label in gone.items() if label == "c:d")
    (small_digits / victim).unlink()
    result = session.export(tmp_path / "out")
    assert result.missing == [victim] and result.rows == 3
    assert {p.name for p in (tmp_path / "out").iterdir() if p.is_dir()} == {"a_b", "c:d", "__"}
    with pytest.raises(ValueError, match="would share the class folder"):
        exports.class_folder_names(["a/b", "a_b"])
    session.close()


def test_keras_loads_the_folder_export(labelled, tmp_path):
    keras = pytest.importorskip("keras")
    result = labelled.export(tmp_path / "ds")
    ds = keras.utils.image_dataset_from_directory(
        tmp_path / "ds",
        class_names=result.class_names,
        image_size=(16, 16),
        color_mode="grayscale",
        batch_size=64,
        shuffle=False,
    )
    images, y = next(iter(ds))
    assert ds.class_names == ["0", "1", "2"] and images.shape == (24, 16, 16, 1)
    # Files come sorted by class folder then path; every label matches the store's.
    expected = [result.class_names.index(label) for _, label in sorted(labelled.labels().items())]
    assert sorted(y.numpy().tolist()) == sorted(expected) and list(y.numpy()) == sorted(expected)


# --- provenance in the exports ----------------------------------------------------------------------
@pytest.fixture
def team(small_digits, tmp_path):
    """A store on the digits labelled by alice (some accepted from the model), two double-labelled by bob."""
    paths = sorted(p.relative_to(small_digits).as_posix() for p in small_digits.rglob("*.png"))
    alice = Store(tmp_path / "work", images_root=small_digits, annotator="alice")
    alice.set_label_names(["0", "1", "2"])
    alice.label_many(
        [(p, p[0], "accepted" if i % 2 else "person") for i, p in enumerate(paths)], model_labels=8
    )
    alice.add_test_paths(paths[:3])
    bob = Store(tmp_path / "work", annotator="bob")
    bob.label(paths[0], paths[0][0])  # agrees
    bob.label(paths[1], "2")  # disagrees: alice's label stands until someone settles it
    yield alice, paths
    bob.close()
    alice.close()


def test_csv_and_json_say_who_labelled_what_and_which_label_stands(team, tmp_path):
    store, paths = team
    exports.export(store, tmp_path / "l.csv")
    exports.export(store, tmp_path / "l.json")
    with open(tmp_path / "l.csv", newline="", encoding="utf-8") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    assert list(next(iter(rows.values()))) == list(exports.CSV_COLUMNS)
    first, second, third = rows[paths[0]], rows[paths[1]], rows[paths[2]]
    assert (first["source"], first["annotator"], first["model_labels"]) == ("person", "alice", "")
    assert (second["source"], second["model_labels"], second["label"]) == ("accepted", "8", paths[1][0])
    assert (first["annotators"], first["agreement"]) == ("alice;bob", "agree")
    assert (second["annotators"], second["agreement"]) == ("alice;bob", "conflict")
    assert (third["annotators"], third["agreement"]) == ("alice", "")
    assert first["labelled_at"].endswith("+00:00")
    doc = json.loads((tmp_path / "l.json").read_text(encoding="utf-8"))
    items = {item["path"]: item for item in doc["items"]}
    assert items[paths[1]]["annotations"] == {"alice": paths[1][0], "bob": "2"}
    assert items[paths[1]]["label"] == paths[1][0] and items[paths[1]]["agreement"] == "conflict"
    assert "annotations" not in items[paths[2]]
    assert doc["counts_by_source"] == {
        "person": 12,
        "accepted": 12,
        "review": 0,
        "imported": 0,
        "duplicate": 0,
    }
    assert [(p["a"], p["b"], p["n"], p["agreed"]) for p in doc["agreement"]] == [("alice", "bob", 2, 1)]


def test_imported_labels_have_source_imported(small_digits, tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text("path,label\n" + "".join(f"{p.relative_to(small_digits).as_posix()},x\n" for p in
                      sorted(small_digits.rglob("*.png"))), encoding="utf-8")  # fmt: skip
    assert (
        main(
            ["import", str(small_digits), str(source), "--workdir", str(tmp_path / "w"), "--annotator", "ann"]
        )
        == 0
    )
    with Store(tmp_path / "w") as store:
        assert store.counts_by_source()["imported"] == 24
        assert {r.annotator for r in store.records()} == {"ann"}
        assert store.undo() is None  # not in any session's undo history but the import's own


# --- paths from the database are checked again --------------------------------------------------------
def write_by_hand(db_path, path: str, label: str) -> None:
    """A row typed into the database by hand (any schema): nothing checked it."""
    import sqlite3

    with sqlite3.connect(db_path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(labels)")}
        t = "2026-12-01T00:00:00.000+00:00"
        if "project_id" in columns:
            db.execute(
                "INSERT INTO labels (project_id, path, label, created, updated) "
                "SELECT id, ?, ?, ?, ? FROM projects",
                (path, label, t, t),
            )
        else:
            db.execute(
                "INSERT INTO labels (path, label, created, updated) VALUES (?, ?, ?, ?)", (path, label, t, t)
            )


def test_paths_that_leave_the_folders_are_refused_not_followed(small_digits, tmp_path):
    images = small_digits
    victim = tmp_path / "victim.png"  # a file of the user's, outside the images folder
    victim.write_bytes(b"precious")
    (tmp_path / "escaped.png").write_bytes(b"outside the images folder")
    with Store(tmp_path / "work", images_root=images) as store:
        store.set_label_names(["0", "1", "2"])
        store.label(sorted(p.relative_to(images).as_posix() for p in images.rglob("*.png"))[0], "0")
    db = tmp_path / "work" / "annotations.sqlite"
    write_by_hand(db, "../../escaped.png", "0")  # out/0/../../escaped.png is outside out
    write_by_hand(db, str(victim), "1")  # absolute: out/1 / '/…/victim.png' IS the victim
    write_by_hand(db, "0/../../escaped.png", "2")
    out = tmp_path / "deep" / "export"
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file() and "export" not in p.parts)
    with Store(tmp_path / "work") as store:
        result = exports.export_folders(store, out)
        assert victim.read_bytes() == b"precious"  # never replaced, never unlinked
        after = sorted(p for p in tmp_path.rglob("*") if p.is_file() and "export" not in p.parts)
        assert after == before  # nothing written outside the export folder
        assert result.rows == 1 and sorted(result.refused) == sorted(
            ["../../escaped.png", str(victim), "0/../../escaped.png"]
        )
        assert "3 path(s) in" in str(result) and "are not relative paths inside the images folder" in str(
            result
        )
        for fmt in ("csv", "json"):
            done = exports.export(store, tmp_path / f"l.{fmt}")
            assert done.rows == 1 and len(done.refused) == 3
        assert (
            "escaped" not in (tmp_path / "l.csv").read_text()
            and "victim" not in (tmp_path / "l.json").read_text()
        )


def test_a_file_is_replaced_atomically_never_missing(tmp_path, monkeypatch):
    """The hard-link step used to unlink the target first: for a moment it was missing, and when the
    link and then the copy failed it stayed missing."""
    source, target = tmp_path / "new.png", tmp_path / "out" / "x.png"
    source.write_bytes(b"new")
    target.parent.mkdir()
    target.write_bytes(b"old")
    seen = []
    real_link = os.link

    def watching_link(src, dst):
        seen.append(target.read_bytes())  # the old file is still there while the new one is linked
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", watching_link)
    assert exports.place_file(source, target) is True
    assert seen == [b"old"] and target.read_bytes() == b"new" and os.stat(target).st_nlink == 2
    target.unlink()
    target.write_bytes(b"old")

    def no_link(src, dst):
        raise OSError(18, "Invalid cross-device link")

    def no_copy(src, dst, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(exports.shutil, "copy2", no_copy)
    with pytest.raises(OSError, match="No space left"):
        exports.place_file(source, target)
    assert target.read_bytes() == b"old"  # a failure leaves the target as it was
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.png"]  # and no temporary file behind


# --- import ----------------------------------------------------------------------------------------
def test_import_csv_starts_a_session_with_the_labels_of_the_file(small_digits, tmp_path):
    paths = sorted(p.relative_to(small_digits).as_posix() for p in small_digits.rglob("*.png"))
    source = tmp_path / "labels.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerow([f"./{paths[0]}", "zero, really", "train"])  # ./ prefix, a comma in the label
        writer.writerow([str(small_digits / paths[9]), "one", ""])  # absolute inside the folder
        writer.writerow(["elsewhere/x.png", "one", ""])
    session = _session(small_digits, labels=None, import_labels=source)
    assert session.label_names == ["one", "zero, really"]  # sorted: the file has no order of keys
    assert session.labels() == {paths[0]: "zero, really", paths[9]: "one"}
    assert session.imported.added == 2 and session.imported.unmatched == ["elsewhere/x.png"]
    assert session.current not in session.labels() and paths[0] not in session.order()
    sent = [(c.path, c.label) for c in session.trainer.commands]
    assert sorted(sent) == sorted(session.labels().items())  # start() handed them to the trainer
    assert session.store.undo() is None  # not in this session's undo history
    session.close()


def test_import_class_folders_keeps_existing_labels_unless_overwrite(small_digits):
    session = _session(small_digits)
    first = session.current
    wrong = "1" if not first.startswith("1/") else "2"
    session.label(wrong)
    result = session.import_labels(small_digits)  # the images folder is already sorted
    assert result.kept == [first] and result.added == 23 and session.labels()[first] == wrong
    assert session.current is None and session.done
    again = session.import_labels(small_digits, overwrite=True)
    assert again.changed == 1 and again.unchanged == 23
    assert session.labels() == {p: p.split("/")[0] for p in session.pool.paths}
    session.close()


def test_import_from_an_earlier_folder_export(labelled, small_digits, tmp_path):
    labelled.export(tmp_path / "ds")
    fresh = _session(small_digits, labels=None, workdir=tmp_path / "fresh")
    result = fresh.import_labels(tmp_path / "ds")
    assert result.added == 24 and fresh.labels() == labelled.labels()
    fresh.close()


@pytest.mark.parametrize(
    "content, message",
    [
        ("file,class\na.png,x\n", "needs a header row with the columns path,label"),
        ("path,label\n0/nope.png,0\n", "none of the 1 image"),
        ("path,label\n{p},\n", "has an empty label"),
        ("path,label\n{p},0\n{p},1\n", "is given two labels"),
        ("path,label\n{p},cat\n", r"label\(s\) \['cat'\], which are not among the labels"),
    ],
)
def test_bad_import_files_say_what_to_fix(small_digits, tmp_path, content, message):
    path = sorted(p.relative_to(small_digits).as_posix() for p in small_digits.rglob("*.png"))[0]
    source = tmp_path / "bad.csv"
    source.write_text(content.format(p=path), encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        _session(small_digits, import_labels=source)
    assert "bad.csv" in str(info.value)
    with Store(tmp_path / "work") as store:  # nothing was written
        assert store.count() == 0


# --- CLI -------------------------------------------------------------------------------------------
def test_cli_export_formats_and_import(labelled, small_digits, tmp_path, capsys):
    wd = str(labelled.workdir)
    assert main(["export", wd, "--out", str(tmp_path / "l.json")]) == 0
    assert main(["export", wd, "--out", str(tmp_path / "folders"), "--format", "folders"]) == 0
    assert main(["export", wd, "--out", str(tmp_path / "l.txt"), "--format", "csv"]) == 0
    assert "24 labels" in capsys.readouterr().out
    assert len(list((tmp_path / "folders").rglob("*.png"))) == 24
    assert (tmp_path / "l.txt").read_text().startswith("path,label,split")
    assert main(["export", wd, "--out", str(tmp_path / "x"), "--format", "xml"]) == 2
    assert "format='xml' is invalid" in capsys.readouterr().err
    work = tmp_path / "imported"
    code = main(["import", str(small_digits), str(tmp_path / "l.json"), "--workdir", str(work)])
    assert code == 0 and "24 new" in capsys.readouterr().out
    with Store(work) as store:
        assert store.labels() == labelled.labels() and store.label_names() == ["0", "1", "2"]
        assert store.counts_by_source()["imported"] == 24
    assert main(["import", str(small_digits), str(tmp_path / "missing.csv"), "--workdir", str(work)]) == 2
    assert "missing.csv" in capsys.readouterr().err


def test_duplicates_csv_lists_each_group_with_labels_and_split(labelled, tmp_path):
    from oal_widget.data.duplicates import DuplicateGroups

    train = next(p for p in labelled.labels() if not labelled.is_test(p))
    test = next(p for p in labelled.labels() if labelled.is_test(p))
    groups = DuplicateGroups(
        groups=((test, "x/unlabelled.png"), (train, "../outside.png", "y/other.png")), kinds=("exact", "near")
    )
    result = exports.export_duplicates(groups, tmp_path, store=labelled.store)
    assert result.out == tmp_path / "duplicates.csv" and result.rows == 4
    assert result.refused == ["../outside.png"]
    with open(result.out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(exports.DUPLICATES_COLUMNS)
    labels = labelled.labels()
    assert sorted(rows[1:]) == sorted([
        ["1", "exact", test, labels[test], "test"], ["1", "exact", "x/unlabelled.png", "", ""],
        ["2", "near", train, labels[train], "train"], ["2", "near", "y/other.png", "", ""],
    ])  # fmt: skip
    # Plain tuples of paths and no store: the groups alone.
    assert exports.duplicate_rows([("b.png", "a.png")]) == [
        (1, "", "a.png", "", ""),
        (1, "", "b.png", "", ""),
    ]
