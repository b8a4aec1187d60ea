"""Undo: this session's last step (one label or a whole page), never over another session's newer change."""

from __future__ import annotations

import json

from .base import Tx
from .claims import Claims
from .errors import UndoConflict
from .marks import Marks
from .records import UndoResult


class Undo(Claims):
    def undo_step(self, step: int | None = None) -> UndoResult:
        """Undo this session's latest step (a label, a page, an unlabel or a settle), or the step
        ``step`` (a ``Written.step``: e.g. one fix in the review queue, whatever came after it).

        Each image gets back what it had before, except those another session (or a later step of this
        one) changed since: they keep that change (``conflicts``). The step is marked undone either way.
        An image that becomes unlabelled is claimed again for this session when it has claimed before (it
        is shown again). Returns an ``UndoResult`` (False when there was nothing to undo).
        """

        def work(tx: Tx) -> UndoResult:
            if step is None:
                row = tx.one(
                    "SELECT MAX(step) FROM history WHERE project_id = ? AND session = ? AND undone = 0",
                    (tx.project, self.session_id),
                )
            else:
                row = tx.one(
                    "SELECT MAX(step) FROM history WHERE project_id = ? AND session = ? AND undone = 0 "
                    "AND step = ?",
                    (tx.project, self.session_id, step),
                )
            if row is None or row[0] is None:
                return UndoResult()
            undone = row[0]
            rows = tx.all(
                "SELECT path, marks FROM history WHERE project_id = ? AND session = ? AND step = ? "
                "AND undone = 0 ORDER BY id",
                (tx.project, self.session_id, undone),
            )
            state = Marks(tx, [path for path, _ in rows])
            result = UndoResult(step=undone)
            for path, entries in rows:
                if entries is None:  # written before schema 2: nothing to compare with
                    result.conflicts.append(path)
                    result.details[path] = f"{path!r}: its change predates undo records"
                    continue
                who = state.restore(path, json.loads(entries), tx.names, self.annotator)
                if who is None:
                    result.paths.append(path)
                else:
                    result.conflicts.append(path)
                    result.details[path] = who
            state.flush()
            result.after = state.after(self.annotator)
            tx.run(
                "UPDATE history SET undone = 1 WHERE project_id = ? AND session = ? AND step = ?",
                (tx.project, self.session_id, undone),
            )
            if self._lease_s is not None:
                self._reclaim(tx, [p for p in result.paths if state.standing(p) is None])
            return result

        return self._write(work)

    def undo(self) -> str | None:
        """Undo this session's latest step; returns its (first) path, or None if nothing is left.

        The image gets back the label it had before (or none); a label name dropped since is not
        restored (the image becomes unlabelled). When another session changed the image after this
        session's step, nothing is overwritten: the step is marked undone and ``UndoConflict`` (a
        ``ValueError``) says which image and who changed it.
        """
        result = self.undo_step()
        if result.conflicts:
            raise UndoConflict(result)
        return result.paths[0] if result.paths else None
