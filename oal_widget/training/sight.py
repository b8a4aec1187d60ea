"""First sight: what the classifier said of each new training label's image BEFORE it learnt it.

Three readers: the review queue ranks likely mistakes by it (an out-of-sample view of every label),
the accuracy estimate fits its temperature on the latest ones, and the graph's blend weight is chosen
by how well the network and the graph predicted them. The parts (network, graph) are kept apart, so
the estimate re-blends them with today's weight. Only a person's own labels are evidence: an accepted
prediction or a grid page was chosen BY the prediction.
"""

from __future__ import annotations

import numpy as np

from .estimate import RECENT


class FirstSight:
    def __init__(self, learner, graph, labels):
        self.learner, self.graph, self.labels = learner, graph, labels
        #: path -> the classifier's class probabilities (blended) before it learnt the image's label.
        self.probs: dict[str, np.ndarray] = {}
        self._parts: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}  # a person's labels only

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
