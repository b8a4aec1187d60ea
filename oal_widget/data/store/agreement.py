"""Agreement between annotators: percent and Cohen's kappa per pair, conflicts, double-labelling picks.

Only annotations with a known annotator count (labels written before schema 2 have none).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from itertools import combinations

from .base import StoreCore, Tx
from .checks import UNKNOWN_ANNOTATOR, check_share
from .records import Conflict, PairAgreement


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two annotators' labels of the same images: (p_o - p_e) / (1 - p_e).

    p_o: share of images they agree on; p_e: the agreement expected by chance from each one's label
    frequencies. None when undefined (p_e = 1: both gave one and the same class to everything).
    """
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[k] * second[k] for k in first) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def status(annotations: dict[str, tuple[str, int]], settlement: tuple[str, int] | None) -> str:
    """``""``, ``agree``, ``conflict`` or ``settled`` for one image.

    ``annotations``: annotator -> (label, rev); ``settlement``: (label, rev) or None. A settled image
    is a conflict again when someone labels it differently AFTER it was settled.
    """
    known = {a: v for a, v in annotations.items() if a != UNKNOWN_ANNOTATOR}
    labels = {label for label, _ in known.values()}
    if settlement is None:
        if len(known) < 2:
            return ""
        return "agree" if len(labels) == 1 else "conflict"
    label, rev = settlement
    if any(r > rev and lab != label for lab, r in known.values()):
        return "conflict"
    if len(known) < 2:
        return ""
    return "agree" if len(labels) == 1 else "settled"


def share_point(path: str) -> float:
    """A number in [0, 1) fixed by the path alone: the same images are picked on every machine."""
    return int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big") / 2**64


class Agreement(StoreCore):
    def _marks_by_path(self, tx: Tx):
        """(path -> {annotator: (label, rev)}, path -> (label, rev)) of the whole project."""
        by_path: dict[str, dict[str, tuple[str, int]]] = {}
        for path, annotator, label, rev in tx.all(
            "SELECT path, annotator, label, rev FROM annotations WHERE project_id = ?", (tx.project,)
        ):
            by_path.setdefault(path, {})[annotator] = (label, rev)
        settled = {
            path: (label, rev)
            for path, label, rev in tx.all(
                "SELECT path, label, rev FROM settlements WHERE project_id = ?", (tx.project,)
            )
        }
        return by_path, settled

    def agreement(self) -> list[PairAgreement]:
        """Per pair of annotators (sorted by name): images both labelled, percent agreement, Cohen's kappa."""
        by_path, _settled = self._read(self._marks_by_path)
        names = sorted({a for marks in by_path.values() for a in marks if a != UNKNOWN_ANNOTATOR})
        out = []
        for a, b in combinations(names, 2):
            pairs = [(m[a][0], m[b][0]) for m in by_path.values() if a in m and b in m]
            if not pairs:
                continue
            agreed = sum(x == y for x, y in pairs)
            out.append(
                PairAgreement(a, b, len(pairs), agreed, 100.0 * agreed / len(pairs), cohen_kappa(pairs))
            )
        return out

    def conflicts(self) -> list[Conflict]:
        """Images whose annotators disagree and that nobody settled since, with each annotator's label."""

        def work(tx: Tx):
            by_path, settled = self._marks_by_path(tx)
            standing = dict(tx.all("SELECT path, label FROM labels WHERE project_id = ?", (tx.project,)))
            return by_path, settled, standing

        by_path, settled, standing = self._read(work)
        out = []
        for path in sorted(by_path):
            if path in standing and status(by_path[path], settled.get(path)) == "conflict":
                labels = {a: v[0] for a, v in sorted(by_path[path].items()) if a != UNKNOWN_ANNOTATOR}
                out.append(Conflict(path, standing[path], labels))
        return out

    def double_label_candidates(self, share: float, *, annotator: str | None = None) -> list[str]:
        """The labelled images ``annotator`` (default: this store's) should label too, blind, at ``share``.

        Deterministic: an image is picked when ``share_point(path) < share`` (the same images for
        everyone, so every pair of annotators overlaps), never one this annotator labelled already.
        Ordered by that number, so a larger share only adds images.
        """
        share = check_share(share)
        who = self.annotator if annotator is None else annotator
        if share == 0:
            return []

        def work(tx: Tx):
            labelled = [r[0] for r in tx.all("SELECT path FROM labels WHERE project_id = ?", (tx.project,))]
            mine = {r[0] for r in tx.all(
                "SELECT path FROM annotations WHERE project_id = ? AND annotator = ?", (tx.project, who)
            )}  # fmt: skip
            standing_mine = {r[0] for r in tx.all(
                "SELECT path FROM labels WHERE project_id = ? AND annotator = ?", (tx.project, who)
            )}  # fmt: skip
            return labelled, mine | standing_mine

        labelled, mine = self._read(work)
        picked = [(share_point(p), p) for p in labelled if p not in mine]
        return [p for point, p in sorted(picked) if point < share]
