"""The trainer's graph of images: feature spaces, label spreading over a query's candidates and the
labelled images, and the blend of its soft labels with the network's probabilities.

Spaces: a PCA of the pixels (fitted once on a random sample of the pool); the codes of an autoencoder
learned from the pool's own images in the trainer's idle time (``representation``, when
``Config.representation`` is on and it has finished); the network's own embedding (from
``NETWORK_FROM`` training labels on, recomputed at every query); in frozen-backbone mode a PCA of the
backbone's embeddings, which stays the only space. A graph is built in every space at every query; each
new training label is scored by each graph BEFORE the model learns from it, and the graph that blends is
the one whose space best predicted the latest of those labels (prequential log-likelihood); without that
evidence, the space the cold start uses (``pixel_features``). Where a learned space does not win, the
pixels keep deciding.

The graph is rebuilt at every query over the labelled training images and the images the query scores
(at most ``MAX_NODES``: with ``query_sample=0`` on a large pool a random part of them, the others get
their neighbours' vote; features a chunk at a time). The blend weight is the one that best predicted
the latest labels (``al.propagation.choose_weight``), so where the graph does not help its weight is 0
and the network alone decides.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..al.coldstart import Pca, shrink
from ..al.propagation import MIN_RECORDS, WINDOW, LabelSpreading, blend, choose_weight
from .representation import PoolAutoencoder, small

#: Images the PCA is fitted on (a random sample of the pool).
PCA_SAMPLE = 2000
#: At most this many nodes in a graph (the labelled images first, then a random part of the query's):
#: a dense graph, milliseconds to spread; the images outside it get their neighbours' vote.
MAX_NODES = 4096
#: Images whose features are computed at once (bounded memory when a query scores the whole pool).
FEATURE_CHUNK = 2048
#: Training labels from which the network's embedding is a candidate space (after the cold start).
NETWORK_FROM = 30


class GraphBlend:
    def __init__(
        self, pool, learner, label_names, seed: int, enabled: bool = True, learned: bool | None = None
    ):
        """``learned``: learn the pool's representation (None: as the learner's ``config`` says)."""
        self.pool, self.learner, self.enabled = pool, learner, enabled
        if learned is None:
            learned = bool(getattr(getattr(learner, "config", None), "representation", False))
        self.num_classes = len(label_names)
        self._rng = np.random.default_rng((seed, 2))
        self._spaces: dict[str, _Space] = {}
        #: The autoencoder learned from the pool (``Config.representation``), trained by the idle work.
        self.representation = PoolAutoencoder(pool, seed) if learned else None
        self.learned = learned  # off: the pixels (or a frozen backbone) are the only space
        self._graphs: dict[str, tuple[LabelSpreading, dict[str, int]]] = {}
        self._network: _Network | None = None  # the network's embedding, new at every rebuild
        #: The latest ``features_of``: (features given, X, embedded, their space, features in it now).
        self._outside: tuple | None = None
        #: The space whose graph blends (chosen at each rebuild).
        self.space = "pixels"
        self.graph: LabelSpreading | None = None
        self._node: dict[str, int] = {}
        self.weight = 0.0
        #: (the network's probability of the true class, the blending graph's) at each first sight.
        self.records: list[tuple[float, float]] = []
        #: space -> (the network's, its graph's probability of the true class) at each first sight.
        self.space_records: dict[str, list[tuple[float, float]]] = {}

    # --- features ---------------------------------------------------------------------------------
    def _frozen(self):
        return self.learner.frozen.embeddings if self.learner.head() is not None else None

    def learned_ready(self) -> bool:
        """The pool's own representation has been learned (and is not overruled by a frozen backbone)."""
        rep = self.representation
        return rep is not None and rep.ready and self._frozen() is None

    def pixel_features(self, paths) -> tuple[np.ndarray, list[str]]:
        """(n, d) features of the paths that load, and those paths, that need no label: the codes of the
        representation learned from the pool once it is ready, else a PCA of the pixels (cached)."""
        return self._space("learned" if self.learned_ready() else "pixels").of(paths)

    def unseen_features(self, paths) -> tuple[np.ndarray, list[str]]:
        """The space to seek a class with no label in: the cold start's (``pixel_features``; the
        network's embedding has never seen the class either), or in frozen-backbone mode the
        backbone's embeddings (the only space there: no image is decoded)."""
        return self.features(paths) if self._frozen() is not None else self.pixel_features(paths)

    def features(self, paths) -> tuple[np.ndarray, list[str]]:
        """The best space available: the frozen backbone's embeddings in frozen-backbone mode, else the
        space whose graph best predicted the latest labels (``space``)."""
        return self._space(self._active()).of(paths)

    def features_of(self, X: np.ndarray, embedded: np.ndarray | None = None) -> np.ndarray:
        """The graph's features of images given as arrays, not in the pool (``simulate``'s oracle);
        in frozen-backbone mode of their backbone embeddings ``embedded``."""
        name = self._active()
        space = self._space(name)
        if space.pca is None:
            return np.zeros((len(X), 1), np.float32)
        E = self._features_of(name, space, X, embedded)
        self._outside = (E, X, embedded, space, E)  # ``blend_features`` redoes them if the space changes
        return E

    def _features_of(self, name: str, space: _Space, X: np.ndarray, embedded) -> np.ndarray:
        assert space.pca is not None
        if name == "backbone":
            if embedded is None:
                embedded = np.asarray(space.source.backbone.predict_on_batch(X))
            return space.pca(np.asarray(embedded, np.float32).reshape(len(X), -1))
        if name == "learned":
            return space.pca(np.asarray(space.source.encoder.predict_on_batch(small(X)), np.float32))
        if name == "network":
            return space.source.arrays(X)
        return space.pca(shrink(X))

    def _active(self) -> str:
        return "backbone" if self._frozen() is not None else self.space

    def _space(self, name: str) -> _Space:
        sources = {"pixels": None, "learned": self.representation, "backbone": self._frozen()}
        source = sources.get(name, self._network)
        space = self._spaces.get(name)
        if space is None or space.source is not source:
            space = self._spaces[name] = _Space(self.pool, source, self._rng, fit=name != "network")
        return space

    def _candidates(self, n_train: int) -> list[str]:
        if self._frozen() is not None:
            return ["backbone"]
        names = ["pixels"] + (["learned"] if self.learned_ready() else [])
        return names + (["network"] if n_train >= NETWORK_FROM and self._network is not None else [])

    def _choose(self, names: list[str]) -> str:
        """The space whose graph, blended with the network at its best weight, gave the latest first-sight
        labels the highest mean log-probability (a graph that only repeats the network adds nothing);
        without enough evidence for two spaces, the cold start's."""
        default = "learned" if "learned" in names else names[0]
        scores = {
            n: self.space_records[n] for n in names if len(self.space_records.get(n, ())) >= 2 * MIN_RECORDS
        }
        if len(scores) < 2:
            return default if default in scores or not scores else next(iter(scores))
        n = min(WINDOW, *(len(r) for r in scores.values()))  # the same latest labels for every space
        mean = {}
        for name, r in scores.items():
            net, graph = (np.asarray(v, dtype=float) for v in zip(*r[-n:], strict=True))
            w = choose_weight(net, graph)
            mean[name] = float(np.mean(np.log(w * graph + (1 - w) * net + 1e-4)))
        return max(mean, key=lambda k: (mean[k], k == default))

    # --- the graph -------------------------------------------------------------------------------
    def rebuild(self, candidates, labels) -> None:
        """Graphs over the labelled training images and ``candidates`` in each space, spread from their
        labels; the best space's blends."""
        if not self.enabled:
            return
        train = list(labels.train)
        if len(train) < 2:
            return
        others = [p for p in candidates if p not in labels.train]
        room = max(0, MAX_NODES - len(train))
        if len(others) > room:  # query_sample=0 on a large pool: a random part of it
            others = [others[i] for i in sorted(self._rng.choice(len(others), room, replace=False))]
        network = self.learned and self.learner.model is not None and self._frozen() is None
        if network and len(train) >= NETWORK_FROM:
            self._network = _Network(self.pool, self.learner)  # the network has changed since the last
        self._graphs = {}
        names = self._candidates(len(train))
        for name in names:
            E, nodes = self._space(name).of(train + others)
            if len(nodes) < 3:
                continue
            graph, node = LabelSpreading(E), {p: i for i, p in enumerate(nodes)}
            seeds = [(node[p], labels.train[p]) for p in train if p in node]
            graph.spread(np.array([s[0] for s in seeds]), np.array([s[1] for s in seeds]), self.num_classes)
            self._graphs[name] = (graph, node)
        if not self._graphs:
            return
        self.space = self._choose([n for n in names if n in self._graphs])
        self.graph, self._node = self._graphs[self.space]
        self.weight = choose_weight(*zip(*self.records, strict=True)) if self.records else 0.0

    def probs(self, paths, space: str | None = None) -> np.ndarray | None:
        """The graph's soft labels of ``paths`` (its nodes', or a vote for the others); None: no graph.
        ``space``: that space's graph instead of the blending one."""
        graph, node = self._graphs.get(space, (None, {})) if space else (self.graph, self._node)
        if graph is None or graph.P is None or not len(paths):
            return None
        out = np.zeros((len(paths), self.num_classes))
        inside = [i for i, p in enumerate(paths) if p in node]
        if inside:
            out[inside] = graph.P[[node[paths[i]] for i in inside]]
        outside = [i for i, p in enumerate(paths) if p not in node]
        if outside:
            E, ok = self._space(space or self._active()).of([paths[i] for i in outside])
            voted = dict(zip(ok, graph.vote(E), strict=True)) if ok else {}
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
        if self._outside is not None and self._outside[0] is E:  # a caller may keep them for good
            key, X, embedded, space, current = self._outside
            active = self._space(self._active())
            if space is not active and active.pca is not None:  # the features of another space: again
                current = self._features_of(self._active(), active, X, embedded)
                self._outside = (key, X, embedded, active, current)
            E = current
        return blend(p_network, self.graph.vote(E), self.weight)

    def first_sight(self, path: str, p_network: np.ndarray, k: int) -> np.ndarray | None:
        """A new label (class ``k``) before the model learns it: the blending graph's probabilities
        (None: no graph yet), recorded with the network's for the choice of the weight, and every
        space's for the choice of the space."""
        p_graph = self.probs([path])
        if p_graph is None:
            return None
        for name in self._graphs:
            p = p_graph if name == self.space else self.probs([path], name)
            if p is not None:
                kept = self.space_records.setdefault(name, [])
                kept.append((float(p_network[k]), float(p[0][k])))
                del kept[: -4 * WINDOW]
        self.records.append((float(p_network[k]), float(p_graph[0][k])))
        del self.records[: -4 * WINDOW]  # choose_weight reads the latest WINDOW
        return p_graph[0]


class _Space:
    """One feature space: a PCA (fitted on a random sample of the pool) of pixels or of a source's
    vectors (``fit=False``: the vectors as they are), and the features of the paths seen so far."""

    def __init__(self, pool, source, rng, fit: bool = True):
        self.pool, self.source = pool, source
        self.pca: Callable[[np.ndarray], np.ndarray] | None = _identity
        if fit:
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
        pca = self.pca
        for i in range(0, len(missing) if pca is not None else 0, FEATURE_CHUNK):
            raw, loaded = self._raw(missing[i : i + FEATURE_CHUNK])
            if loaded and pca is not None:
                self.cache.update(zip(loaded, pca(raw), strict=True))
        ok = [p for p in paths if p in self.cache]
        E = np.stack([self.cache[p] for p in ok]) if ok else np.zeros((0, 1), np.float32)
        return E, ok


class _Network:
    """The network's own embedding (its layer named "embedding", else the penultimate) as a source."""

    def __init__(self, pool, learner):
        from . import models

        self.pool, self.model = pool, models.embedding_model(learner.model)

    def arrays(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(X), np.float32).reshape(len(X), -1)

    def vectors(self, paths) -> tuple[np.ndarray, list[str]]:
        X, loaded = self.pool.arrays(paths)
        return (self.arrays(X) if loaded else np.zeros((0, 1), np.float32)), loaded


def _identity(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, np.float32)
