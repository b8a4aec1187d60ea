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
    assert main(["import", str(small_digits), str(tmp_path / "missing.csv"), "--workdir", str(work)]) == 2
    assert "missing.csv" in capsys.readouterr().err
