"""Commands to the trainer: start it, hand it commands (labels in groups of ``buffer_size``), take back
held commands it must never hear, stop it.

Everything that crosses to the trainer is a message (``messages.py``); nothing here sets the trainer's
attributes.
"""

from __future__ import annotations

from ..messages import Labelled, Stop, Unlabelled


class TrainerCommands:
    def __init__(self, buffer_size: int):
        self.buffer_size = buffer_size
        self.trainer = None
        self._pending: list = []  # commands held back until buffer_size labels are collected
        self._labels = 0

    def start(self, factory, initial=(), **kwargs):
        """Create the trainer with ``factory(**kwargs)``, send it ``initial`` commands and start it."""
        trainer = factory(**kwargs)
        self._pending, self._labels = [], 0  # held before the start: ``initial`` has them all
        for command in initial:
            trainer.send(command)
        self.trainer = trainer
        trainer.start()
        return trainer

    def send(self, command, *, flush: bool = False) -> None:
        """Queue a command; labels go out in groups of ``buffer_size`` (anything else with ``flush``)."""
        self._pending.append(command)
        if isinstance(command, Labelled):
            self._labels += 1
        if flush or self._labels >= self.buffer_size:
            self.flush()

    def flush(self) -> None:
        pending, self._pending, self._labels = self._pending, [], 0
        if self.trainer is None:
            return  # the store holds every label: start() hands them all over
        for command in pending:
            self.trainer.send(command)

    def forget(self, path: str) -> None:
        """Drop every held-back label command of ``path`` (its label changed again before it went out)."""
        kept = [c for c in self._pending if not (isinstance(c, (Labelled, Unlabelled)) and c.path == path)]
        self._labels -= sum(isinstance(c, Labelled) for c in self._pending) - sum(
            isinstance(c, Labelled) for c in kept
        )
        self._pending = kept

    def stop(self, timeout: float, reason: str | None = None):
        """Stop the trainer (bounded); its final Update, or None when it never started."""
        self.flush()
        if self.trainer is None:
            return None
        if reason:
            self.trainer.send(Stop(reason))  # the first Stop's reason is the one kept
        return self.trainer.stop(timeout)
