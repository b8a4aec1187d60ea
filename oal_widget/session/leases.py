"""This session's claims on images: an image shown to it is reserved for it in the store, so two people
on one project (or two panels on one folder) never label the same image.

Images are claimed a few at a time, ahead of the person, BEFORE one is taken off the order; an image
another session holds is passed over and comes back when that session labels it (it is then gone),
skips it or its lease runs out (a killed kernel). A label ends the claim in the store; a skip gives it
back. While the session lives, ``renew`` (the heartbeat) keeps the leases of what it holds alive, so a
long look at one image or a break never lets a teammate be shown it.
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
    claimed) and ``showing()`` (the images on screen or next, whose leases the heartbeat renews)."""

    def __init__(self, store, lease_s: float, *, blind=lambda path: False, showing=set):
        self.store, self.lease_s = store, lease_s
        self._blind, self._showing = blind, showing
        self._heartbeat: Heartbeat | None = None
        #: Images another session held (or labelled) when this one tried: not shown until they come back.
        self.taken: set[str] = set()
        #: Images shown although their claim could not be written (the store was away): claimed by the
        #: next ``renew``.
        self.unconfirmed: set[str] = set()
        self._checked = time.monotonic()
        # A restarted kernel takes back what its dead predecessor (the same person) had reserved.
        self.mine = set(store.adopt(lease_s=lease_s))

    def ensure(self, path: str, ahead: list[str], current: str | None = None) -> bool:
        """Claim ``path`` (with the next images, and the current one's lease renewed): True when ours.

        When the store cannot be written (``StoreUnavailable``) the image is shown all the same (the label
        before it is saved; refusing would strand the person) and claimed by the next ``renew``."""
        if path in self.mine or self._blind(path):
            return True
        ahead = [p for p in ahead if p not in self.mine and p not in self.taken and not self._blind(p)]
        batch = [path] + ahead[:CLAIM_AHEAD]
        if current is not None and current not in batch:
            batch.append(current)
        try:
            got = set(self.store.claim(batch, lease_s=self.lease_s))
        except StoreUnavailable:
            log.warning("could not claim %s: the store is unavailable; claiming it again shortly", path)
            self.unconfirmed.add(path)
            return True
        self.mine |= got
        self.taken |= set(batch) - got
        return path in got

    def take(self, paths: list[str], n: int) -> list[str]:
        """Claim the first ``n`` of ``paths`` that are free or ours already (a grid page: one store write),
        in their order; the ones another session holds are passed over like the single view's."""
        got = self.store.claim(paths, lease_s=self.lease_s, limit=n)
        self.mine |= set(got)
        looked = paths.index(got[-1]) + 1 if got and len(got) == n else len(paths)  # the store stopped there
        self.taken |= set(paths[:looked]) - set(got)
        return got

    def give_back(self, path: str) -> None:
        """A skip: another person may take it meanwhile."""
        self.unconfirmed.discard(path)
        if path in self.mine:
            self.mine.discard(path)
            try:
                self.store.release([path])
            except StoreUnavailable:  # its lease runs out by itself
                log.warning("could not release the claim on %s: the store is unavailable", path)

    def release_all(self) -> None:
        """The session stopped: every claim goes back (a store that is away lets the leases run out)."""
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

    def renew(self) -> None:
        """The heartbeat: renew the leases of what this session holds and still shows or has ahead
        (``showing()``), and claim the images shown while the store was away. Labelled images drop out
        (the store ended their claims); one another session took meanwhile is given up."""
        if self.store.closed:
            return
        showing = self._showing()
        before = set(self.mine)
        keep = (before | self.unconfirmed) & showing
        got = set(self.store.claim(sorted(keep), lease_s=self.lease_s)) if keep else set()
        # Only what this renewal looked at changes: an image claimed meanwhile (a key) stays ours.
        self.mine -= before - got
        self.mine |= got
        self.unconfirmed -= keep

    def returned(self) -> set[str]:
        """Images others held that they no longer hold (looked at every ``RECHECK_S`` at most)."""
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
