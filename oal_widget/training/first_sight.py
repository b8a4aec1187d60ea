"""First sight: what the classifier said of each new training label's image BEFORE it learnt it.

Three readers: the review queue ranks likely mistakes by it (an out-of-sample view of every label),
the accuracy estimate fits its temperature on the latest half (``for_estimate``), and the graph's blend
weight is chosen by how well the network and the graph predicted them. The parts (network, graph) are
kept apart, so the estimate re-blends them with today's weight. Only a person's own labels are evidence:
an accepted prediction or a grid page was chosen BY the prediction.
"""

from __future__ import annotations

import math

import numpy as np

from .estimate import ESTIMATE_SHARE, RECENT


class FirstSight:
    def __init__(self, learner, graph, labels):
        self.learner, self.graph, self.labels = learner, graph, labels
        #: path -> the classifier's class probabilities (blended) before it learnt the image's label.
        self.probs: dict[str, np.ndarray] = {}
        self._parts: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}  # a person's labels only
        #: An earlier session's file was looked at (``checkpoint.load_first_sight``), whatever it held.
        self.restored = False
        #: The images the earlier sessions' models had trained on (from that file; None: unknown).
        self.learnt: set[str] | None = None

    def wants(self, path: str, fresh: bool) -> bool:
        """Whether a new training label's image is unseen by the model, so its view now is a first sight:
        never scored, never in a batch; for a stored label handed over at start (``fresh`` False), not
        among what the earlier models had learnt (a teammate's label of meanwhile), and assumed learnt
        when that is unknown. An image trained on as a pseudo-label has been seen too: the model learnt
        its own guess for it."""
        if path in self.probs or path in self.learner.trained_paths or path in self.learner.pseudo.used:
            return False
        return fresh or (self.learnt is not None and path not in self.learnt)

    def score(self, path: str, label: str, source: str) -> None:
        """Score a new training label's image with the model as it is (call before it trains on it)."""
        X, loaded = self.learner.inputs([path])
        if not loaded:
            return
        p_network = self.learner.predict(X)[0].astype("float32")
        if source != "person":
            p_graph = self.graph.probs([path])
            self.probs[path] = self.graph.blend_one(p_network, None if p_graph is None else p_graph[0])
            return
        p_graph = self.graph.first_sight(path, p_network, self.labels.index[label])
        self._parts[path] = (p_network, p_graph)
        self.probs[path] = self.graph.blend_one(p_network, p_graph)

    def recent(self, n: int = RECENT) -> list[tuple[np.ndarray, int]]:
        """(probabilities re-blended by today's weight, class) of the latest ``n`` a person gave that
        still stand as training labels."""
        out = []
        for path in reversed(self._parts):
            k = self.labels.train.get(path)
            if k is not None:
                out.append((self.graph.blend_one(*self._parts[path]), k))
                if len(out) == n:
                    break
        return out[::-1]

    def for_estimate(self) -> list[tuple[np.ndarray, int]]:
        """``recent`` of the latest half (``ESTIMATE_SHARE``) of the person's first sights that still
        stand: those of models that had at least about half of today's training labels. Older ones
        (early models, nearly guessing) would pull the accuracy estimate's temperature away from today's."""
        standing = sum(1 for path in self._parts if path in self.labels.train)
        return self.recent(max(1, math.ceil(ESTIMATE_SHARE * standing))) if standing else []

    # --- kept across sessions (``checkpoint``) ---------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """Everything as plain arrays (``np.savez``; no pickles): paths, blended probabilities, and the
        parts of a person's labels (graph rows NaN where there was no graph)."""
        paths = list(self.probs)
        k = len(self.labels.names)
        network, graph = (
            np.full((len(paths), k), np.nan, "float32"),
            np.full((len(paths), k), np.nan, "float32"),
        )
        for i, path in enumerate(paths):
            if path in self._parts:
                p_network, p_graph = self._parts[path]
                network[i] = p_network
                if p_graph is not None:
                    graph[i] = p_graph
        return {
            "paths": np.array(paths, dtype=str),
            "probs": np.stack([self.probs[p] for p in paths]).astype("float32"),
            "person": np.array([p in self._parts for p in paths]),
            "network": network,
            "graph": graph,
            "names": np.array(self.labels.names, dtype=str),
            "trained": np.array(
                sorted(self.learner.trained_paths | self.learner.pseudo.used | (self.learnt or set())),
                dtype=str,
            ),
        }

    def restore(self, arrays: dict[str, np.ndarray]) -> int:
        """Take in ``arrays()`` of an earlier session, oldest first, for the same label names (else a
        ``ValueError``); entries this session already has are kept. Returns how many were taken."""
        if list(arrays["names"]) != list(self.labels.names):
            raise ValueError(f"first sight of other labels {list(arrays['names'])!r}")
        self.learnt = set(arrays["trained"].tolist()) if "trained" in arrays else None
        taken = 0
        old_probs, old_parts = dict(self.probs), dict(self._parts)
        self.probs.clear()
        self._parts.clear()
        for i, path in enumerate(arrays["paths"].tolist()):
            if path in old_probs:
                continue
            self.probs[path] = arrays["probs"][i]
            if arrays["person"][i]:
                graph = arrays["graph"][i]
                self._parts[path] = (arrays["network"][i], None if np.isnan(graph).all() else graph)
            taken += 1
        self.probs.update(old_probs)  # newer than the file's: after them, in the order they came
        self._parts.update(old_parts)
        return taken
