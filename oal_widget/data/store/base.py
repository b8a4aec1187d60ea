"""The core every backend shares: transactions, the project, label names, the test split, plain reads.

A backend (``sqlite.Store``, ``postgres.PostgresStore``) supplies a connection and ``_transaction``;
everything else is written once, in SQL that both accept, with ``?`` placeholders (the PostgreSQL
backend rewrites them). Every write of a project first takes that project's lock (SQLite: ``BEGIN
IMMEDIATE``; PostgreSQL: its ``projects`` row ``FOR UPDATE``), so the read-then-write logic of labels,
undo and claims runs one at a time per project on both backends.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from .checks import check_annotator, check_label_names, check_path, iso

#: Paths per ``IN (...)`` list (SQLite's variable limit is far above; large pages stay fast).
CHUNK = 500


def chunks(items: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def placeholders(n: int) -> str:
    """``?, ?, ...``: ``n`` query parameters (the ``{params}`` of a statement run over a list)."""
    return ",".join("?" * n)


class Tx:
    """One transaction: statements in ``?`` style, the project, and (for writes) its version and names."""

    def __init__(self, cursor, adapt: Callable, project: int | None, clock: Callable[[], datetime]):
        self._cur, self._adapt, self.project = cursor, adapt, project
        self._clock = clock
        self._now: datetime | None = None
        self.version: int | None = None  # set by a write that bumps: the step id and the rev it writes
        self.names: list[str] = []

    @property
    def now(self) -> datetime:
        """The time of this transaction (PostgreSQL: the server's clock, the same for every client)."""
        if self._now is None:
            self._now = self._clock()
        return self._now  # type: ignore[return-value]  # set just above

    @now.setter
    def now(self, value: datetime) -> None:
        self._now = value

    @property
    def stamp(self) -> str:
        return iso(self.now)

    def all(self, sql: str, args: Sequence = ()) -> list[tuple]:
        self._cur.execute(self._adapt(sql), tuple(args))
        return self._cur.fetchall()

    def one(self, sql: str, args: Sequence = ()) -> tuple | None:
        rows = self.all(sql, args)
        return rows[0] if rows else None

    def row(self, sql: str, args: Sequence = ()) -> tuple:
        """The row a query always returns (an aggregate, the project's own row)."""
        rows = self.all(sql, args)
        if not rows:
            raise LookupError(f"no row for {sql!r}")
        return rows[0]

    def run(self, sql: str, args: Sequence = ()) -> int:
        self._cur.execute(self._adapt(sql), tuple(args))
        return self._cur.rowcount

    def many(self, sql: str, rows: Sequence[Sequence]) -> None:
        if rows:
            self._cur.executemany(self._adapt(sql), [tuple(r) for r in rows])

    def where_in(self, sql: str, head: Sequence, paths: Sequence[str]) -> list[tuple]:
        """``sql`` with ``{params}`` replaced by a placeholder list, run over ``paths`` in chunks."""
        out: list[tuple] = []
        for part in chunks(list(paths)):
            out += self.all(sql.format(params=placeholders(len(part))), (*head, *part))
        return out

    def run_in(self, sql: str, head: Sequence, paths: Sequence[str]) -> int:
        """``run`` of a statement with ``{params}`` over ``paths`` in chunks; returns the rows changed."""
        return sum(
            self.run(sql.format(params=placeholders(len(part))), (*head, *part))
            for part in chunks(list(paths))
        )


class StoreCore:
    """Plumbing and the simple parts of the store interface (see ``LabelStore`` for the rest)."""

    #: True where one database is one workdir (SQLite): its only project is used whatever the
    #: images folder is called now (folders move).
    single_project_file = False
    path: Path | str
    workdir: Path | None

    def _init_core(self, annotator) -> None:
        self.annotator: str = check_annotator(annotator)
        # ``<random>@<host>:<pid>``: a later session on this host can tell a dead kernel's claims.
        self.session_id: str = f"{uuid.uuid4().hex}@{os.uname().nodename}:{os.getpid()}"
        self._lock = threading.RLock()
        self._project: int | None = None
        self.project: str | None = None
        self._own_bumps = 0  # this object's committed changes: data_version() leaves them out
        self._lease_s: float | None = None  # the last lease claim() used (undo re-claims with it)

    # --- the backend's part -------------------------------------------------------------------
    def _transaction(self, fn: Callable[[Tx], object], *, write: bool, bump: bool = False, project=True):
        raise NotImplementedError

    def _write(self, fn: Callable[[Tx], object], *, bump: bool = True):
        """Run ``fn(tx)`` in one write transaction under the project's lock; committed on return."""
        return self._transaction(fn, write=True, bump=bump)

    def release(self, paths: Iterable[str] | None = None) -> int:
        raise NotImplementedError  # ``claims.Claims``

    def _read(self, fn: Callable[[Tx], object]):
        return self._transaction(fn, write=False)

    def _rows(self, sql: str, args: Sequence = ()) -> list[tuple]:
        """One query with the project id as its first argument."""
        return self._read(lambda tx: tx.all(sql, (tx.project, *args)))

    # --- the project --------------------------------------------------------------------------
    def _open_project(self, images_root, project, *, create: bool = True) -> None:
        """Find (or create) the project and record the images folder; sets ``project`` / ``_project``."""
        root = str(Path(images_root).expanduser().resolve()) if images_root is not None else None

        def work(tx: Tx):
            rows = tx.all("SELECT id, name, images_root FROM projects ORDER BY id")
            name = self._choose_project(rows, project, root)
            row = next((r for r in rows if r[1] == name), None)
            if row is None:
                if not create:
                    raise FileNotFoundError(self._no_project_message(name, [r[1] for r in rows]))
                tx.run(
                    "INSERT INTO projects (name, images_root, label_names, version, created) "
                    "VALUES (?, ?, '[]', 0, ?) ON CONFLICT (name) DO NOTHING",
                    (name, root, tx.stamp),
                )
                row = tx.row("SELECT id, name, images_root FROM projects WHERE name = ?", (name,))
            elif root is not None and row[2] != root:  # folders move: keep the labels, record the new place
                tx.run(
                    "UPDATE projects SET images_root = ?, version = version + 1 WHERE id = ?", (root, row[0])
                )
            return row[0], row[1]

        self._project, self.project = self._transaction(work, write=True, project=False)

    def _choose_project(self, rows, requested, root: str | None) -> str:
        if requested is not None:
            if not isinstance(requested, str) or not requested.strip():
                raise ValueError(f"project={requested!r} is invalid: expected a name, e.g. project='digits'")
            return requested
        names = [r[1] for r in rows]
        if self.single_project_file and len(names) == 1:
            return names[0]
        if root is not None:
            return Path(root).name
        if len(names) == 1:
            return names[0]
        if not names:
            return self._default_project_name()
        raise ValueError(
            f"{self.location_text()} holds several projects ({', '.join(map(repr, names))}): "
            "pass project=NAME (--project NAME on the command line)"
        )

    def _default_project_name(self) -> str:
        raise ValueError(
            f"{self.location_text()} has no project yet: pass project=NAME (or images_root=..., and the "
            "project is named after the images folder)"
        )

    def _no_project_message(self, name: str, names: list[str]) -> str:
        known = ", ".join(map(repr, names)) if names else "none yet"
        return f"{self.location_text()} has no project {name!r} (projects: {known}): check --project"

    def location_text(self) -> str:
        return str(self.path)

    # --- settings -------------------------------------------------------------------------------
    @property
    def images_root(self) -> Path | None:
        """The images folder these labels belong to (the last one a store was opened with)."""
        rows = self._rows("SELECT images_root FROM projects WHERE id = ?")
        return Path(rows[0][0]) if rows and rows[0][0] is not None else None

    def label_names(self) -> list[str]:
        """The label names in key order ([] before ``set_label_names``)."""
        return json.loads(self._rows("SELECT label_names FROM projects WHERE id = ?")[0][0])

    def set_label_names(self, names) -> None:
        """Set the label names (order = keys 1..9). Refuses to drop a name some image is labelled with."""
        names = check_label_names(names)

        def work(tx: Tx):
            used = tx.all(
                "SELECT label, COUNT(*) FROM labels WHERE project_id = ? GROUP BY label ORDER BY label",
                (tx.project,),
            )
            for label, n in used:
                if label not in names:
                    raise ValueError(
                        f"labels: cannot drop {label!r}: {n} image(s) are labelled {label!r} in "
                        f"{self.location_text()}; keep {label!r} in labels, or relabel those images first"
                    )
            tx.run(
                "UPDATE projects SET label_names = ? WHERE id = ?",
                (json.dumps(names, ensure_ascii=False), tx.project),
            )

        self._write(work)

    # --- plain reads ----------------------------------------------------------------------------
    def get(self, path: str) -> str | None:
        """The standing label of ``path``, or None."""
        rows = self._rows("SELECT label FROM labels WHERE project_id = ? AND path = ?", (path,))
        return rows[0][0] if rows else None

    def labels(self) -> dict[str, str]:
        """Every standing label: path -> label name, sorted by path."""
        return dict(self._rows("SELECT path, label FROM labels WHERE project_id = ? ORDER BY path"))

    def count(self) -> int:
        """Number of labelled images (train and test)."""
        return self._rows("SELECT COUNT(*) FROM labels WHERE project_id = ?")[0][0]

    def data_version(self) -> int:
        """A number that changes when ANOTHER session (store object, process, machine) changes labels,
        label names or the test split; this object's own changes (and anyone's claims) leave it as is.

        O(1): a session compares it with the value it last saw to learn whether to re-read the labels.
        """
        with self._lock:
            version = self._rows("SELECT version FROM projects WHERE id = ?")[0][0]
            return version - self._own_bumps

    def counts(self) -> dict[str, int]:
        """Images per label name, every name included (zeros too), in label-name order."""
        with self._lock:
            names = self.label_names()
            used = dict(self._rows("SELECT label, COUNT(*) FROM labels WHERE project_id = ? GROUP BY label"))
        out = {name: used.pop(name, 0) for name in names}
        out.update(sorted(used.items()))  # only if the database was changed by hand: show, do not hide
        return out

    # --- test split -----------------------------------------------------------------------------
    def test_paths(self) -> set[str]:
        """The paths held out for testing (labelled or not)."""
        return {row[0] for row in self._rows("SELECT path FROM test_split WHERE project_id = ?")}

    def add_test_paths(self, paths: Iterable[str]) -> int:
        """Add paths to the test split (members stay: a restart keeps its split); returns how many are new."""
        paths = list(dict.fromkeys(check_path(p) for p in paths))

        def work(tx: Tx) -> int:
            sql = "SELECT path FROM test_split WHERE project_id = ? AND path IN ({params})"
            known = {r[0] for r in tx.where_in(sql, (tx.project,), paths)}
            new = [(tx.project, p, tx.stamp) for p in paths if p not in known]
            tx.many("INSERT INTO test_split (project_id, path, added) VALUES (?, ?, ?)", new)
            return len(new)

        return self._write(work)

    def join_test_split(self, paths: Iterable[str]) -> list[str]:
        """``paths`` join the test split in one transaction, except an image labelled meanwhile: a session
        deciding from labels it read before would otherwise turn a teammate's training label, which
        their model has learnt, into a test label. Returns those that joined (members count as joined)."""
        paths = list(dict.fromkeys(check_path(p) for p in paths))

        def work(tx: Tx) -> list[str]:
            sql = "SELECT path FROM {table} WHERE project_id = ? AND path IN ({{params}})"
            known, labelled = (
                {r[0] for r in tx.where_in(sql.format(table=t), (tx.project,), paths)}
                for t in ("test_split", "labels")
            )
            new = [p for p in paths if p not in known and p not in labelled]
            tx.many(
                "INSERT INTO test_split (project_id, path, added) VALUES (?, ?, ?)",
                [(tx.project, p, tx.stamp) for p in new],
            )
            return [p for p in paths if p in known or p in new]

        return self._write(work) if paths else []

    def remove_test_paths(self, paths: Iterable[str]) -> int:
        """Take paths out of the test split (e.g. a near-duplicate of a training image: it would grade
        the model on what it has learnt); returns how many were in it. Their labels stay: a labelled
        image that leaves the split becomes a training label. Other sessions see the change through
        ``data_version()``."""
        paths = list(dict.fromkeys(check_path(p) for p in paths))

        def work(tx: Tx) -> int:
            sql = "DELETE FROM test_split WHERE project_id = ? AND path IN ({params})"
            return tx.run_in(sql, (tx.project,), paths)

        return self._write(work) if paths else 0

    # --- lifetime -------------------------------------------------------------------------------
    def _close_connection(self) -> None:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Release this session's claims and close the connection (idempotent). Every label is committed."""
        with self._lock:
            if self.closed:
                return
            try:
                if self._lease_s is not None:
                    self.release()
            except Exception:  # noqa: BLE001 - the server may be gone: the leases then simply expire
                pass
            self._close_connection()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            state = "closed"
        else:
            try:
                state = f"{self.count()} labels"
            except Exception:  # noqa: BLE001 - a repr never raises (e.g. the server is down)
                state = "unavailable"
        return f"{type(self).__name__}({self.location_text()!r}, project={self.project!r}, {state})"
