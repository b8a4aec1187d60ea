"""The session's trainer, from its side: create it with every stored label, pause, resume, retry after an
error, stop (bounded), and the trainer's own methods (final fit, diagnosis) when it offers them.

Everything it sends is a message (``to_trainer.TrainerCommands``); what the trainer says back is kept by
``updates.TrainerState``. Imports no TensorFlow: the trainer's thread does, later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..messages import Pause, Resume, Retry, Update
from . import labels as label_names
from .to_trainer import TrainerCommands
from .updates import TrainerState


class TrainerControl:
    """Args: the ``TrainerCommands`` and ``TrainerState`` the session shares with its other parts, the
    session's lock, ``factory`` (None: ``training.trainer.Trainer``) and ``model_fn``."""

    def __init__(
        self,
        commands: TrainerCommands,
        state: TrainerState,
        lock: threading.RLock,
        factory: Callable | None,
        model_fn: Callable | None,
    ):
        self.commands, self.state, self._lock = commands, state, lock
        self.factory, self.model_fn = factory, model_fn
        self.paused = False

    @property
    def trainer(self):
        return self.commands.trainer

    def start(self, initial: list, **kwargs) -> None:
        """Create the trainer (``factory(**kwargs)``) and hand it ``initial`` commands (the stored labels)."""
        factory = self.factory
        if factory is None:
            from ..training.trainer import Trainer  # imports no TensorFlow: the thread does, later

            factory = Trainer
        if self.paused:
            initial = [*initial, Pause()]
        self.state.latest = Update(status="importing", message="starting the trainer")
        self.commands.start(factory, initial, model_fn=self.model_fn, **kwargs)

    def pause(self) -> None:
        with self._lock:
            self.paused = True
            self.commands.send(Pause(), flush=True)

    def resume(self) -> None:
        with self._lock:
            self.paused = False
            self.commands.send(Resume(), flush=True)

    def retry(self, model_fn: Callable | None = None) -> bool:
        """After an error: build again (with ``model_fn``, used from then on). False when there is none."""
        label_names.check_model_fn(model_fn)
        with self._lock:
            if self.state.latest.status != "error":
                return False
            if model_fn is not None:
                self.model_fn = model_fn
            self.commands.send(Retry(model_fn=model_fn), flush=True)
            return True

    def stop(self, timeout: float, reason: str | None) -> None:
        """Stop the trainer (bounded; it saves) and keep its final update. Outside the session's lock:
        applying the trainer's last updates takes it."""
        final = self.commands.stop(timeout, reason)
        with self._lock:
            self.state.stopped_with(final)

    def method(self, name: str, needs_labels: bool) -> Callable:
        """The trainer's method ``name``; ``RuntimeError`` saying why when there is none."""
        method = getattr(self.commands.trainer, name, None)
        if method is None:
            raise RuntimeError(
                f"{name} needs the trainer: give the labels first"
                if needs_labels
                else f"{name} is not available: the trainer has not started (or does not offer it)"
            )
        return method
