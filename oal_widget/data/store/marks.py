"""Who labelled what, per image, and which label stands.

A *mark* is one row of ``annotations`` (key: the annotator) or ``settlements`` (one per image). The
standing label (table ``labels``) is derived from them in the same transaction:

- the settlement when there is one (``settle()``, or a label with source ``review`` / ``imported``);
- else the FIRST annotator's label (the lowest ``first_rev``): a second annotator's label of an image
  already labelled is kept in ``annotations`` but does not replace it; the same annotator relabelling
  replaces their own label (and so the standing one when theirs stands).

Every change remembers each row it touched (the row before, the ``rev`` it left) in ``history.marks``:
an undo puts the rows back only where the ``rev`` is still the one it left, so a newer change by
another session is never overwritten (``rev`` = the project version of the change; an undo puts the
old ``rev`` back, so a later undo of an older step still matches).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from .base import Tx
from .checks import iso
from .records import Standing
from .schema import LABEL_COLUMNS, MARK_COLUMNS

ANNOTATION, SETTLEMENT = "a", "s"
_TIMES = ("created", "updated")
_MARKS = ",".join("?" * len(MARK_COLUMNS))


def _mark(row: Sequence) -> dict:
    mark = dict(zip(MARK_COLUMNS, row, strict=True))
    for key in _TIMES:
        mark[key] = iso(mark[key])
    return mark


def standing_of(annotations: Mapping[str | None, dict], settlement: dict | None) -> dict | None:
    """The standing label row (``LABEL_COLUMNS``) from an image's marks; None when it has none."""
    if settlement is None and not annotations:
        return None
    first = min(annotations.values(), key=lambda m: m["first_rev"]) if annotations else None
    base: dict = settlement or first or {}  # one of them is there (checked above)
    created = min(
        [m["created"] for m in annotations.values()] + ([settlement["created"]] if settlement else [])
    )
    return {
        "label": base["label"],
        "annotator": base["annotator"] or None,  # '' = labelled before provenance was recorded
        "source": base["source"],
        "model_labels": base["model_labels"],
        "created": created,
        "updated": base["updated"],
        "settled": 1 if settlement is not None else 0,
    }


class Marks:
    """The marks and standing labels of some images inside one transaction; ``flush()`` writes changes."""

    def __init__(self, tx: Tx, paths):
        self.tx = tx
        self.paths = list(dict.fromkeys(paths))
        self.annotations: dict[str, dict[str | None, dict]] = {p: {} for p in self.paths}
        self.settlements: dict[str, dict | None] = dict.fromkeys(self.paths)
        self.before: dict[str, dict | None] = dict.fromkeys(self.paths)  # standing labels as loaded
        self._touched: dict[str, dict[tuple[str, str | None], dict | None]] = {p: {} for p in self.paths}
        cols = ", ".join(MARK_COLUMNS)
        for path, *row in tx.where_in(
            f"SELECT path, {cols} FROM annotations WHERE project_id = ? AND path IN ({{params}})",
            (tx.project,),
            self.paths,
        ):
            mark = _mark(row)
            self.annotations[path][mark["annotator"]] = mark
        for path, *row in tx.where_in(
            f"SELECT path, {cols} FROM settlements WHERE project_id = ? AND path IN ({{params}})",
            (tx.project,),
            self.paths,
        ):
            self.settlements[path] = _mark(row)
        for path, *row in tx.where_in(
            f"SELECT path, {', '.join(LABEL_COLUMNS)} FROM labels "
            "WHERE project_id = ? AND path IN ({params})",
            (tx.project,),
            self.paths,
        ):
            label = dict(zip(LABEL_COLUMNS, row, strict=True))
            for key in _TIMES:
                label[key] = iso(label[key])
            self.before[path] = label

    # --- reading --------------------------------------------------------------------------------
    def get(self, path: str, table: str, key: str | None) -> dict | None:
        return self.annotations[path].get(key) if table == ANNOTATION else self.settlements[path]

    def standing(self, path: str) -> dict | None:
        return standing_of(self.annotations[path], self.settlements[path])

    def after(self, me: str) -> dict[str, Standing]:
        """What stands now for each image (as it will once flushed), seen by annotator ``me``."""
        out = {}
        for path in self.paths:
            row = self.standing(path)
            mine = me in self.annotations[path] or (row is not None and row["annotator"] == me)
            out[path] = Standing(row["label"], row["source"], mine) if row else Standing(None, None, mine)
        return out

    def label_before(self, path: str) -> str | None:
        row = self.before[path]
        return row["label"] if row else None

    # --- changing ---------------------------------------------------------------------------------
    def put(self, path: str, table: str, key: str | None, mark: dict | None) -> None:
        """Set (or with None remove) one mark; the first value it had is kept for the history."""
        touched = self._touched[path]
        if (table, key) not in touched:
            touched[(table, key)] = self.get(path, table, key)
        if table == ANNOTATION:
            if mark is None:
                self.annotations[path].pop(key, None)
            else:
                self.annotations[path][key] = mark
        else:
            self.settlements[path] = mark

    def touched(self, path: str) -> bool:
        return any(self._touched[path][k] != self.get(path, *k) for k in self._touched[path])

    def history_marks(self, path: str) -> str:
        """JSON for ``history.marks``: each touched row before, and the ``rev`` this change left."""
        entries = []
        for (table, key), before in self._touched[path].items():
            after = self.get(path, table, key)
            entries.append({"t": table, "k": key, "before": before, "rev": after["rev"] if after else None})
        return json.dumps(entries, ensure_ascii=False)

    def restore(self, path: str, entries: list[dict], names: list[str], me: str) -> str | None:
        """Put back the rows of one history row; or, if another session changed one of them since,
        change nothing and return who did (a sentence)."""
        for entry in entries:
            current = self.get(path, entry["t"], entry["k"])
            if (current["rev"] if current else None) != entry["rev"]:
                return _who_changed(path, current, me)
        for entry in entries:
            before = entry["before"]
            if before is not None and before["label"] not in names:
                before = None  # a label name dropped since: the image loses that label instead
            self.put(path, entry["t"], entry["k"], before)
        return None

    def flush(self) -> None:
        """Write the touched marks and every standing label that changed."""
        tx, cols = self.tx, ", ".join(MARK_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in MARK_COLUMNS if c != "annotator")
        rows: dict[str, list[tuple]] = {ANNOTATION: [], SETTLEMENT: []}
        gone: dict[str, list[tuple]] = {ANNOTATION: [], SETTLEMENT: []}
        for path in self.paths:
            for table, key in self._touched[path]:
                mark = self.get(path, table, key)
                if mark is None:
                    gone[table].append((tx.project, path, key) if table == ANNOTATION else (tx.project, path))
                else:
                    rows[table].append((tx.project, path, *(mark[c] for c in MARK_COLUMNS)))
        tx.many(
            "DELETE FROM annotations WHERE project_id = ? AND path = ? AND annotator = ?", gone[ANNOTATION]
        )
        tx.many(
            f"INSERT INTO annotations (project_id, path, {cols}) VALUES (?, ?, {_MARKS}) "
            f"ON CONFLICT (project_id, path, annotator) DO UPDATE SET {updates}",
            rows[ANNOTATION],
        )
        tx.many("DELETE FROM settlements WHERE project_id = ? AND path = ?", gone[SETTLEMENT])
        tx.many(
            f"INSERT INTO settlements (project_id, path, {cols}) VALUES (?, ?, {_MARKS}) "
            f"ON CONFLICT (project_id, path) DO UPDATE SET annotator = excluded.annotator, {updates}",
            rows[SETTLEMENT],
        )
        self._flush_standing()

    def _flush_standing(self) -> None:
        tx, cols = self.tx, ", ".join(LABEL_COLUMNS)
        upserts, deletes = [], []
        for path in self.paths:
            new = self.standing(path)
            if new == self.before[path]:
                continue
            if new is None:
                deletes.append((tx.project, path))
            else:
                upserts.append((tx.project, path, *(new[c] for c in LABEL_COLUMNS)))
        tx.many("DELETE FROM labels WHERE project_id = ? AND path = ?", deletes)
        tx.many(
            f"INSERT INTO labels (project_id, path, {cols}) VALUES (?, ?, {','.join('?' * 7)}) "
            "ON CONFLICT (project_id, path) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in LABEL_COLUMNS),
            upserts,
        )


def _who_changed(path: str, current: dict | None, me: str) -> str:
    if current is None:
        return f"{path!r}: another session removed its label after this session's change"
    who, label = current["annotator"], current["label"]
    if who and who != me:
        return f"{path!r}: another annotator ({who!r}) relabelled it {label!r} after this session's change"
    who = who or "unknown annotator"
    return f"{path!r}: another session of {who!r} relabelled it {label!r} after this session's change"
