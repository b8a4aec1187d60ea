"""The store's own exceptions: one type per thing a caller can act on."""

from __future__ import annotations


class StoreError(Exception):
    """A label store could not do what was asked; the message names the store and what to do."""


class StoreUnavailable(StoreError, ConnectionError):
    """The database cannot be reached (server down, network, busy, wrong password).

    Nothing that raised this was acknowledged: the caller keeps the image on screen and may try
    again; a PostgreSQL store reconnects by itself on a later call. The message never holds a password.
    """


class UndoConflict(ValueError):
    """``undo()`` found that another session changed an image of this session's last step.

    That image keeps what the other session gave it; the step is marked undone (the next undo goes
    one step further back). ``result`` is the ``UndoResult``: ``paths`` restored, ``conflicts`` left.
    """

    def __init__(self, result):
        self.result = result
        self.conflicts: list[str] = list(result.conflicts)
        self.restored: list[str] = list(result.paths)
        lines = [result.details[p] for p in self.conflicts]
        super().__init__(
            "; ".join(lines) + ": its label was left as the other session left it (nothing overwritten); "
            "this session's step is marked undone, so the next undo goes one step further back"
        )
