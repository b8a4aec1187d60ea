"""Claims: an image handed to one session is reserved for it until labelled, released or expired.

A claim is a lease (``expires``): a killed kernel's images come back once it runs out. Claims are
taken under the project's lock (like every write), so two sessions claiming at once never both get
an image. They do not change ``data_version()`` (nobody needs to re-read labels for them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import timedelta

from .base import StoreCore, Tx
from .checks import check_lease, check_path, iso


class Claims(StoreCore):
    def claim(self, paths: Iterable[str], *, lease_s: float, limit: int | None = None) -> list[str]:
        """Reserve for this session, in the given order, the paths that are neither labelled nor under
        another session's live lease (this session's own leases are renewed); at most ``limit``.

        Returns the paths claimed. A label (or ``release``) ends a claim; so does ``close()``.
        """
        paths = list(dict.fromkeys(check_path(p) for p in paths))
        lease_s = check_lease(lease_s)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit={limit!r} is invalid: expected None or a number of images >= 0")

        def work(tx: Tx) -> list[str]:
            now = tx.stamp
            tx.run("DELETE FROM claims WHERE project_id = ? AND expires <= ?", (tx.project, now))
            labelled = {r[0] for r in tx.where_in(
                "SELECT path FROM labels WHERE project_id = ? AND path IN ({params})", (tx.project,), paths
            )}  # fmt: skip
            held = dict(
                tx.where_in(
                    "SELECT path, session FROM claims WHERE project_id = ? AND path IN ({params})",
                    (tx.project,),
                    paths,
                )
            )
            got: list[str] = []
            for path in paths:
                if limit is not None and len(got) >= limit:
                    break
                if path in labelled or held.get(path, self.session_id) != self.session_id:
                    continue
                got.append(path)
            self._lease(tx, got, lease_s)
            return got

        got = self._write(work, bump=False)
        self._lease_s = lease_s
        return got

    def adopt(self, *, lease_s: float) -> list[str]:
        """Take over the live claims of DEAD sessions of the same annotator on this host: a restarted
        kernel gets back at once the images its killed predecessor reserved (the image on screen among
        them), instead of waiting for their lease. A live session (another notebook) keeps its own;
        sessions on other hosts are left to their lease. Returns the paths."""
        lease_s = check_lease(lease_s)

        def work(tx: Tx) -> list[str]:
            rows = tx.all(
                "SELECT path, session FROM claims "
                "WHERE project_id = ? AND annotator = ? AND session <> ? AND expires > ?",
                (tx.project, self.annotator, self.session_id, tx.stamp),
            )
            paths = [path for path, session in rows if _dead_here(session)]
            self._lease(tx, paths, lease_s)
            return paths

        got = self._write(work, bump=False)
        self._lease_s = lease_s
        return got

    def _lease(self, tx: Tx, paths: list[str], lease_s: float) -> None:
        expires = iso(tx.now + timedelta(seconds=lease_s))
        tx.many(
            "INSERT INTO claims (project_id, path, session, annotator, expires) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (project_id, path) DO UPDATE SET session = excluded.session, "
            "annotator = excluded.annotator, expires = excluded.expires",
            [(tx.project, p, self.session_id, self.annotator, expires) for p in paths],
        )

    def _reclaim(self, tx: Tx, paths: list[str]) -> None:
        """After an undo: the images shown again are this session's, unless someone else holds them."""
        if not paths:
            return
        held = dict(
            tx.where_in(
                "SELECT path, session FROM claims "
                "WHERE project_id = ? AND expires > ? AND path IN ({params})",
                (tx.project, tx.stamp),
                paths,
            )
        )
        lease_s = self._lease_s if self._lease_s is not None else 0.0  # only called once this session claimed
        self._lease(tx, [p for p in paths if held.get(p, self.session_id) == self.session_id], lease_s)

    def release(self, paths: Iterable[str] | None = None) -> int:
        """End this session's claims on ``paths`` (all of them when None), e.g. on skip; returns how many."""
        if paths is None:
            return self._write(
                lambda tx: tx.run(
                    "DELETE FROM claims WHERE project_id = ? AND session = ?", (tx.project, self.session_id)
                ),
                bump=False,
            )
        paths = list(dict.fromkeys(check_path(p) for p in paths))
        return self._write(
            lambda tx: tx.run_in(
                "DELETE FROM claims WHERE project_id = ? AND session = ? AND path IN ({params})",
                (tx.project, self.session_id),
                paths,
            ),
            bump=False,
        )

    def claimed_by_others(self) -> set[str]:
        """The paths other sessions hold under a live lease (show them to nobody else)."""

        def work(tx: Tx) -> set[str]:
            rows = tx.all(
                "SELECT path FROM claims WHERE project_id = ? AND session <> ? AND expires > ?",
                (tx.project, self.session_id, tx.stamp),
            )
            return {r[0] for r in rows}

        return self._read(work)

    def claimed(self) -> set[str]:
        """The paths this session holds under a live lease."""

        def work(tx: Tx) -> set[str]:
            rows = tx.all(
                "SELECT path FROM claims WHERE project_id = ? AND session = ? AND expires > ?",
                (tx.project, self.session_id, tx.stamp),
            )
            return {r[0] for r in rows}

        return self._read(work)


def _dead_here(session: str) -> bool:
    """Whether a session id (``<random>@<host>:<pid>``) names a process of this host that is gone."""
    _, _, where = session.rpartition("@")
    host, _, pid = where.rpartition(":")
    if host != os.uname().nodename or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False
