"""Labels back in: a CSV of ``path,label``, an oal_widget JSON export, or a folder sorted into class
sub-folders, matched to the images of a pool; ``import_labels`` writes them to a store with source
``imported``. Standard library only: no widgets, no TensorFlow.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ImportResult:
    """What an import did: counts, and what could not be used (with the reason, to fix the source)."""

    source: Path
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    kept: list[str] = field(default_factory=list)  # had another label already (overwrite=False)
    unmatched: list[str] = field(default_factory=list)  # not an image of the pool
    label_names: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"imported from {self.source}: {self.added} new, {self.changed} changed, "
            f"{self.unchanged} already so"
        )
        if self.kept:
            text += f"; {len(self.kept)} kept their existing label (pass overwrite=True to replace)"
        if self.unmatched:
            text += f"; {len(self.unmatched)} not found among the images (e.g. {self.unmatched[0]!r})"
        return text


def read_labels(source, images_root, pool_paths: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """``(path -> label, unmatched)`` from a CSV/JSON file or a folder sorted into class sub-folders.

    Paths are matched to ``pool_paths`` (relative, ``/`` separators). A CSV needs the columns
    ``path`` and ``label`` (a header row; any other columns such as ``split`` are ignored); paths may
    be relative to the images folder or absolute inside it. A JSON file is this module's export. A
    folder ``<label>/<file>`` gives each image the name of its top-level folder: the images folder
    itself when it is already sorted, or a sorted copy (e.g. an earlier folder export) whose files keep
    their paths under the class folder. ``ValueError`` names the source and what to fix.
    """
    source = Path(source).expanduser()
    root = Path(images_root).expanduser().resolve()
    known = set(pool_paths)
    if source.is_dir():
        pairs = _read_folder(source, root)
    elif source.is_file():
        raw = _read_json(source) if source.suffix.lower() == ".json" else _read_csv(source)
        pairs = [([_relative(path, root)], label, path) for path, label in raw]
    else:
        raise FileNotFoundError(f"import source {str(source)!r} does not exist: pass a CSV file or a folder")
    labels: dict[str, str] = {}
    unmatched: list[str] = []
    for candidates, label, shown in pairs:
        label = label.strip()
        if not label:
            raise ValueError(
                f"{source}: {shown!r} has an empty label: give every row a label, or drop the row"
            )
        path = next((c for c in candidates if c in known), None)
        if path is None:
            unmatched.append(shown)
            continue
        previous = labels.get(path)
        if previous is not None and previous != label:
            raise ValueError(
                f"{source}: {path!r} is given two labels ({previous!r} and {label!r}): keep one of them"
            )
        labels[path] = label
    if pairs and not labels:
        raise ValueError(
            f"none of the {len(pairs)} image(s) in {source} is in the images folder {root} "
            f"(e.g. {unmatched[0]!r}): paths must be relative to the images folder, e.g. 'cats/1.png'"
        )
    return labels, unmatched


def import_labels(store, source, images_root, pool_paths: Iterable[str], *, overwrite: bool = False):
    """Label the images of a pool in ``store`` from ``source`` (see ``read_labels``), source ``imported``.

    Images that already have another label keep it unless ``overwrite``. When the store has no label
    names yet they become the source's labels in sorted order; otherwise a label not among them is a
    ``ValueError``. One transaction (one step of this store's undo history). Returns an ``ImportResult``.
    """
    found, unmatched = read_labels(source, images_root, pool_paths)
    result = ImportResult(source=Path(source), unmatched=unmatched)
    names = set(found.values())
    if not store.label_names():
        store.set_label_names(sorted(names))
    check_known(source, names, store.label_names())
    items = plan(found, store.labels(), result, overwrite=overwrite)
    store.label_many(items, source="imported")
    result.label_names = list(store.label_names())
    return result


def check_known(source, names: Iterable[str], known: list[str]) -> None:
    """A label of the file that is not among the known labels is a ``ValueError`` saying what to do."""
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(
            f"{source} has the label(s) {unknown!r}, which are not among the labels {known!r}: add them at "
            "the END of labels=[...], or fix the file"
        )


def plan(found: dict[str, str], current, result: ImportResult, *, overwrite: bool) -> list[tuple[str, str]]:
    """The ``(path, label)`` pairs to write, counted in ``result``: an image that has another label
    (``current.get(path)``) keeps it unless ``overwrite``."""
    items = []
    for path, label in found.items():
        old = current.get(path)
        if old == label:
            result.unchanged += 1
        elif old is not None and not overwrite:
            result.kept.append(path)
        else:
            items.append((path, label))
            result.added += old is None
            result.changed += old is not None
    return items


def _relative(raw: str, root: Path) -> str:
    text = raw.strip().replace("\\", "/")
    if os.path.isabs(text):
        try:
            return Path(text).resolve().relative_to(root).as_posix()
        except ValueError:
            return text
    while text.startswith("./"):
        text = text[2:]
    return text


def _read_csv(source: Path) -> list[tuple[str, str]]:
    try:
        with source.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [name.strip().lower() for name in reader.fieldnames or []]
            if "path" not in fields or "label" not in fields:
                raise ValueError(
                    f"{source} needs a header row with the columns path,label (found {reader.fieldnames}): "
                    "add the header line 'path,label'"
                )
            reader.fieldnames = fields
            return [(row["path"], row["label"] or "") for row in reader if (row.get("path") or "").strip()]
    except UnicodeDecodeError as e:
        raise ValueError(f"{source} is not UTF-8 text ({e}): save it as UTF-8 CSV") from e
    except csv.Error as e:
        raise ValueError(f"{source} is not a readable CSV ({e}): expected the columns path,label") from e


def _read_json(source: Path) -> list[tuple[str, str]]:
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
        items = doc["items"] if isinstance(doc, Mapping) else doc
        return [(str(item["path"]), str(item["label"])) for item in items]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{source} is not an oal_widget JSON export ({type(e).__name__}: {e}): expected "
            '{"items": [{"path": ..., "label": ...}, ...]}, or use a CSV with the columns path,label'
        ) from e


def _read_folder(source: Path, root: Path) -> list[tuple[list[str], str, str]]:
    from ..data.pool import scan  # the same rules as the pool: hidden folders and symlinks out are skipped

    paths, _skipped = scan(source)
    source_resolved = source.resolve()
    out = []
    for rel in paths:
        if "/" not in rel:
            continue  # a file next to the class folders has no class
        label, rest = rel.split("/", 1)
        if source_resolved == root:
            candidates = [rel]  # the images folder itself is sorted: its paths are the pool's
        else:
            # A sorted copy: our export keeps the path under the class folder; a plain copy of the
            # images folder keeps the class folder in the path.
            candidates = [rest, rel]
        out.append((candidates, label, rel))
    if not out:
        raise ValueError(
            f"{source} has no images in class sub-folders: expected <label>/<image>, e.g. cat/1.png"
        )
    return out
