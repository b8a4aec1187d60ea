"""The order of the images still to label: what is shown now, what comes next, and what came before.

Two lanes: training candidates (re-ranked by each query) and test images (a seeded random order, never
ranked: an evaluation needs a uniform sample). Which lane the next image comes from is a rule of the
counts of labels given so far (``pick``), so a restart keeps the share of test labels. Each lane is a
deque with lazy deletion: a queued path carries a generation number, and an entry whose number is no
longer the path's current one (or whose image got labelled meanwhile) is dropped when it reaches the
front. That keeps labelling O(1) while a re-ranking is O(n).

Invariant (property-tested): ``paths()`` is always a permutation of the images still wanted (unlabelled
and readable), current first. Knows nothing of the store, the trainer or widgets.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable

#: How many images ``back`` can walk back through.
BACK_LIMIT = 1000
#: The next images of a lane offered to ``claim`` with the one about to be shown.
CLAIM_LOOKAHEAD = 8


class Lane:
    """One queue of paths with lazy deletion."""

    def __init__(self, paths: Iterable[str] = ()):
        self._counter = itertools.count()
        self._queue: collections.deque[tuple[str, int]] = collections.deque()
        self._gen: dict[str, int] = {}
        self.rebuild(list(paths))

    def __contains__(self, path) -> bool:
        return path in self._gen

    def push(self, path: str, *, front: bool = False) -> None:
        gen = next(self._counter)
        self._gen[path] = gen  # any older entry of this path is now stale
        (self._queue.appendleft if front else self._queue.append)((path, gen))
        if len(self._queue) > 2 * len(self._gen) + 64:
            self.compact()

    def discard(self, path: str) -> None:
        self._gen.pop(path, None)

    def peek(self, wanted: Callable[[str], bool]) -> str | None:
        """The first wanted path, left in the lane (entries no longer wanted are dropped)."""
        while self._queue:
            path, gen = self._queue[0]
            if self._gen.get(path) == gen and wanted(path):
                return path
            self._queue.popleft()
            if self._gen.get(path) == gen:
                del self._gen[path]
        return None

    def live(self, wanted: Callable[[str], bool]) -> list[str]:
        gen = self._gen.get  # hot loop: local names
        return [p for p, g in self._queue if gen(p) == g and wanted(p)]

    def head(self, wanted: Callable[[str], bool], n: int) -> list[str]:
        """The first ``n`` wanted paths (cheap: looks at the front only)."""
        while self._queue and self._gen.get(self._queue[0][0]) != self._queue[0][1]:
            self._queue.popleft()  # clean stale entries at the front while we are here
        out: list[str] = []
        for path, gen in itertools.islice(self._queue, 4 * n + 64):
            if len(out) >= n:
                break
            if self._gen.get(path) == gen and wanted(path):
                out.append(path)
        return out

    def rebuild(self, paths: list[str]) -> None:
        """The lane becomes exactly ``paths`` (first occurrences)."""
        paths = list(dict.fromkeys(paths))
        start = next(self._counter)
        self._counter = itertools.count(start + len(paths))
        gens = range(start, start + len(paths))
        self._gen = dict(zip(paths, gens, strict=True))
        self._queue = collections.deque(zip(paths, gens, strict=True))

    def compact(self) -> None:
        """Drop stale entries; amortised O(1) per operation since it runs when half are stale."""
        self._queue = collections.deque((p, g) for p, g in self._queue if self._gen.get(p) == g)


class Order:
    """What to show now and next.

    Args:
        train, test: the two lanes' initial orders.
        wanted: ``path -> bool``: still to label (unlabelled and readable) and not held by another session.
        is_open: ``path -> bool``: still to label, whoever holds it (default: ``wanted``).
        readable: ``path -> bool``: can be shown (an image stepped back to may be labelled).
        counts: ``() -> (training labels, test labels)`` given so far.
        pick: ``(n_train, n_test) -> "train" | "test"``: the lane the next image comes from (when
            both have images).
        claim: ``(path, the next paths of its lane) -> bool``: reserve ``path`` before it is shown;
            False passes it over (another session holds it). None: no claims.
        test_split: every image of the test split, labelled ones too (an undo brings one back to the
            test lane); default: the test lane's.
    """

    def __init__(
        self, train, test, *, wanted, readable, counts, pick, claim=None, is_open=None, test_split=None
    ):
        self.lanes = {"train": Lane(train), "test": Lane(test)}
        self._test_paths = set(test if test_split is None else test_split) | set(test)
        self._wanted, self._readable, self._counts, self._pick = wanted, readable, counts, pick
        self._claim = claim
        self._open = is_open or wanted
        self._skipped: dict[str, None] = {}  # skipped by the person, in skip order: kept at the end
        self._back: collections.deque[str] = collections.deque(maxlen=BACK_LIMIT)
        self._forward: list[str] = []  # labelled images stepped back over, to step forward again
        self.current: str | None = None
        self.advance()

    def _lane_of(self, path: str) -> Lane:
        return self.lanes["test" if path in self._test_paths else "train"]

    # --- moving --------------------------------------------------------------------------------------
    def advance(self) -> str | None:
        """The next image becomes current (the one before must have been released)."""
        while self._forward:  # after stepping back: step forward through what was already seen
            path = self._forward.pop()
            if path != self.current and self._readable(path) and self._ours(path):
                return self._show(path)
        n_train, n_test = self._counts()
        first = self._pick(n_train, n_test)
        for name in (first, "test" if first == "train" else "train"):
            lane = self.lanes[name]
            while (path := lane.peek(self._wanted)) is not None:
                # Claimed BEFORE it leaves the lane: a claim that raises leaves the order as it was.
                ahead = lane.head(self._wanted, CLAIM_LOOKAHEAD + 1)[1:]
                ours = self._claim is None or self._claim(path, ahead)
                lane.discard(path)
                if ours:
                    self.current = path
                    return path
                # Another session holds it: passed over; ``reinstate`` brings it back if it returns.
        self.current = None
        return None

    def done_with_current(self) -> str | None:
        """The current image was labelled (or set aside): remember it for ``back`` and move on."""
        path, self.current = self.current, None
        if path is not None:
            self._back.append(path)
            self._skipped.pop(path, None)
        self.advance()
        return path

    def drop_current(self) -> str | None:
        """The current image cannot be shown: move on without it (not kept for ``back``)."""
        path, self.current = self.current, None
        self.advance()
        return path

    def skip(self) -> str | None:
        """The current image goes to the end of its lane, behind the others across re-rankings."""
        path, self.current = self.current, None
        if path is None:
            return None
        self._back.append(path)
        if self._wanted(path):
            self._skipped.pop(path, None)
            self._skipped[path] = None
            self._lane_of(path).push(path)
        self.advance()
        return path

    def back(self) -> str | None:
        """Show the previous image again (to relabel it). None when there is no previous image. One still
        unlabelled (skipped) is claimed again first; one another session took meanwhile is passed over."""
        while self._back:
            path = self._back.pop()
            if path != self.current and self._readable(path) and self._ours(path):
                self._release_current()
                return self._show(path)
        return None

    def show(self, path: str) -> None:
        """Make ``path`` current now (e.g. after undo), the current one going back where it came from. It
        is claimed when it is to be labelled (an undo's image is normally this session's already)."""
        if path in self._forward:
            self._forward.remove(path)  # small: bounded by the steps taken back
        if self.current != path:
            self._release_current()
            self._show(path)
        self._ours(path)

    def recheck(self) -> str | None:
        """The current image came to be labelled again while on screen (someone undid its label, or it is
        no longer blind) or its lease was lost: claim it, or move on when another session holds it."""
        while self.current is not None and not self._ours(self.current):
            self.drop_current()
        return self.current

    def _ours(self, path: str) -> bool:
        """Whether ``path`` may be shown: not to be labelled (a labelled image stepped back to), or claimed
        for this session now."""
        return not self._open(path) or self._claim is None or self._claim(path, [])

    def _show(self, path: str) -> str:
        self._lane_of(path).discard(path)  # its queue entry (if any) becomes stale
        self.current = path
        return path

    def _release_current(self) -> None:
        """The current image leaves the screen: back to its lane's front, or onto the forward stack."""
        old, self.current = self.current, None
        if old is None or not self._readable(old):
            return
        if self._wanted(old):
            self._lane_of(old).push(old, front=True)
        else:
            self._forward.append(old)

    # --- what others change ----------------------------------------------------------------------------
    def reinstate(self, path: str) -> None:
        """``path`` is wanted again (its label was removed elsewhere): queue it unless it is already
        current, queued or waiting on the forward stack (never twice)."""
        if path == self.current or path in self._forward or path in self._lane_of(path):
            return
        self._lane_of(path).push(path)

    def join_test(self, paths: Iterable[str]) -> None:
        """These images joined the test reserve: they move to the test lane (its end)."""
        for path in paths:
            if path in self._test_paths:
                continue
            self._test_paths.add(path)
            queued = path in self.lanes["train"]
            self.lanes["train"].discard(path)
            if queued:
                self.lanes["test"].push(path)

    def rank(self, ranked: Iterable[str]) -> None:
        """The training lane follows ``ranked`` (images no longer wanted, test images and duplicates
        dropped), then every other queued training image in its previous order, then the skipped ones."""
        lane = self.lanes["train"]
        live = lane.live(self._wanted)
        live_set = set(live)
        skipped = [p for p in self._skipped if p in live_set or p in self.lanes["test"]]
        self._skipped = dict.fromkeys(skipped)
        tail = set(skipped)
        front = [p for p in dict.fromkeys(ranked) if p in live_set and p not in tail]
        taken = set(front)
        rest = [p for p in live if p not in taken and p not in tail]
        lane.rebuild(front + rest + [p for p in skipped if p in live_set])

    def paths(self) -> list[str]:
        """Every image still to label, in the order it will be shown (current first). O(n)."""
        head = [self.current] if self.current is not None and self._wanted(self.current) else []
        forward = [p for p in reversed(self._forward) if self._wanted(p) and p != self.current]
        lanes = {name: lane.live(self._wanted) for name, lane in self.lanes.items()}
        return head + forward + self._interleave(lanes, len(self._test_paths) + sum(map(len, lanes.values())))

    def showing(self, n: int) -> set[str]:
        """The current image and the next ``n``: what this session is about to show."""
        return set(self.upcoming(n)) | ({self.current} if self.current is not None else set())

    def upcoming(self, n: int = 3) -> list[str]:
        """The next ``n`` images after the current one (cheap: looks at the fronts only)."""
        out: list[str] = []
        for path in reversed(self._forward):
            if len(out) >= n:
                return out
            if path != self.current and self._readable(path) and path not in out:
                out.append(path)
        lanes = {name: lane.head(self._wanted, n) for name, lane in self.lanes.items()}
        return out + [p for p in self._interleave(lanes, n - len(out)) if p not in out]

    def _interleave(self, lanes: dict[str, list[str]], limit: int) -> list[str]:
        """The lanes merged as ``advance`` would take them, assuming each image shown gets labelled."""
        n_train, n_test = self._counts()
        if self.current is not None and self._wanted(self.current):
            n_test, n_train = (
                (n_test + 1, n_train) if self.current in self._test_paths else (n_test, n_train + 1)
            )
        out: list[str] = []
        pos = {"train": 0, "test": 0}
        while len(out) < limit:
            first = self._pick(n_train, n_test)
            name = next(
                (k for k in (first, "test" if first == "train" else "train") if pos[k] < len(lanes[k])), None
            )
            if name is None:
                break
            out.append(lanes[name][pos[name]])
            pos[name] += 1
            n_train, n_test = (n_train + 1, n_test) if name == "train" else (n_train, n_test + 1)
        return out
