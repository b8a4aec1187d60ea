"""The labels the trainer has been sent: training and evaluation images, by class index.

Insertion order is labelling order. A path in the fixed test split is never a training label, whatever
a sender says. A training label not yet in any batch is *fresh*: it goes into the very next step, and
the time from its send to the end of that step is its label-to-model latency.
"""

from __future__ import annotations

import collections
import time

#: Latencies kept (the newest).
LATENCY_KEPT = 1000


class LabelSet:
    def __init__(self, label_names, test_paths):
        self.names = list(label_names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.test_paths = frozenset(test_paths)
        self.train: dict[str, int] = {}
        self.test: dict[str, int] = {}
        #: Monotonic counts of new training and test labels (a relabel is not new).
        self.added = 0
        self.added_test = 0
        #: Labels given that neither train nor grade (``Unlabelled.paid``): counted among those given.
        self.paid: set[str] = set()
        self._fresh: dict[str, float | None] = {}  # path -> send time, oldest first
        #: (path, seconds from send to the end of the first step that included it), newest last.
        self.latency: collections.deque = collections.deque(maxlen=LATENCY_KEPT)

    def problem(self, path: str, label: str, split: str) -> str | None:
        """Why a label cannot be taken (named for the error message), or None."""
        if label not in self.index:
            return f"label {label!r} for {path} is not one of {self.names}; the trainer ignored it"
        if split not in ("train", "test"):
            return f"split {split!r} for {path} is invalid: expected 'train' or 'test'"
        return None

    def add(self, path: str, label: str, split: str, sent_at: float | None = None) -> bool:
        """Take a label (check ``problem`` first); True when the training set changed (a new training
        label, or a training image whose class changed: a relabel must be learnt too)."""
        k = self.index[label]
        self.paid.discard(path)
        if split == "test" and path not in self.test_paths:  # joined the split as it was labelled
            self.test_paths = self.test_paths | {path}
        if split == "test" or path in self.test_paths:
            moved = self.train.pop(path, None) is not None
            self._fresh.pop(path, None)
            self.added_test += path not in self.test
            self.test[path] = k
            return moved
        self.test.pop(path, None)
        old = self.train.get(path)
        if old is None:
            self.added += 1
            self._fresh[path] = sent_at
        elif old != k:
            self._fresh[path] = sent_at  # into the very next step, like a new label
        self.train[path] = k
        return old != k

    def remove(self, path: str, paid: bool = False) -> bool:
        """Forget a label (undo; ``paid``: given, but neither to train nor to grade); True when the
        training set changed."""
        (self.paid.add if paid else self.paid.discard)(path)
        self.test.pop(path, None)
        self._fresh.pop(path, None)
        return self.train.pop(path, None) is not None

    def split_by_index(self, labels: dict[str, str] | None = None) -> tuple[dict[str, int], dict[str, int]]:
        """(train, test) as path -> class index: of ``labels`` (path -> name, e.g. the store's; names
        not among the classes are left out) split by the test split, or a copy of the labels held."""
        if labels is None:
            return dict(self.train), dict(self.test)
        index = {p: self.index[lab] for p, lab in labels.items() if lab in self.index}
        train = {p: k for p, k in index.items() if p not in self.test_paths}
        return train, {p: k for p, k in index.items() if p in self.test_paths}

    def extend_reserve(self, paths) -> None:
        """Images that joined the test split (unlabelled near-duplicates of a reserve image)."""
        self.test_paths = self.test_paths | {p for p in paths if p not in self.train}

    def drop_unreadable(self, paths) -> None:
        for path in paths:
            self.train.pop(path, None)
            self._fresh.pop(path, None)

    def fresh(self, limit: int) -> list[str]:
        """Training labels not in any batch yet, oldest first."""
        out: list[str] = []
        for path in self._fresh:
            if len(out) >= limit:
                break
            out.append(path)
        return out

    @property
    def has_fresh(self) -> bool:
        return bool(self._fresh)

    def trained(self, paths) -> None:
        """These were in a batch: a fresh label's first step ends now."""
        now = time.monotonic()
        for path in paths:
            if path in self._fresh:
                sent = self._fresh.pop(path)
                if sent is not None:
                    self.latency.append((path, now - sent))
