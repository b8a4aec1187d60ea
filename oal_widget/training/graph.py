"""The trainer's graph of images: features that exist before any label, label spreading over a query's
candidates and the labelled images, and the blend of its soft labels with the network's probabilities.

Features: a PCA of the pixels (fitted once on a random sample of the pool), or of the frozen backbone's
embeddings in frozen-backbone mode. The graph is rebuilt at every query over the labelled training
images and the images the query scores (at most ``MAX_NODES``: with ``query_sample=0`` on a large pool
a random part of them, the others get their neighbours' vote; features a chunk at a time). Each new
training label is scored by both parts BEFORE the model learns from it; the blend weight is the one
that best predicted the latest of those labels (``al.propagation.choose_weight``), so where the graph
does not help its weight is 0 and the network alone decides.
"""

from __future__ import annotations

import numpy as np

from ..al.coldstart import Pca, shrink
from ..al.propagation import WINDOW, LabelSpreading, blend, choose_weight

#: Images the PCA is fitted on (a random sample of the pool).
PCA_SAMPLE = 2000
#: At most this many nodes in a graph (the labelled images first, then a random part of the query's):
#: a dense graph, milliseconds to spread; the images outside it get their neighbours' vote.
MAX_NODES = 4096
#: Images whose features are computed at once (bounded memory when a query scores the whole pool).
FEATURE_CHUNK = 2048


class GraphBlend:
    def __init__(self, pool, learner, label_names, seed: int, enabled: bool = True):
        self.pool, self.learner, self.enabled = pool, learner, enabled
        self.num_classes = len(label_names)
        self._rng = np.random.default_rng((seed, 2))
        self._spaces: dict[int, _Space] = {}  # by id of the embeddings (0: pixels)
        self.graph: LabelSpreading | None = None
        self._node: dict[str, int] = {}
        self.weight = 0.0
        #: (probability the network gave the true class, the graph's) at each new label's first sight.
        self.records: list[tuple[float, float]] = []

    # --- features ---------------------------------------------------------------------------------
    def _source(self):
        return self.learner.frozen.embeddings if self.learner.head() is not None else None

    def pixel_features(self, paths) -> tuple[np.ndarray, list[str]]:
        """(n, d) PCA features of the pixels of the paths that load, and those paths (cached)."""
        return self._space(None).of(paths)

    def features(self, paths) -> tuple[np.ndarray, list[str]]:
        """The graph's features: of the frozen backbone's embeddings in frozen-backbone mode, else of
        the pixels."""
        return self._space(self._source()).of(paths)

    def features_of(self, X: np.ndarray, embedded: np.ndarray | None = None) -> np.ndarray:
        """The graph's features of images given as arrays, not in the pool (``simulate``'s oracle);
        in frozen-backbone mode of their backbone embeddings ``embedded``."""
        source = self._source()
        space = self._space(source)
        if space.pca is None:
            return np.zeros((len(X), 1), np.float32)
        if source is None:
            return space.pca(shrink(X))
        if embedded is None:
            embedded = np.asarray(source.backbone.predict_on_batch(X))
        return space.pca(np.asarray(embedded, np.float32).reshape(len(X), -1))

    def _space(self, source) -> _Space:
        space = self._spaces.get(id(source))
        if space is None or space.source is not source:
            space = self._spaces[id(source)] = _Space(self.pool, source, self._rng)
        return space

    # --- the graph -------------------------------------------------------------------------------
    def rebuild(self, candidates, labels) -> None:
        """The graph over the labelled training images and ``candidates``, spread from their labels."""
        if not self.enabled:
            return
        train = list(labels.train)
        if len(train) < 2:
            return
        others = [p for p in candidates if p not in labels.train]
        room = max(0, MAX_NODES - len(train))
        if len(others) > room:  # query_sample=0 on a large pool: a random part of it
            others = [others[i] for i in sorted(self._rng.choice(len(others), room, replace=False))]
        E, nodes = self.features(train + others)
        if len(nodes) < 3:
            return
        self.graph = LabelSpreading(E)
        self._node = {p: i for i, p in enumerate(nodes)}
        seeds = [(self._node[p], labels.train[p]) for p in train if p in self._node]
        index, y = np.array([s[0] for s in seeds]), np.array([s[1] for s in seeds])
        self.graph.spread(index, y, self.num_classes)
        self.weight = choose_weight(*zip(*self.records, strict=True)) if self.records else 0.0

    def probs(self, paths) -> np.ndarray | None:
        """The graph's soft labels of ``paths`` (its nodes', or a vote for the others); None: no graph."""
        if self.graph is None or self.graph.P is None or not len(paths):
            return None
        out = np.zeros((len(paths), self.num_classes))
        inside = [i for i, p in enumerate(paths) if p in self._node]
        if inside:
            out[inside] = self.graph.P[[self._node[paths[i]] for i in inside]]
        outside = [i for i, p in enumerate(paths) if p not in self._node]
        if outside:
            E, ok = self.features([paths[i] for i in outside])
            voted = dict(zip(ok, self.graph.vote(E), strict=True)) if ok else {}
            for i in outside:
                out[i] = voted.get(paths[i], np.full(self.num_classes, 1.0 / self.num_classes))
        return out

    def blend(self, paths, p_network: np.ndarray) -> np.ndarray:
        """The classifier's probabilities: the network's, blended with the graph's by ``weight``."""
        if self.weight == 0 or not len(paths):
            return p_network
        return blend(p_network, self.probs(paths), self.weight)

    def blend_one(self, p_network: np.ndarray, p_graph: np.ndarray | None) -> np.ndarray:
        """One image's blend by today's weight (``p_graph`` None: the network's)."""
        return blend(p_network, p_graph, self.weight)

    def blend_features(self, E: np.ndarray, p_network: np.ndarray) -> np.ndarray:
        """``blend`` for images outside the pool, given their ``features_of``."""
        if self.weight == 0 or self.graph is None or self.graph.P is None or not len(E):
            return p_network
        return blend(p_network, self.graph.vote(E), self.weight)

    def first_sight(self, path: str, p_network: np.ndarray, k: int) -> np.ndarray | None:
        """A new label (class ``k``) before the model learns it: the graph's probabilities (None: no
        graph yet), recorded with the network's for the choice of the weight."""
        p_graph = self.probs([path])
        if p_graph is None:
            return None
        self.records.append((float(p_network[k]), float(p_graph[0][k])))
        del self.records[: -4 * WINDOW]  # choose_weight reads the latest WINDOW
        return p_graph[0]


class _Space:
    """One feature space: a PCA (fitted on a random sample of the pool) of pixels or of embeddings,
    and the features of the paths seen so far."""

    def __init__(self, pool, source, rng):
        self.pool, self.source = pool, source
        sample = list(pool.paths)
        if len(sample) > PCA_SAMPLE:
            sample = [sample[i] for i in rng.choice(len(sample), PCA_SAMPLE, replace=False)]
        raw, _ = self._raw(sample)
        self.pca = Pca(raw) if len(raw) else None
        self.cache: dict[str, np.ndarray] = {}

    def _raw(self, paths) -> tuple[np.ndarray, list[str]]:
        if self.source is not None:
            return self.source.vectors(paths)
        X, loaded = self.pool.arrays(paths)
        return (shrink(X) if len(loaded) else np.zeros((0, 1), np.float32)), loaded

    def of(self, paths) -> tuple[np.ndarray, list[str]]:
        missing = [p for p in paths if p not in self.cache]
        for i in range(0, len(missing) if self.pca is not None else 0, FEATURE_CHUNK):
            raw, loaded = self._raw(missing[i : i + FEATURE_CHUNK])
            if loaded:
                self.cache.update(zip(loaded, self.pca(raw), strict=True))
        ok = [p for p in paths if p in self.cache]
        E = np.stack([self.cache[p] for p in ok]) if ok else np.zeros((0, 1), np.float32)
        return E, ok
