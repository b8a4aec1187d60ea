"""Learning from the unlabelled pool: the classifier's confident predictions as pseudo-labels.

At every query the classifier (the network blended with label spreading, so the graph's knowledge
reaches the network: label propagation as pseudo-labels, Iscen et al. 2019) has just scored a sample
of the candidates. The confident ones (Lee 2013's pseudo-labels, with a threshold) become a second,
down-weighted part of every training batch until the next query replaces them. Safeguards, so that a
wrong early model cannot teach itself its mistakes:

- **Only candidates.** The pool's images neither labelled nor in the test split (``simulate``'s
  oracle set is not in the pool at all); a person's label always replaces a pseudo-label.
- **A ramp.** None before ``START`` training labels; their number grows with the person's labels up
  to ``pseudo_ratio`` per label at ``RAMP`` labels, and never more than that.
- **Per-class balance.** Each class may take at most an equal share of them (FlexMatch's concern), and
  a class the person has not labelled gets none: a model that predicts one class everywhere gets one
  share of pseudo-labels of that class, while the person's labels of the others keep their full weight.
- **Trust, checked on the person's labels.** Each new label was scored before the model learnt it
  (first sight). Where the classifier was sure (at the threshold) of at least ``MIN_SURE`` of the latest
  ones, it must have been right on ``TRUST`` of them; else no pseudo-labels until it is. A model that
  predicts one class everywhere is sure and wrong on the person's labels of every other class. The bar
  is low because the person's labels are the images the strategy found hardest (on MNIST its sure
  first-sight predictions were right 65-90% of the time while the pseudo-labels it chose were 99%+).
- **Refreshed, not accumulated.** Each query's model chooses anew; yesterday's pseudo-labels are dropped.
"""

from __future__ import annotations

import numpy as np

#: Training labels before the first pseudo-label (the cold start's picks come first).
START = 20
#: Training labels at which the number of pseudo-labels reaches ``pseudo_ratio`` per label.
RAMP = 100
#: Weight of a pseudo-label beside a person's label in the loss.
WEIGHT = 0.5
#: Share of the sure first-sight predictions that must have been right, once there are ``MIN_SURE``.
TRUST, MIN_SURE = 0.6, 5


def quota(n_train: int, ratio: float) -> int:
    """Pseudo-labels allowed with ``n_train`` training labels: 0 before ``START``, then a linear ramp to
    ``ratio`` per training label at ``RAMP``."""
    if n_train < START or ratio <= 0:
        return 0
    ramp = min(1.0, (n_train - START + 1) / (RAMP - START + 1))
    return int(ratio * n_train * ramp)


def trusted(recent, threshold: float) -> bool:
    """Were the classifier's sure predictions right on the person's latest labels at first sight?
    ``recent``: (probabilities before it learnt the label, class) pairs."""
    right = [int(np.argmax(p)) == k for p, k in recent if np.max(p) >= threshold]
    return len(right) < MIN_SURE or float(np.mean(right)) >= TRUST


def select(paths, probs: np.ndarray, labels, threshold: float, ratio: float) -> dict[str, int]:
    """path -> class of the pseudo-labels: the most confident predictions at or above ``threshold``, at
    most ``quota / classes`` per class, only of classes with a training label, never a labelled or a
    test image."""
    probs = np.asarray(probs, dtype=float)
    total = quota(len(labels.train), ratio)
    if total == 0 or not len(paths):
        return {}
    k = probs.shape[1]
    per_class = max(1, total // k)
    labelled = np.bincount(np.fromiter(labels.train.values(), dtype=np.int64), minlength=k) > 0
    pred, conf = probs.argmax(1), probs.max(1)
    ok = np.array([_candidate(p, labels) for p in paths], dtype=bool) & (conf >= threshold) & labelled[pred]
    out: dict[str, int] = {}
    for c in np.flatnonzero(labelled):
        idx = np.flatnonzero(ok & (pred == c))
        for i in idx[np.argsort(-conf[idx], kind="stable")][:per_class]:
            out[paths[i]] = int(c)
    return out


class PseudoLabels:
    """The pseudo-labels of the latest query, and the part of each batch drawn from them."""

    def __init__(self, config):
        self.enabled = config.semi_supervised
        self.threshold = config.pseudo_threshold
        self.ratio = config.pseudo_ratio
        self.batch_size = config.batch_size
        self._rng = np.random.default_rng((config.seed, 5))
        self.labels: dict[str, int] = {}
        self.trusted = True
        #: Every path that has been in a pseudo-labelled batch (never a labelled or test image).
        self.used: set[str] = set()

    def refresh(self, paths, probs, labels, recent=()) -> None:
        """Replace the pseudo-labels by the confident predictions of this query's classifier (none when
        its first sight of the person's ``recent`` labels says it is not to be trusted)."""
        if not self.enabled:
            return
        self.trusted = trusted(recent, self.threshold)
        self.labels = select(paths, probs, labels, self.threshold, self.ratio) if self.trusted else {}

    def batch(self, labels) -> tuple[list[str], np.ndarray]:
        """(paths, classes) of a pseudo-labelled batch, without images the person has labelled since."""
        paths = [p for p in self.labels if _candidate(p, labels)]
        if not paths:
            return [], np.zeros(0, np.int64)
        size = min(self.batch_size, len(paths))
        chosen = [paths[i] for i in self._rng.choice(len(paths), size=size, replace=False)]
        return chosen, np.array([self.labels[p] for p in chosen], dtype=np.int64)


def _candidate(path: str, labels) -> bool:
    """Neither labelled nor in the test split (per path: the test split may hold 10,000 paths)."""
    return path not in labels.train and path not in labels.test and path not in labels.test_paths
