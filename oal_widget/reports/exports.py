"""Labels in and out: CSV, JSON and class folders that ``keras.utils.image_dataset_from_directory`` loads.

Export reads the store (the only source of truth) and never changes it; every path read from it is
checked again (a path written into the database by hand must not lead outside the output or images
folder: such rows are left out and reported). CSV and JSON carry the provenance of each label
(``source``, ``annotator``, ``model_labels``, ``labelled_at``) and, for images labelled by several
annotators, who they were and whether they agree (the ``label`` column is the one that stands).
``export_duplicates`` lists groups of near-duplicate images (``data.duplicates``) with their labels.
Reading labels back in is ``imports.py``. Standard library only: no widgets, no TensorFlow.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..data.store.checks import check_path
from ..workdir import atomic_write_text

FORMATS = ("csv", "json", "folders")
#: The CSV's columns; the first three are the original ``path,label,split``.
CSV_COLUMNS = (
    "path", "label", "split", "source", "annotator", "model_labels", "labelled_at", "annotators", "agreement",
)  # fmt: skip
#: Written at the top of a class-folder export. Keras only takes sub-folders as classes, so this file
#: does not disturb ``image_dataset_from_directory``; it also marks the folder as safe to replace.
MANIFEST = "oal_export.json"
SPLITS = ("all", "train", "test", "both")
#: The columns of ``duplicates.csv``: one row per image of a group; ``split`` "test" for the test
#: reserve, "train" for other labelled images, empty for the rest.
DUPLICATES_COLUMNS = ("group", "kind", "path", "label", "split")
_FORBIDDEN_IN_NAMES = ("/", "\\", "\0")


@dataclass
class ExportResult:
    """What an export wrote. ``missing``: labelled images whose file is gone (not exported)."""

    out: Path
    format: str
    rows: int = 0
    linked: int = 0
    copied: int = 0
    missing: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    #: Paths in the database that are not relative paths inside the images folder: left out.
    refused: list[str] = field(default_factory=list)
    store: str = ""

    def __str__(self) -> str:
        text = f"wrote {self.rows} labels to {self.out} ({self.format})"
        if self.format == "folders":
            text += f": {self.linked} hard-linked, {self.copied} copied"
        if self.missing:
            text += f"; {len(self.missing)} labelled file(s) no longer exist and were left out"
        if self.refused:
            text += "; " + refused_message(self.refused, self.store)
        return text


def refused_message(refused: list[str], store: str) -> str:
    return (
        f"{len(refused)} path(s) in {store or 'the store'} are not relative paths inside the images folder "
        f"and were left out (e.g. {refused[0]!r}): fix or delete those rows of the database"
    )


# --- export ---------------------------------------------------------------------------------------
def guess_format(out, format: str | None = None) -> str:
    """``format`` checked, or guessed from ``out``: ``.csv``, ``.json``, anything else a folder."""
    if format is None:
        suffix = Path(out).suffix.lower()
        format = {".csv": "csv", ".json": "json"}.get(suffix, "folders")
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is invalid: expected one of {', '.join(FORMATS)}")
    return format


def checked_records(store) -> tuple[list, list[str]]:
    """(the store's label records whose path is safe, the refused paths): every path is checked again."""
    good, refused = [], []
    for record in store.records():
        try:
            check_path(record.path)
        except ValueError:
            refused.append(record.path)
            continue
        good.append(record)
    return good, refused


def rows(store) -> list[tuple[str, str, str]]:
    """``(path, label, split)`` for every labelled image with a safe path, sorted by path."""
    return [(r.path, r.label, r.split) for r in checked_records(store)[0]]


def export(store, out, format: str | None = None, *, images_root=None, split: str = "all") -> ExportResult:
    """Write the labels of ``store`` as CSV, JSON or class folders (see the ``export_*`` functions)."""
    format = guess_format(out, format)
    if format == "csv":
        return export_csv(store, out)
    if format == "json":
        return export_json(store, out)
    return export_folders(store, out, images_root=images_root, split=split)


def export_csv(store, out) -> ExportResult:
    """One row per label (``CSV_COLUMNS``), quoted by the csv module: labels with commas read back exactly."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder: pass a file name such as labels.csv")
    records, refused = checked_records(store)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for r in records:
                writer.writerow([
                    r.path, r.label, r.split, r.source or "", r.annotator or "",
                    "" if r.model_labels is None else r.model_labels, r.updated, ";".join(r.annotators),
                    r.agreement,
                ])  # fmt: skip
        os.replace(tmp, out)  # a reader never sees half a file
    finally:
        tmp.unlink(missing_ok=True)
    return _result(store, out, "csv", len(records), refused)


def duplicate_rows(groups, store=None) -> list[tuple[int, str, str, str, str]]:
    """``DUPLICATES_COLUMNS`` rows of ``groups`` (a ``DuplicateGroups``, or tuples of paths: kind "").

    Groups are numbered from 1 in their order; labels and split come from ``store`` when given.
    """
    labels = store.labels() if store is not None else {}
    test = store.test_paths() if store is not None else set()
    kinds = getattr(groups, "kinds", None) or ()
    out = []
    for number, group in enumerate(groups, start=1):
        kind = kinds[number - 1] if number <= len(kinds) else ""
        for path in sorted(group):
            label = labels.get(path, "")
            split = "test" if path in test else ("train" if path in labels else "")
            out.append((number, kind, path, label, split))
    return out


def export_duplicates(groups, out, store=None) -> ExportResult:
    """Write ``duplicates.csv`` (``DUPLICATES_COLUMNS``): every image of every group, with its label.

    ``rows`` of the result counts images; paths that are not relative paths inside the images folder
    are left out and listed in ``refused``.
    """
    out = Path(out).expanduser()
    if out.is_dir():
        out = out / "duplicates.csv"
    good, refused = [], []
    for row in duplicate_rows(groups, store):
        try:
            check_path(row[2])
        except ValueError:
            refused.append(row[2])
            continue
        good.append(row)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(DUPLICATES_COLUMNS)
    writer.writerows(good)
    _write_atomic(out, buffer.getvalue())
    names = list(store.label_names()) if store is not None else []
    where = _location(store) if store is not None else ""
    return ExportResult(
        out=out, format="csv", rows=len(good), class_names=names, refused=refused, store=where
    )


def export_json(store, out) -> ExportResult:
    """One JSON document: label names (key order), counts (by label and by source), images root,
    agreement per annotator pair, and one item per label with its provenance; ``annotations`` (each
    annotator's label) for images labelled by several."""
    out = Path(out).expanduser()
    _check_file_target(out)
    records, refused = checked_records(store)
    by_path: dict[str, dict[str, str]] = {}
    for a in store.annotations():
        if a.annotator is not None:
            by_path.setdefault(a.path, {})[a.annotator] = a.label
    root = store.images_root
    items = []
    for r in records:
        item = {
            "path": r.path, "label": r.label, "split": r.split, "source": r.source, "annotator": r.annotator,
            "model_labels": r.model_labels, "labelled_at": r.updated,
        }  # fmt: skip
        if len(r.annotators) > 1:
            item["annotations"] = by_path.get(r.path, {})
            item["agreement"] = r.agreement
        items.append(item)
    doc = {
        "label_names": list(store.label_names()),
        "counts": store.counts(),
        "counts_by_source": store.counts_by_source(),
        "agreement": [vars(pair) for pair in store.agreement()],
        "images_root": str(root) if root is not None else None,
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "items": items,
    }
    _write_atomic(out, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return _result(store, out, "json", len(items), refused)


def _result(store, out: Path, format: str, n: int, refused: list[str]) -> ExportResult:
    return ExportResult(
        out=out, format=format, rows=n, class_names=list(store.label_names()), refused=refused,
        store=_location(store),
    )  # fmt: skip


def _location(store) -> str:
    where = getattr(store, "location_text", None)
    return where() if callable(where) else str(getattr(store, "path", ""))


def export_folders(store, out, *, images_root=None, split: str = "all", link: bool = True) -> ExportResult:
    """A copy of the labelled images as ``out/<label>/<path>`` (hard links where the disk allows).

    ``split``: ``"all"`` (default), ``"train"`` or ``"test"`` only, or ``"both"`` for
    ``out/train/<label>/...`` and ``out/test/<label>/...``. Every label gets a folder (an empty one
    too), so the class count matches. Keras orders classes alphabetically: pass
    ``class_names=result.class_names`` to ``image_dataset_from_directory`` to keep the label order.
    The original relative path is kept under each class folder, so names never collide. An earlier
    export in ``out`` (it has ``oal_export.json``) is replaced; any other non-empty folder is refused.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is invalid: expected one of {', '.join(SPLITS)}")
    out = Path(out).expanduser()
    root = Path(images_root).expanduser() if images_root is not None else store.images_root
    if root is None or not Path(root).is_dir():
        raise FileNotFoundError(
            f"the images folder {str(root)!r} of {_location(store)} does not exist: pass images_root=... "
            "(the folder the labels belong to)"
        )
    root = Path(root)
    names = list(store.label_names())
    folders = class_folder_names(names)
    _prepare_out(out, root)
    records, refused = checked_records(store)
    result = ExportResult(
        out=out, format="folders", class_names=names, refused=refused, store=_location(store)
    )
    root_resolved, out_resolved = root.resolve(), out.resolve()
    parts = ("train", "test") if split == "both" else ("",)
    for part in parts:
        for name in names:
            (out / part / folders[name]).mkdir(parents=True, exist_ok=True)
    for record in records:
        path, label, which = record.path, record.label, record.split
        if split in ("train", "test") and which != split:
            continue
        folder = folders.get(label) or _folder_name(label)  # a label dropped from the names still exports
        source = root / path
        target = out / (which if split == "both" else "") / folder / path
        if not (
            _inside(source.resolve(), root_resolved) and _inside(target.resolve(), out_resolved) and folder
        ):
            result.refused.append(path)  # e.g. a symlink out of the images folder, an empty label
            continue
        if not source.is_file():
            result.missing.append(path)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if place_file(source, target, link=link):
            result.linked += 1
        else:
            result.copied += 1
        result.rows += 1
    manifest = {
        "class_names": names,
        "folders": folders,
        "split": split,
        "images_root": str(root),
        "rows": result.rows,
        "missing": result.missing,
        "refused": result.refused,
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_atomic(out / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return result


def class_folder_names(names: Iterable[str]) -> dict[str, str]:
    """label -> folder name: ``/``, ``\\`` and NUL become ``_``; a clash after that is a ``ValueError``."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        folder = _folder_name(name)
        if folder in seen:
            raise ValueError(
                f"labels {seen[folder]!r} and {name!r} would share the class folder {folder!r}: "
                "rename one of them (set_label_names) before exporting folders"
            )
        seen[folder] = name
        out[name] = folder
    return out


def _folder_name(name: str) -> str:
    folder = name
    for bad in _FORBIDDEN_IN_NAMES:
        folder = folder.replace(bad, "_")
    if folder in (".", ".."):
        folder = folder.replace(".", "_")
    return folder


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def place_file(source: Path, target: Path, *, link: bool = True) -> bool:
    """Put ``source`` at ``target``: a hard link where the disk allows (no extra space; returns True),
    else a copy (False). Written under a temporary name in the same folder, then ``os.replace``d over
    ``target``: an existing target is never missing, and a failure leaves it as it was."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        linked = False
        if link:
            try:
                os.link(source, tmp)
                linked = True
            except OSError:  # another device, or a file system without hard links
                pass
        if not linked:
            shutil.copy2(source, tmp)
        os.replace(tmp, target)
        return linked
    finally:
        tmp.unlink(missing_ok=True)


def _prepare_out(out: Path, root: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} is a file: pass a folder for the class-folder export")
    resolved, root_resolved = out.resolve(), root.resolve()
    if resolved == root_resolved or root_resolved in resolved.parents:
        # Exporting inside the images folder would add the copies to the pool on the next scan.
        raise ValueError(
            f"out {str(out)!r} is inside the images folder {str(root)!r}: pass a folder outside it"
        )
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise ValueError(
                f"out {str(out)!r} is not empty and is not an earlier oal_widget export: "
                "pass a new or empty folder"
            )
        shutil.rmtree(out)  # our own earlier export: replace it, so removed labels do not linger
    out.mkdir(parents=True, exist_ok=True)


def _check_file_target(out: Path) -> None:
    if out.is_dir():
        raise ValueError(f"out {str(out)!r} is a folder: pass a file name such as labels.json")


def _write_atomic(out: Path, text: str) -> None:
    atomic_write_text(out, text)  # a reader never sees half a file
