"""A stand-in for ``trainer.Trainer`` with the same public surface, for tests of the session and panel.

It records every command, never imports TensorFlow, and lets a test publish ``Update``s through
the session's callback, from any thread, as the real trainer does from its own.
"""

from __future__ import annotations

from pathlib import Path

from oal_widget.messages import Labelled, Unlabelled, Update


class FakeTrainer:
    def __init__(
        self,
        pool,
        label_names,
        config,
        *,
        test_paths,
        workdir,
        model_fn=None,
        on_update=None,
        resume_model=None,
        on_send=None,
    ):
        self.pool = pool
        self.label_names = list(label_names)
        self.config = config
        self.test_paths = frozenset(test_paths)
        self.workdir = Path(workdir)
        self.model_fn = model_fn
        self.on_update = on_update
        self.resume_model = resume_model
        self.on_send = on_send
        self.commands: list = []
        self.latest = Update(status="waiting", message="fake trainer not started")
        self.model = None
        self.started = False
        self.stopped = False

    def send(self, command) -> None:
        if self.on_send is not None:
            self.on_send(command)
        self.commands.append(command)

    def start(self) -> None:
        self.started = True

    def is_alive(self) -> bool:
        return self.started and not self.stopped

    def publish(self, update: Update) -> None:
        """What the real trainer does after each step: keep it as latest and call back."""
        self.latest = update
        if self.on_update is not None:
            self.on_update(update)

    def stop(self, timeout: float = 10.0) -> Update:
        if not self.stopped:
            self.stopped = True
            model = self.workdir / "model.keras"
            metrics = self.workdir / "metrics.csv"
            model.write_bytes(b"fake model")
            metrics.write_text("n_labels,accuracy,loss,n_test,seconds\n")
            self.publish(
                Update(
                    status="stopped",
                    n_labels=len(self.labels()),
                    metrics=self.latest.metrics,
                    message="stopped by the user",
                    saved={"model": str(model), "metrics": str(metrics)},
                )
            )
        return self.latest

    def labels(self) -> dict[str, str]:
        """path -> label as the trainer understands it after every command so far."""
        out: dict[str, str] = {}
        for command in self.commands:
            if isinstance(command, Labelled):
                out[command.path] = command.label
            elif isinstance(command, Unlabelled):
                out.pop(command.path, None)
        return out


class Factory:
    """A ``trainer_factory`` that remembers the trainers it built."""

    def __init__(self, on_send=None):
        self.trainers: list[FakeTrainer] = []
        self.on_send = on_send

    def __call__(self, **kwargs) -> FakeTrainer:
        trainer = FakeTrainer(on_send=self.on_send, **kwargs)
        self.trainers.append(trainer)
        return trainer

    @property
    def last(self) -> FakeTrainer:
        return self.trainers[-1]
