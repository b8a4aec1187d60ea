"""Claims: an image shown to this session is reserved for it in the store, so two people on one project
(or two panels on one folder) never label the same image.

Images are claimed a few at a time, ahead of the person; an image another session holds is passed over
and comes back when that session labels it (it is then gone), skips it or its lease runs out (a killed
kernel). A label ends the claim in the store; a skip gives it back.
"""

from __future__ import annotations

import time

#: Images claimed in one go (one store write per this many images shown).
CLAIM_AHEAD = 8
#: How often the images other sessions held are looked at again (they may have come back).
RECHECK_S = 15.0


class Claims:
    def __init__(self, store, lease_s: float):
        self.store, self.lease_s = store, lease_s
        #: Images another session held (or labelled) when this one tried: not shown until they come back.
        self.taken: set[str] = set()
        self._checked = time.monotonic()
        # A restarted kernel takes back what its dead predecessor (the same person) had reserved.
        self.mine = set(store.adopt(lease_s=lease_s))

    def ensure(self, path: str, ahead: list[str], current: str | None = None) -> bool:
        """Claim ``path`` (with the next images, and the current one's lease renewed): True when ours."""
        if path in self.mine:
            return True
        batch = [path] + [p for p in ahead if p not in self.mine and p not in self.taken][:CLAIM_AHEAD]
        if current is not None and current not in batch:
            batch.append(current)
        got = set(self.store.claim(batch, lease_s=self.lease_s))
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

    def labelled(self, path: str) -> None:
        self.mine.discard(path)  # the store ended the claim with the label

    def give_back(self, path: str) -> None:
        """A skip: another person may take it meanwhile."""
        if path in self.mine:
            self.mine.discard(path)
            self.store.release([path])

    def returned(self) -> set[str]:
        """Images others held that they no longer hold (looked at every ``RECHECK_S`` at most)."""
        if not self.taken or time.monotonic() - self._checked < RECHECK_S:
            return set()
        self._checked = time.monotonic()
        held = self.store.claimed_by_others()
        back = self.taken - held
        self.taken &= held
        return back
