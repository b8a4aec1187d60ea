"""The review queue: the labelled images most likely to be wrong, worst first.

It ranks by out-of-sample probabilities: for each training image, what the model predicted BEFORE it
learnt from that image's label (``TrainingCore.first_sight``). A model that has trained on a wrong label
tends to repeat it; the prediction made before has not seen it. In the spirit of confident learning
(Northcutt, Jiang & Chuang 2021, "Confident learning: estimating uncertainty in dataset labels", JAIR 70):

- per-class thresholds: ``t_j`` = the mean probability of class ``j`` over the images labelled ``j``
  (how confident the model typically is in a class it is right about);
- an image labelled ``i`` is *flagged* when some class ``j != i`` reaches its threshold and is the most
  probable of the classes that do (it falls off the diagonal of the confident joint);
- a flag needs a competent judge: the model that saw the label first may have had a dozen labels. Its
  *doubt* is its running accuracy at first sight (over the ``JUDGE_WINDOW`` labels before, a Beta(1, 1)
  prior) times its confidence in the other class, an estimate of the chance that the other class is
  right; only a doubt of ``MIN_DOUBT`` or more is flagged. On flipped digit labels
  (``bench/review_queue.py``, 5 seeds) this cut the correct labels marked "likely mistake" from 43% to
  1% at 50 labels, 11% to 4% at 150 and 6% to 4% at 500, keeping 57% and 81% of the flags on flipped
  labels at 150 and 500 (77% and 86% before); an immature model flags almost nothing;
- the queue is ordered by the probability the model gave the label an image has (its self-confidence,
  cleanlab's default ranking), lowest first: a flipped label gets a tiny one even from a weak early
  model, a hard but right image a moderate one. Flagged images are marked. Putting them first (as a
  filter) ranked worse here: the thresholds mix early weak predictions with later good ones
  (``bench/review_queue.py`` measures every order of ``METHODS``; the README has the numbers).

``rank`` and ``likely_mistakes`` are pure numpy; ``ReviewQueue`` walks the ranking with the person
(confirm, fix, next, back, undo) on a session, headless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

#: How a queue may be ordered (``bench/review_queue.py`` compares them). ``self_confidence`` (the default):
#: by the probability of the given label, lowest first. ``margin``: by the normalized margin.
#: ``confident`` / ``confident_margin``: the flagged images first, then the others, each by that key.
METHODS = ("self_confidence", "margin", "confident", "confident_margin")
#: The queue's order: measured best on flipped digit labels (``bench/review_queue.py``, in the README).
DEFAULT_METHOD = "self_confidence"
#: First-sight predictions (the labels before an image's) the judge's running accuracy is taken over.
JUDGE_WINDOW = 30
#: The least doubt (the judge's accuracy x its confidence in the other class) that flags a label.
MIN_DOUBT = 0.6


# --- the ranking (pure numpy) ----------------------------------------------------------------------------
def thresholds(probs: np.ndarray, given: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class thresholds: the mean probability of class j over the rows labelled j (inf: no such row)."""
    t = np.full(n_classes, np.inf)
    for j in range(n_classes):
        rows = given == j
        if rows.any():
            t[j] = probs[rows, j].mean()
    return t


def margins(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """``p_given - max_{j != given} p_j`` per row: below 0 when the model prefers another class."""
    rows = np.arange(len(given))
    p_given = probs[rows, given]
    others = probs.copy()
    others[rows, given] = -np.inf
    return p_given - others.max(axis=1)


def flags(probs: np.ndarray, given: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rows off the diagonal of the confident joint: the most probable class among those reaching their
    threshold is not the given one."""
    above = probs >= t[None, :]
    confident = np.where(above, probs, -1.0).argmax(axis=1)
    return above.any(axis=1) & (confident != given)


def judge_accuracy(probs: np.ndarray, given: np.ndarray, window: int = JUDGE_WINDOW) -> np.ndarray:
    """Per row (in labelling order): how often the first-sight prediction was the given label over the
    ``window`` rows before it, with one right and one wrong answer as a prior (a new model is no judge)."""
    hit = np.concatenate([[0.0], np.cumsum(probs.argmax(axis=1) == given)])
    k = np.arange(len(given))
    start = np.maximum(0, k - window)
    return (hit[k] - hit[start] + 1.0) / (k - start + 2.0)


def doubts(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per row: the judge's estimate that the class it preferred over the given one is right (0 where it
    agreed with the label)."""
    top = probs.argmax(axis=1)
    return np.where(top != given, judge_accuracy(probs, given) * probs.max(axis=1), 0.0)


def rank(probs, given, n_classes: int, method: str = DEFAULT_METHOD) -> tuple[np.ndarray, ...]:
    """(order, margin, flagged, doubt): row indices worst first, and per row its margin, flag and doubt.
    Rows are in labelling order (the judge's accuracy runs over it)."""
    probs = np.asarray(probs, dtype="float64").reshape(len(given), n_classes)
    given = np.asarray(given, dtype="int64")
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid: expected one of {', '.join(METHODS)}")
    margin = margins(probs, given) if len(given) else np.zeros(0)
    doubt = doubts(probs, given) if len(given) else np.zeros(0)
    flagged = flags(probs, given, thresholds(probs, given, n_classes)) if len(given) else np.zeros(0, bool)
    flagged = flagged & (doubt >= MIN_DOUBT)
    p_given = probs[np.arange(len(given)), given]
    key = margin if method in ("margin", "confident_margin") else p_given
    if method.startswith("confident"):
        order = np.lexsort((key, ~flagged))  # flagged first, then the lowest key first
    else:
        order = np.argsort(key, kind="stable")
    return order, margin, flagged, doubt


@dataclass(frozen=True)
class ReviewItem:
    path: str
    label: str
    #: What the model predicted before it trained on this image, and how sure it was.
    predicted: str
    p_predicted: float
    #: The probability it gave the label the image has.
    p_label: float
    margin: float
    flagged: bool
    #: The judge's estimate that ``predicted`` is right instead (its running accuracy x its confidence).
    doubt: float = 0.0


def likely_mistakes(
    first_sight: Mapping[str, np.ndarray], labels: Mapping[str, str], names: Sequence[str]
) -> list[ReviewItem]:
    """The labelled images that have an out-of-sample prediction, worst first (``rank``)."""
    index = {name: i for i, name in enumerate(names)}
    paths = [p for p in first_sight if labels.get(p) in index and np.shape(first_sight[p]) == (len(names),)]
    if not paths:
        return []
    probs = np.stack([np.asarray(first_sight[p], dtype="float64") for p in paths])
    given = np.array([index[labels[p]] for p in paths])
    order, margin, flagged, doubt = rank(probs, given, len(names))
    out = []
    for i in order:
        top = int(probs[i].argmax())
        out.append(
            ReviewItem(
                paths[i], labels[paths[i]], names[top], float(probs[i, top]), float(probs[i, given[i]]),
                float(margin[i]), bool(flagged[i]), float(doubt[i]),
            )
        )  # fmt: skip
    return out


# --- walking the queue with the person ----------------------------------------------------------------------
class ReviewQueue:
    """The person's pass over the likely mistakes: ``confirm`` keeps a label, ``fix(name)`` relabels with
    source ``review``; both take the image out of the queue for this session. ``undo`` takes the last
    decision of this visit back (a fix is undone in the store)."""

    def __init__(self, session):
        self.session = session
        self.items: list[ReviewItem] = []
        self.position = 0
        self.decided: set[str] = set()  # confirmed or fixed in this session: not asked again
        #: (kind, item, position, the fix's undo step) of this visit's decisions.
        self._decisions: list[tuple[str, ReviewItem, int, int | None]] = []

    def open(self) -> None:
        """Rank the training labels again with what the trainer knows now; a new visit."""
        s = self.session
        labels = {
            p: lab
            for p, lab in s.known_labels().items()
            if p not in self.decided and not s.is_second_opinion(p)
        }  # an image this annotator must label blind shows no one's label
        self.items = likely_mistakes(s.first_sight(), labels, s.label_names)
        self.position, self._decisions = 0, []

    def sync(self) -> int:
        """The queue follows the labels as they stand now (another session's write, an undo): an image
        whose label went, or that this annotator is now asked for blind, leaves it; one relabelled shows
        its new label with the model's first-sight probability of it (unflagged: the flag judged the old
        one). Returns how many left; the image on screen stays current while it is in the queue."""
        s = self.session
        index = {name: i for i, name in enumerate(s.label_names)}
        seen = None
        current, kept = self.current, []
        for item in self.items:
            label = s.label_of(item.path)
            if label not in index:  # gone, blind, or a class this session does not know
                continue
            if label != item.label:
                seen = s.first_sight() if seen is None else seen
                probs = seen.get(item.path)
                p = float(probs[index[label]]) if np.shape(probs) == (len(index),) else item.p_label
                item = replace(item, label=label, p_label=p, flagged=False, doubt=0.0)
            kept.append(item)
        left = len(self.items) - len(kept)
        paths = [item.path for item in kept]
        if current is not None and current.path in paths:
            self.position = paths.index(current.path)
        else:
            self.position = min(self.position, max(0, len(kept) - 1))
        self.items = kept
        return left

    @property
    def current(self) -> ReviewItem | None:
        return self.items[self.position] if 0 <= self.position < len(self.items) else None

    @property
    def n_flagged(self) -> int:
        return sum(item.flagged for item in self.items)

    def source_of(self, item: ReviewItem) -> str | None:
        """Where the standing label came from (``person``, ``accepted``...), from the store."""
        record = self.session.store.record(item.path)
        return record.source if record is not None else None

    def confirm(self) -> ReviewItem | None:
        """The label is right: keep it (nothing is written); the next image comes up."""
        return self._decide("confirm")

    def fix(self, name: str) -> ReviewItem | None:
        """Relabel the image ``name`` (source ``review``); its own label again is a confirmation."""
        item = self.current
        if item is None:
            return None
        standing = self.session.label_of(item.path)
        if standing is None:  # unlabelled (or blind for this annotator) since: nothing to review there
            self.sync()
            return None
        if name == standing:  # as it stands, whatever the queue showed
            return self._decide("confirm")
        written = self.session.actions.relabel(item.path, name, source="review")
        return self._decide("fix", written.step)

    def _decide(self, kind: str, step: int | None = None) -> ReviewItem | None:
        item = self.current
        if item is None:
            return None
        self.decided.add(item.path)
        self._decisions.append((kind, item, self.position, step))
        del self.items[self.position]
        self.position = min(self.position, max(0, len(self.items) - 1))
        return item

    def next(self) -> bool:
        """The next image without deciding; False at the end."""
        if self.position + 1 >= len(self.items):
            return False
        self.position += 1
        return True

    def back(self) -> bool:
        if self.position == 0:
            return False
        self.position -= 1
        return True

    def undo(self) -> ReviewItem | None:
        """Take back the last decision of this visit (a fix: its label is undone in the store); that image
        is current again. None when this visit decided nothing."""
        if not self._decisions:
            return None
        kind, item, position, step = self._decisions[-1]
        if kind == "fix":  # exactly that fix, whatever the session did since; UndoConflict: it stays
            self.session.actions.undo_step(show_labelled=False, step=step)
        self._decisions.pop()
        self.decided.discard(item.path)
        position = min(position, len(self.items))
        label = self.session.label_of(item.path)
        self.items.insert(position, item if label in (None, item.label) else replace(item, label=label))
        self.position = position
        return item
