"""The session's mirror of the store's labels: path -> label, with counts per class and per split.

Kept in memory so every question the panel asks per key (is it labelled? how many test labels?) is
O(1); the store stays the source of truth and the mirror only changes after a commit (or a refresh).
"""

from __future__ import annotations

import collections


class LabelBook:
    def __init__(self, labels: dict[str, str], pool_paths, test_paths):
        self.labels: dict[str, str] = dict(labels)
        self.pool = frozenset(pool_paths)
        self.test = frozenset(test_paths)
        self.test_total = sum(1 for p in self.test if p in self.pool)
        self.counts: collections.Counter = collections.Counter()
        self.n_labelled = self.n_test_labelled = 0
        for path, label in self.labels.items():
            self._count(path, label, +1)

    def __contains__(self, path) -> bool:
        return path in self.labels

    def get(self, path) -> str | None:
        return self.labels.get(path)

    def split(self, path: str) -> str:
        return "test" if path in self.test else "train"

    @property
    def n_train_labelled(self) -> int:
        return self.n_labelled - self.n_test_labelled

    def set(self, path: str, label: str | None) -> None:
        """``path`` has ``label`` now (None: no label)."""
        old = self.labels.get(path)
        if old == label:
            return
        if old is not None:
            self._count(path, old, -1)
        if label is None:
            del self.labels[path]
        else:
            self.labels[path] = label
            self._count(path, label, +1)

    def _count(self, path: str, label: str, delta: int) -> None:
        self.counts[label] += delta
        if path in self.pool:
            self.n_labelled += delta
            if path in self.test:
                self.n_test_labelled += delta

    def per_label(self, names) -> dict[str, int]:
        """Images per label, in ``names`` order (a label not in ``names`` last, if any image has it)."""
        out = {name: self.counts.get(name, 0) for name in names}
        out.update({k: v for k, v in self.counts.items() if k not in out and v})
        return out
