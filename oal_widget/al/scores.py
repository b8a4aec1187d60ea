"""Scores: class probabilities ``probs`` (n, k) -> ``scores`` (n,), higher = ask the person sooner.

The first of modAL's three layers (probabilities -> scores, scores -> order, order -> batch). A score
function that also accepts an ``rng`` keyword (like ``random_scores``) is given ``rank()``'s generator;
``mc_probs`` (Monte-Carlo dropout passes) and ``embeddings`` likewise go only to those that accept them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Strategy = Callable[[np.ndarray], np.ndarray]

# Guards p2 / p1 against a zero top probability (impossible for a real distribution).
_EPS = 1e-12


class RankingWarning(UserWarning):
    """A strategy or policy returned something unusable; ``rank()`` repaired it."""


# --- input checks ---------------------------------------------------------------------------
def check_probs(probs) -> np.ndarray:
    """``probs`` as a float64 (n, k) array with k >= 1; n may be 0. ValueError names ``probs``."""
    try:
        arr = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"probs must be a numeric array of shape (n, k), one row per image: {e}") from None
    if arr.ndim == 1 and arr.size == 0:  # `[]`: no candidates at all
        arr = arr.reshape(0, 1)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(
            f"probs must have shape (n, k) with one row of k >= 1 class probabilities per image, "
            f"got shape {arr.shape}"
        )
    return arr


def _top_two(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest and second-largest probability of each row (second is 0 when k == 1)."""
    if probs.shape[1] == 1:
        return probs[:, 0], np.zeros(len(probs))
    # partition puts the two LARGEST last (the margin is between the two most probable classes).
    part = np.partition(probs, probs.shape[1] - 2, axis=1)
    return part[:, -1], part[:, -2]


# --- strategies: probs (n, k) -> scores (n,), higher = ask sooner ----------------------------
def least_confidence(probs) -> np.ndarray:
    """``1 - max p``: how unsure the model is of its best guess.

    Helps when few classes are roughly balanced; with many classes it ignores how the remaining
    probability is spread, so ``margin`` usually ranks better.
    """
    p = check_probs(probs)
    if len(p) == 0:
        return np.zeros(0)
    return 1.0 - p.max(axis=1)


def margin(probs) -> np.ndarray:
    """``1 - (p1 - p2)`` with p1, p2 the two LARGEST probabilities: near 1 when two classes compete.

    The usual best uncertainty score on MNIST-like data (digits, letters): it asks about the images
    on the boundary between two classes. With a single class there is no second: score ``1 - p1``.
    """
    p = check_probs(probs)
    p1, p2 = _top_two(p)
    return 1.0 - (p1 - p2)


def ratio(probs) -> np.ndarray:
    """``p2 / p1`` of the two largest probabilities: 1 when they tie, 0 when the model is sure.

    Ranks like ``margin`` but is relative: it still separates rows when both top probabilities
    are small (many classes), where margin's differences shrink.
    """
    p = check_probs(probs)
    p1, p2 = _top_two(p)
    return p2 / np.maximum(p1, _EPS)


def entropy(probs) -> np.ndarray:
    """Shannon entropy ``-sum p log p`` (with ``0 log 0 = 0``): uncertainty over ALL classes.

    Helps with few classes; with many it can over-ask ambiguous or outlier images (noise, blanks)
    whose probability is spread thinly everywhere, which a person cannot label usefully anyway.
    """
    p = check_probs(probs)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=1)


def random_scores(probs, rng: np.random.Generator | None = None) -> np.ndarray:
    """Uniform random scores in [0, 1), ignoring the probabilities.

    The baseline every strategy must beat, and the exploration part of ``epsilon_greedy``. ``rank()``
    passes its own ``rng`` here, so a seeded session draws the same order every time.
    """
    p = check_probs(probs)
    rng = np.random.default_rng() if rng is None else rng
    return rng.random(len(p))


def bald(probs, mc_probs=None) -> np.ndarray:
    """BALD (Houlsby et al. 2011, Gal et al. 2017): mutual information between the label and the weights,
    ``H[mean_t p_t] - mean_t H[p_t]`` over ``mc_probs`` (T, n, k), T Monte-Carlo dropout passes.

    Helps when the model has dropout and the pool holds ambiguous images: it asks where the passes
    DISAGREE (the model could learn something), not where every pass is unsure (noise, blanks). The
    trainer supplies ``mc_probs`` (``Config.mc_samples`` passes with dropout on). Without them (a model
    without dropout) only the first term is left: the entropy of ``probs``.
    """
    p = check_probs(probs)
    if mc_probs is None:
        return entropy(p)
    mc = np.asarray(mc_probs, dtype=np.float64)
    if mc.ndim != 3 or mc.shape[1:] != p.shape:
        raise ValueError(
            f"mc_probs must have shape (T, n, k) = (passes, {p.shape[0]}, {p.shape[1]}) to match probs, "
            f"got shape {mc.shape}"
        )
    if mc.shape[0] == 0:
        return entropy(p)
    return np.maximum(entropy(mc.mean(axis=0)) - np.mean([entropy(t) for t in mc], axis=0), 0.0)
