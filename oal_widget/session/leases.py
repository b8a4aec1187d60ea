"""This session's claims on images: an image shown to it is reserved for it in the store, so two people
on one project (or two panels on one folder) never label the same image.

Images are claimed a few at a time, ahead of the person, BEFORE one is taken off the order; every image
the order shows that is still to be labelled is claimed first (``ensure``), whichever way it comes on
screen (next, back, forward, after an undo). An image another session holds is passed over and comes
back when that session labels it (it is then gone), skips it or its lease runs out (a killed kernel). A
label ends the claim in the store; a skip gives it back. While the session lives, ``renew`` (the
heartbeat) keeps the leases of what it shows alive, so a long look at one image or a break never lets a
teammate be shown it; one lost all the same (the server away for longer than the lease) is given up, and
the session moves off it.

One lock, held across each read-write-update of ``mine`` with its store call, because the heartbeat
thread and the key handler both change it. Lock order: the session's lock, then this one, then the
store's.
"""

from __future__ import annotations

import logging
import threading
import time

from ..data.store import StoreUnavailable

log = logging.getLogger(__name__)

#: Images claimed in one go (one store write per this many images shown).
CLAIM_AHEAD = 8
#: How often the images other sessions held are looked at again (they may have come back).
RECHECK_S = 15.0


class Leases:
    """Args: the store, the lease in seconds, ``blind(path)`` (a second opinion: labelled already, never
    claimed), ``is_open(path)`` (unlabelled, as far as this session knows: a refused claim of any other
    image means it was labelled, not held) and ``showing()`` (the images on screen or next, whose leases
    the heartbeat renews)."""

    def __init__(self, store, lease_s: float, *, blind=lambda path: False, is_open=lambda path: True,
                 showing=set):  # fmt: skip
        self.store, self.lease_s = store, lease_s
        self._blind, self._open, self._showing = blind, is_open, showing
        self._lock = threading.Lock()
        self._heartbeat: Heartbeat | None = None
        #: The grid page shown now (``take``): renewed with what ``showing()`` names, until ``close_page``.
        self.page: set[str] = set()
        #: Images another session held (or labelled) when this one tried: not shown until they come back.
        self.taken: set[str] = set()
        #: Images shown although their claim could not be written (the store was away): claimed by the
        #: next ``renew``.
        self.unconfirmed: set[str] = set()
        self._checked = time.monotonic()
        # A restarted kernel takes back what its dead predecessor (the same person) had reserved.
        self.mine = set(store.adopt(lease_s=lease_s))

    def ensure(self, path: str, ahead: list[str]) -> bool:
        """Claim ``path`` (with the next images, one store write for several): True when ours.

        When the store cannot be written (``StoreUnavailable``) the image is shown all the same (the label
        before it is saved; refusing would strand the person) and claimed by the next ``renew``."""
        with self._lock:
            if path in self.mine or self._blind(path):
                return True
            ahead = [p for p in ahead if p not in self.mine and p not in self.taken and not self._blind(p)]
            batch = [path] + ahead[:CLAIM_AHEAD]
            try:
                got = set(self.store.claim(batch, lease_s=self.lease_s))
            except StoreUnavailable:
                log.warning("could not claim %s: the store is unavailable; claiming it again shortly", path)
                self.unconfirmed.add(path)
                return True
            self.mine |= got
            self.taken -= got
            self.unconfirmed -= got
            self._taken(set(batch) - got)
            return path in got

    def passed_over(self) -> set[str]:
        with self._lock:
            return set(self.taken)

    def elsewhere(self, path: str) -> bool:
        """Passed over: another session held it when this one looked (a blind second opinion never is:
        it is not claimed, so another's claim does not keep it from this one)."""
        return path in self.taken and not self._blind(path)

    def take(self, paths: list[str], n: int) -> list[str]:
        """Claim the first ``n`` of ``paths`` that are free or ours already (a grid page: one store write),
        in their order; the ones another session holds are passed over like the single view's."""
        with self._lock:
            got = self.store.claim(paths, lease_s=self.lease_s, limit=n)
            self.page = set(got)
            self.mine |= set(got)
            self.taken -= set(got)
            self.unconfirmed -= set(got)
            looked = paths.index(got[-1]) + 1 if got and len(got) == n else len(paths)  # the store stopped
            self._taken(set(paths[:looked]) - set(got))
            return got

    def _taken(self, paths: set[str]) -> None:
        """The store refused ``paths``: another session holds them (or labelled them), so they are passed
        over (one on screen is left at the next ``Order.recheck``); not one this session knows is labelled
        (an undo may bring it back: it must be wanted then)."""
        self.unconfirmed -= paths
        self.taken |= {p for p in paths if self._open(p)}

    def close_page(self, keep: set[str]) -> None:
        """The grid page is no longer shown: its images not in ``keep`` (about to be shown) go back."""
        with self._lock:
            page, self.page = self.page, set()
        self.give_back(page - keep)

    def give_back(self, paths) -> None:
        """A skip, a grid page closed: another person may take them meanwhile."""
        with self._lock:
            paths = set(paths)
            self.unconfirmed -= paths
            mine, self.mine = self.mine & paths, self.mine - paths
            if not mine:
                return
            try:
                self.store.release(sorted(mine))
            except StoreUnavailable:  # their leases run out by themselves
                log.warning("could not give back %d claim(s): the store is unavailable", len(mine))

    def release_all(self) -> None:
        """The session stopped: every claim goes back (a store that is away lets the leases run out)."""
        with self._lock:
            self.mine.clear()
            self.unconfirmed.clear()
            if self.store.closed:
                return
            try:
                self.store.release()
            except StoreUnavailable:
                log.warning("could not release this session's claims: the store is unavailable")

    def start(self) -> None:
        """Start the heartbeat: ``renew`` every third of the lease until ``stop``."""
        self._heartbeat = Heartbeat(self.renew, heartbeat_interval(self.lease_s))

    def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()

    def renew(self) -> set[str]:
        """The heartbeat: renew the leases of what this session holds and still shows or has ahead
        (``showing()``), and claim the images shown while the store was away. Labelled images drop out
        (the store ended their claims). Returns the images shown that another session took meanwhile
        (they are given up: the session moves off them)."""
        showing = self._showing()  # the session's lock, briefly, before this one (the lock order)
        with self._lock:
            showing |= self.page
            if self.store.closed:
                return set()
            keep = {p for p in (self.mine | self.unconfirmed) & showing if not self._blind(p)}
            got = set(self.store.claim(sorted(keep), lease_s=self.lease_s)) if keep else set()
            lost = {p for p in keep - got if self._open(p)}  # the others were labelled meanwhile
            self.mine = got  # what is no longer shown lets its lease run out
            self.unconfirmed -= keep
            self._taken(lost)
            return lost

    def returned(self) -> set[str]:
        """Images others held that they no longer hold (looked at every ``RECHECK_S`` at most)."""
        with self._lock:
            if not self.taken or time.monotonic() - self._checked < RECHECK_S:
                return set()
            self._checked = time.monotonic()
            held = self.store.claimed_by_others()
            back = self.taken - held
            self.taken &= held
            return back


def heartbeat_interval(lease_s: float) -> float:
    """Seconds between renewals: a third of the lease (two renewals may fail before it runs out)."""
    return max(0.2, min(lease_s / 3, 60.0))


class Heartbeat:
    """A daemon thread that calls ``beat()`` every ``interval`` seconds until ``stop()``; an error is
    logged, never raised (the next beat tries again)."""

    def __init__(self, beat, interval: float, name: str = "oal-leases"):
        self._beat, self.interval = beat, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - the server away: the next beat tries again
                log.warning("renewing this session's claims failed; trying again", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
