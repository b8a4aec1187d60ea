"""When to evaluate and when to query: once enough NEW training labels have been trained on.

One rule for the trainer's thread and for ``simulate``: a round that completed counts the training
labels that had arrived when it STARTED (a label arriving mid-round is not trained on yet), and an
evaluation (a query) is due when ``eval_every`` (``query_every``) of them are new since the last one.
"""

from __future__ import annotations


class Cadence:
    def __init__(self, eval_every: int, query_every: int):
        self.eval_every = eval_every
        self.query_every = query_every
        self.trained = 0  # new-label count covered by the last complete round
        self._at_eval = 0
        self._at_query = 0

    def round_done(self, added_at_start: int) -> None:
        self.trained = added_at_start

    @property
    def eval_due(self) -> bool:
        return self.trained - self._at_eval >= self.eval_every

    @property
    def query_due(self) -> bool:
        return self.trained - self._at_query >= self.query_every

    def evaluated(self) -> None:
        self._at_eval = self.trained

    def queried(self) -> None:
        self._at_query = self.trained
