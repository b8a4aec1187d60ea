"""When to evaluate and when to query: once enough NEW labels have been trained on.

One rule for the trainer's thread and for ``simulate``: a round that completed counts the labels that
had arrived when it STARTED (a label arriving mid-round is not trained on yet). An evaluation is due
when ``eval_every`` labels of either kind (training or test: a test label sharpens the estimate) are
new since the last one; a query when ``query_every`` training labels are.
"""

from __future__ import annotations


class Cadence:
    def __init__(self, eval_every: int, query_every: int):
        self.eval_every = eval_every
        self.query_every = query_every
        self._train = self._test = 0  # new labels covered by the last complete round
        self._at_eval = 0
        self._at_query = 0

    def round_done(self, train_added: int, test_added: int = 0) -> None:
        self._train, self._test = train_added, test_added

    @property
    def eval_due(self) -> bool:
        return self._train + self._test - self._at_eval >= self.eval_every

    @property
    def query_due(self) -> bool:
        return self._train - self._at_query >= self.query_every

    def evaluated(self) -> None:
        self._at_eval = self._train + self._test

    def queried(self) -> None:
        self._at_query = self._train
