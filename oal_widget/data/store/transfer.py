"""A whole project out of one store and into another (``copy-store``): nothing lost, claims aside."""

from __future__ import annotations

import json

from .base import StoreCore, Tx
from .checks import iso
from .records import ProjectDump
from .schema import HISTORY_COLUMNS, LABEL_COLUMNS, MARK_COLUMNS

_TABLES = {
    "labels": ("path", *LABEL_COLUMNS),
    "annotations": ("path", *MARK_COLUMNS),
    "settlements": ("path", *MARK_COLUMNS),
    "test_split": ("path", "added"),
    "history": HISTORY_COLUMNS,
}
_TIMES = {"created", "updated", "added"}


class Transfer(StoreCore):
    def dump(self) -> ProjectDump:
        """Everything of this project, read under its lock (a consistent copy while others label)."""

        def work(tx: Tx) -> ProjectDump:
            name, root, names, version = tx.row(
                "SELECT name, images_root, label_names, version FROM projects WHERE id = ?", (tx.project,)
            )
            tables = {}
            for table, cols in _TABLES.items():
                order = "id" if table == "history" else "path"
                rows = tx.all(
                    f"SELECT {', '.join(cols)} FROM {table} WHERE project_id = ? ORDER BY {order}",
                    (tx.project,),
                )
                tables[table] = [
                    {c: iso(v) if c in _TIMES else v for c, v in zip(cols, row, strict=True)} for row in rows
                ]
            return ProjectDump(name, root, json.loads(names), version, **tables)

        return self._write(work, bump=False)

    def load(self, dump: ProjectDump) -> None:
        """Write ``dump`` into this store's project, which must hold nothing yet; one transaction."""

        def work(tx: Tx) -> None:
            for table in _TABLES:
                n = tx.row(f"SELECT COUNT(*) FROM {table} WHERE project_id = ?", (tx.project,))[0]
                if n:
                    raise ValueError(
                        f"{self.location_text()} already holds {n} row(s) of {table} in project "
                        f"{self.project!r}: copy into a new project (copy-store --dst-project NAME) "
                        "or an empty store"
                    )
            tx.run(
                "UPDATE projects SET images_root = ?, label_names = ?, version = ? WHERE id = ?",
                (
                    dump.images_root,
                    json.dumps(dump.label_names, ensure_ascii=False),
                    max(dump.version, tx.version or 0),
                    tx.project,
                ),
            )
            for table, cols in _TABLES.items():
                rows = [(tx.project, *(row[c] for c in cols)) for row in getattr(dump, table)]
                tx.many(
                    f"INSERT INTO {table} (project_id, {', '.join(cols)}) "
                    f"VALUES ({','.join('?' * (len(cols) + 1))})",
                    rows,
                )

        self._write(work)
