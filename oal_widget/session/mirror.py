"""The session's mirror of the store: what stands for each image, and the one way a change of it travels.

Every write the session makes returns what the store decided stands (``data.store.Standing``: not
always the label given: another annotator's first label, a settlement); every refresh reads what other
sessions wrote. Both go through ``Mirror.take``, which sets the label, keeps second opinions blind, tells
the trainer and gives an image that is to be labelled again back to the order. Nothing else changes the
mirror, so after any sequence of actions the session, its trainer and the store agree.

Kept in memory so every question the panel asks per key (is it labelled? how many test labels?) is O(1).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Mapping

from ..data.store import Standing
from ..data.store.agreement import share_point
from ..messages import Labelled, Reserve, Unlabelled
from .to_trainer import TrainerCommands


class LabelCounts:
    """path -> standing label, with counts per class and per split."""

    def __init__(self, labels: Mapping[str, str], pool_paths: Iterable[str], test_paths: Iterable[str]):
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

    def join_test(self, paths: Iterable[str]) -> list[str]:
        """Pool images join the test split; returns those that did (a labelled one is a test label now)."""
        joined = [p for p in paths if p in self.pool and p not in self.test]
        self.test = self.test | set(joined)
        self.test_total += len(joined)
        self.n_test_labelled += sum(1 for p in joined if p in self.labels)
        return joined

    def per_label(self, names) -> dict[str, int]:
        """Images per label, in ``names`` order (a label not in ``names`` last, if any image has it)."""
        out = {name: self.counts.get(name, 0) for name in names}
        out.update({k: v for k, v in self.counts.items() if k not in out and v})
        return out


class Mirror:
    """Args: the store's labels when the session began, the pool's and the test split's paths, the
    images this annotator is to label blind (``second``), the ``double_label`` share, the
    ``TrainerCommands``, ``names()`` (the label names now) and ``reinstate(path)`` (the order takes an
    image back)."""

    def __init__(
        self,
        labels: Mapping[str, str],
        pool_paths: Iterable[str],
        test_paths: Iterable[str],
        *,
        second: Iterable[str],
        share: float,
        commands: TrainerCommands,
        names: Callable[[], list[str]],
        reinstate: Callable[[str], None],
    ):
        self.book = LabelCounts(labels, pool_paths, test_paths)
        #: Images another annotator labelled that this one labels too, blind (``double_label``).
        self.second: set[str] = {p for p in second if p in self.book.pool}
        self.share = share
        self.commands = commands
        self._names, self._reinstate = names, reinstate
        #: Near-duplicates (``data.duplicates``), once found: path -> the images verified as near-duplicates
        #: of it (pairs, not whole groups: a chain of look-alikes is no duplicate of its far end).
        self._near: dict[str, tuple[str, ...]] = {}

    # --- the one way in --------------------------------------------------------------------------------
    def take(self, path: str, standing: Standing, sent_at: float | None = None) -> bool:
        """``standing`` is what the store says stands for ``path`` now: mirror it, tell the trainer when
        it changed, and queue the image again when it is to be labelled (unlabelled, or blind). True when
        the standing label changed."""
        book = self.book
        old = book.get(path)
        blind = (
            standing.label is not None
            and not standing.mine
            and path in book.pool
            and share_point(path) < self.share
        )
        newly_blind = blind and path not in self.second
        book.set(path, standing.label)
        (self.second.add if blind else self.second.discard)(path)
        changed = old != standing.label
        if changed and path in book.pool:  # the trainer learns the pool only (``pool=`` may leave some out)
            self._tell(path, sent_at, standing.source)
            if path not in book.test:  # a training label may shadow a near-duplicate's test label
                for other in self._near.get(path, ()):
                    if other in book.test:
                        if other in book:
                            self._tell(other, None, None)
                        elif self.wanted(other):  # no longer shadowed (an undo): to label again
                            self._reinstate(other)
        if path in book.pool and (standing.label is None or newly_blind):
            self._reinstate(path)
        return changed

    def _tell(self, path: str, sent_at: float | None, source: str | None) -> None:
        """What the trainer hears of ``path``'s standing label: it, or Unlabelled when it must not learn or
        be graded by it (no label, a class this session does not know, a shadowed test label)."""
        book = self.book
        label = book.get(path)
        self.commands.forget(path)  # an older label of it still held back must never go out
        if label in self._names() and not self.shadowed(path):
            split = book.split(path)
            self.commands.send(Labelled(path, label, split, sent_at, source=source or "person"))
        else:
            self.commands.send(Unlabelled(path, paid=label is not None), flush=True)

    # --- near-duplicates ---------------------------------------------------------------------------------
    def shadowed(self, path: str) -> bool:
        """A test image with a near-duplicate among the training labels: its label would grade the model
        on an image it has (almost) seen, so it grades nothing."""
        book = self.book
        return path in book.test and any(o in book and o not in book.test for o in self._near.get(path, ()))

    def near(self, path: str | None) -> tuple[str, ...]:
        """``path``'s near-duplicates, () when it has none (or none were found yet)."""
        return self._near.get(path, ()) if path is not None else ()

    def to_join(self, near: Mapping[str, tuple[str, ...]]) -> list[str]:
        """The images still unlabelled that join the test split when ``near`` is taken: near-duplicates of
        a test image (trained on, they would flatter its grade)."""
        book = self.book
        return [
            p for p, others in near.items()
            if p in book.pool and p not in book.test and p not in book and any(o in book.test for o in others)
        ]  # fmt: skip

    def join_test(self, paths: Iterable[str]) -> list[str]:
        """The store's test split took ``paths``: here too. The trainer never trains on those unlabelled
        (``Reserve``); one labelled here (a label given in the moment between another session's join
        and this session's next read) is a test label for the trainer too, as the store says. Returns
        those that joined."""
        joined = self.book.join_test(paths)
        fresh = tuple(p for p in joined if p not in self.book)
        if fresh:
            self.commands.send(Reserve(fresh), flush=True)
        for path in joined:
            if path in self.book:
                self._tell(path, None, None)
        return joined

    def take_near(self, near: Mapping[str, tuple[str, ...]]) -> None:
        """Near-duplicates were found (path -> its near-duplicates): a test label with a near-duplicate
        among the training labels grades nothing from now on (``shadowed``)."""
        book = self.book
        self._near = {
            p: tuple(o for o in others if o in book.pool) for p, others in near.items() if p in book.pool
        }
        for path in self._near:
            if path in book.test and path in book and self.shadowed(path):
                self._tell(path, None, None)

    def take_all(self, after: Mapping[str, Standing], *, now: bool = True) -> None:
        """``take`` for every image of one write (``Written.after``, ``UndoResult.after``)."""
        sent_at = time.monotonic() if now else None
        for path, standing in after.items():
            self.take(path, standing, sent_at)

    def flush(self) -> None:
        """Send every command held back (a page, an undo, a refresh: none of it waits for more labels)."""
        self.commands.flush()

    # --- what the session asks ---------------------------------------------------------------------------
    def in_pool(self, path: str) -> bool:
        return path in self.book.pool

    def split(self, path: str) -> str:
        return self.book.split(path)

    def wanted(self, path: str) -> bool:
        """Still to be labelled by this annotator: unlabelled, or a blind second opinion; never a test
        image whose label would grade nothing (``shadowed``)."""
        return (path not in self.book or path in self.second) and not (self._near and self.shadowed(path))

    def blind(self, path: str | None) -> bool:
        return path in self.second

    def get(self, path: str | None) -> str | None:
        return self.book.get(path)

    def labels(self) -> dict[str, str]:
        """A copy: path -> the standing label, as the store said at the last write or refresh."""
        return dict(self.book.labels)
