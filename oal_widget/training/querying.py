"""A query: score (a sample of) the unlabelled pool with the live model and order it for the person.

The order is a permutation of the candidates (pool images neither labelled nor in the test split): the
ranked sample, then the unscored rest shuffled, then images that failed to decode. Unlabelled test
images get a prediction (the panel shows it) but are not ranked. The probabilities are the network's
blended with label spreading over the query's graph (``graph``). An adaptive strategy (the bandit)
draws an arm per query; the arm is credited at the next evaluation with the accuracy gain measured on
the images the last evaluation used (the same images before and after).

Seeking the short classes (``al.balance``): part of each order (``seek_share`` at most, falling as
the classes fill) goes to the classes with fewest training labels: the images most probable of a class
the model thinks rare (the network's probabilities averaged with label spreading's, which reaches a
rare class's neighbours from one label), or for a class with no label yet the images farthest from
every label in the cold start's space (k-center greedy). Never with the ``random`` strategy: random
order stays the reference.

The cold start: a model's uncertainty means nothing before it has seen a few labels, so the first
``typical_start`` training labels are the most typical image of as many clusters of the pixels'
PCA (TypiClust), largest cluster first; they lead every order until they are labelled.
"""

from __future__ import annotations

import numpy as np

from ..al import get_strategy, needs_mc_samples, rank
from ..al.adaptive import AdaptiveStrategy
from ..al.balance import farthest_first, interleave, seek_picks
from ..al.coldstart import typiclust
from .evaluation import accuracy_on

RANDOM = get_strategy("random")


class Querier:
    def __init__(self, config, label_names):
        self.config = config
        self.label_names = list(label_names)
        self.queries = 0
        self.strategy = None  # resolved at the first query: a fresh bandit per trainer
        #: (arm, path -> correct at the last evaluation before the query) of each draw not credited yet.
        self.pending: list = []
        #: The cold start's picks (``first_order``), in order; labelled ones are skipped.
        self.typical: list[str] = []
        #: (paths, probabilities) of the candidates the latest query scored (never a test image).
        self.scored: tuple[list[str], np.ndarray] = ([], np.zeros((0, len(self.label_names))))

    def query(self, learner, graph, pool_paths, labels, last_correct=None, progress=None):
        """(order, predictions): the candidates in the order to ask, and path -> (label, confidence)."""
        candidates, unlabelled_test = self._split(pool_paths, labels)
        # Large pools: score a bounded random sample; the rest follows unscored.
        candidates, rest = self._sample(candidates)
        # Test images only get a prediction to show; a tenth of the sample is plenty between queries.
        unlabelled_test, _ = self._sample(unlabelled_test, max(1, self.config.query_sample // 10))
        probs, scored = learner.predict_paths(candidates, progress)
        test_probs, test_scored = learner.predict_paths(unlabelled_test, progress)
        graph.rebuild(scored, labels)
        probs, test_probs = graph.blend(scored, probs), graph.blend(test_scored, test_probs)
        self.scored = (scored, probs)
        rng = np.random.default_rng(self.config.seed + self.queries)
        self.queries += 1
        strategy = self._choose(rng, labels, last_correct)
        ranked = rank(
            scored,
            probs,
            strategy,
            self.config.policy,
            rng,
            epsilon=self.config.epsilon,
            **self._inputs(strategy, learner, scored),
        )
        if get_strategy(strategy) is not RANDOM:  # random order stays random (a person's reference)
            ranked = self._seek(ranked, graph, scored, probs, labels, len(candidates) + len(rest))
        scored_set = set(scored)
        order = self._typical_first(
            labels, list(ranked) + rest + [p for p in candidates if p not in scored_set]
        )
        predictions = {}
        names = np.array(self.label_names, dtype=object)
        for paths, p in ((scored, probs), (test_scored, test_probs)):
            if len(paths):  # vectorised: tolist() gives plain str/float (JSON-safe) in one call each
                best = np.argmax(p, axis=1)
                confidence = p[np.arange(len(p)), best].astype(float).tolist()
                predictions.update(
                    zip(paths, zip(names[best].tolist(), confidence, strict=True), strict=True)
                )
        return tuple(order), predictions

    # --- seeking the classes with fewest labels --------------------------------------------------------
    def _seek(self, ranked, graph, scored, probs, labels, n_candidates: int) -> list[str]:
        """``ranked`` with the short classes' picks (``al.balance``) moved in at their share."""
        share = self.config.seek_share
        if share <= 0 or not scored:
            return list(ranked)
        counts = np.bincount(
            np.fromiter(labels.train.values(), dtype=np.int64), minlength=len(self.label_names)
        )
        p_graph = graph.probs(scored)  # label spreading finds a rare class's neighbours from one label
        p = probs if p_graph is None else (probs + p_graph) / 2

        limit = int(np.ceil(share * 3 * self.config.query_every))

        def regions() -> list[int]:
            E, loaded = graph.unseen_features(scored)
            E_train, _ = graph.unseen_features(list(labels.train))
            index = {path: i for i, path in enumerate(scored)}
            rows = [index[path] for path in loaded]
            return [rows[i] for i in farthest_first(E, E_train, limit)]

        picks, weight = seek_picks(p, counts, n_candidates, limit, regions)
        return interleave(list(ranked), [scored[i] for i in picks], share * weight)

    # --- the cold start --------------------------------------------------------------------------------
    def wants_first_order(self, labels) -> bool:
        return not self.typical and len(labels.train) < self.config.typical_start

    def first_order(self, graph, pool_paths, labels) -> tuple[str, ...]:
        """TypiClust's picks over (a sample of) the candidates, then the others shuffled; no model is
        needed. Empty when there are too few images to cluster."""
        candidates, _ = self._split(pool_paths, labels)
        sample, rest = self._sample(candidates)
        E, loaded = graph.pixel_features(sample)
        k = self.config.typical_start - len(labels.train)
        if len(loaded) < 2 * k:
            return ()
        self.typical = [loaded[i] for i in typiclust(E, k, self.config.seed)]
        picked = set(self.typical)
        others = [p for p in sample if p not in picked] + rest
        np.random.default_rng((self.config.seed, 3)).shuffle(others)
        return tuple(self.typical + others)

    def _typical_first(self, labels, order: list[str]) -> list[str]:
        """The cold start's unlabelled picks lead the order until ``typical_start`` training labels."""
        if len(labels.train) >= self.config.typical_start or not self.typical:
            return order
        keep = set(order)
        first = [p for p in self.typical if p in keep]
        keep = set(first)
        return first + [p for p in order if p not in keep]

    def _split(self, pool_paths, labels) -> tuple[list[str], list[str]]:
        """(candidates, unlabelled test images) in one pass: this runs over 100,000 paths per query."""
        candidates, unlabelled_test = [], []
        train, test, test_paths = labels.train, labels.test, labels.test_paths
        for p in pool_paths:
            if p in test_paths:
                if p not in test:
                    unlabelled_test.append(p)
            elif p not in train and p not in test:
                candidates.append(p)
        return candidates, unlabelled_test

    def credit(self, correct_now: dict[str, bool]) -> None:
        """Reward every pending arm with the accuracy gain on the images its baseline was measured on."""
        pending, self.pending = self.pending, []
        for arm, before in pending:
            then, now = accuracy_on(before, before), accuracy_on(correct_now, before)
            if then is not None and now is not None:
                self.strategy.reward(arm, now - then)

    # --- the strategy of this query ----------------------------------------------------------------
    def _choose(self, rng, labels, last_correct):
        """``random`` during the cold start, else the configured strategy (an adaptive one draws an arm)."""
        if self.strategy is None:
            self.strategy = get_strategy(self.config.strategy)
        if self.in_cold_start(labels):
            return "random"
        if isinstance(self.strategy, AdaptiveStrategy):
            arm = self.strategy.choose(rng)
            if last_correct:
                self.pending.append((arm, dict(last_correct)))
            return arm.strategy
        return self.strategy

    def in_cold_start(self, labels) -> bool:
        """Random order until every class has ``cold_start`` training labels; capped at 3x that per class
        overall, so a rare class cannot keep the session random for ever."""
        per_class = self.config.cold_start
        if per_class <= 0:
            return False
        k = len(self.label_names)
        if len(labels.train) >= 3 * per_class * k:
            return False
        counts = np.bincount(np.fromiter(labels.train.values(), dtype=np.int64), minlength=k)
        return bool(counts.min() < per_class)

    def _inputs(self, strategy, learner, paths) -> dict:
        """Extra inputs only when used: MC-dropout passes for BALD-like strategies, embeddings for kcenter."""
        inputs: dict = {}
        if self.config.diversity != "none":
            inputs.update(diversity=self.config.diversity, batch=self.config.query_every)
        if self.config.policy in ("power", "softmax"):
            inputs["temperature"] = self.config.temperature
        if not paths:
            return inputs
        if needs_mc_samples(get_strategy(strategy)):
            inputs["mc_probs"] = learner.mc_probs(paths, self.config.mc_samples)
        if self.config.diversity == "kcenter":
            inputs["embeddings"] = learner.embeddings(paths)
        return inputs

    def _sample(self, paths: list[str], limit: int | None = None) -> tuple[list[str], list[str]]:
        """(a random sample of at most ``query_sample`` paths to score, the others shuffled).

        Like baal's ``max_sample``: scoring 100,000 images on every query would take far longer than
        the labels it re-orders; a fresh sample each query still reaches every image over time.
        """
        limit = self.config.query_sample if limit is None or self.config.query_sample == 0 else limit
        if limit == 0 or len(paths) <= limit:
            return paths, []
        rng = np.random.default_rng((self.config.seed, self.queries, len(paths)))
        picked = rng.permutation(len(paths))
        return [paths[i] for i in picked[:limit]], [paths[i] for i in picked[limit:]]
