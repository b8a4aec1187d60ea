"""The read API: full label records with provenance, each annotator's labels, counts by source."""

from __future__ import annotations

from collections.abc import Iterable

from .agreement import Agreement, status
from .base import Tx
from .checks import SOURCES, UNKNOWN_ANNOTATOR, iso
from .records import AnnotationRecord, LabelRecord


class Reads(Agreement):
    def records(self, paths: Iterable[str] | None = None) -> list[LabelRecord]:
        """Every standing label (or those of ``paths``) with split and provenance, sorted by path."""
        wanted = None if paths is None else set(paths)

        def work(tx: Tx):
            rows = tx.all(
                "SELECT l.path, l.label, CASE WHEN t.path IS NULL THEN 'train' ELSE 'test' END, l.source, "
                "l.annotator, l.created, l.updated, l.model_labels FROM labels l LEFT JOIN test_split t "
                "ON t.project_id = l.project_id AND t.path = l.path WHERE l.project_id = ? ORDER BY l.path",
                (tx.project,),
            )
            return rows, self._marks_by_path(tx)

        rows, (by_path, settled) = self._read(work)
        out = []
        for path, label, split, source, annotator, created, updated, n in rows:
            if wanted is not None and path not in wanted:
                continue
            marks = by_path.get(path, {})
            out.append(
                LabelRecord(
                    path, label, split, source, annotator, iso(created), iso(updated), n,
                    tuple(sorted(a for a in marks if a != UNKNOWN_ANNOTATOR)),
                    status(marks, settled.get(path)),
                )
            )  # fmt: skip
        return out

    def sources(self, paths: Iterable[str]) -> dict[str, str | None]:
        """path -> the source of its standing label, for those of ``paths`` that are labelled (cheap: it
        reads those rows only; another session's labels are taken in with it)."""
        paths = list(dict.fromkeys(paths))
        if not paths:
            return {}

        def work(tx: Tx):
            sql = "SELECT path, source FROM labels WHERE project_id = ? AND path IN ({params})"
            return dict(tx.where_in(sql, (tx.project,), paths))

        return self._read(work)

    def record(self, path: str) -> LabelRecord | None:
        """The record of one image, or None when it is not labelled."""
        found = self.records([path])
        return found[0] if found else None

    def annotations(self, path: str | None = None) -> list[AnnotationRecord]:
        """Each annotator's label (of ``path``, or of every image), sorted by path and time."""
        sql = (
            "SELECT path, annotator, label, source, model_labels, created, updated FROM annotations "
            "WHERE project_id = ?"
        )
        args: tuple[str, ...] = ()
        if path is not None:
            sql, args = sql + " AND path = ?", (path,)
        rows = self._rows(sql + " ORDER BY path, created, annotator", args)
        return [
            AnnotationRecord(p, a or None, label, src, n, iso(c), iso(u))
            for p, a, label, src, n, c, u in rows
        ]

    def counts_by_source(self) -> dict[str, int]:
        """Standing labels per source: every source (zeros too); ``unknown`` for labels from schema 1."""
        rows = self._rows("SELECT source, COUNT(*) FROM labels WHERE project_id = ? GROUP BY source")
        found = {source if source is not None else "unknown": n for source, n in rows}
        out = {source: found.pop(source, 0) for source in SOURCES}
        out.update(sorted(found.items()))
        return out
