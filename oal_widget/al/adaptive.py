"""The protocol of a strategy that learns during a session (the bandit), made explicit.

The trainer draws an ``Arm`` before a query and credits THAT arm later with what its labels brought.
Each draw is its own handle, so two queries before one evaluation credit two arms, never one twice.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Arm:
    """One draw of an adaptive strategy: the score function to use now, and what ``reward`` needs."""

    index: int
    name: str
    strategy: object  # a score function probs -> scores
    probability: float


class AdaptiveStrategy(abc.ABC):
    """A strategy with state across queries. The registry holds a template; each session uses ``fresh()``."""

    __name__ = "adaptive"

    @abc.abstractmethod
    def fresh(self) -> AdaptiveStrategy:
        """The same strategy with no experience (one per session)."""

    @abc.abstractmethod
    def choose(self, rng: np.random.Generator) -> Arm:
        """Draw the score function for the next query."""

    @abc.abstractmethod
    def reward(self, arm: Arm, gain: float) -> float | None:
        """Credit ``arm`` with the accuracy ``gain`` its labels brought; the reward used (None: ignored)."""
