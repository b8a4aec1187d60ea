"""The online model and how it learns: build (or reload), one gradient step on a batch, predictions.

In frozen-backbone mode (``frozen.FrozenMode``) training, predictions, MC dropout and embeddings run
the small head over cached embeddings; ``inputs(paths)`` then returns embeddings, and whatever it
returns is what ``fit``/``forward``/``mc_probs`` take. ``model`` stays the full model either way (saved,
reloaded, used by the final fit). Not thread-safe: the trainer calls it under its lock.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..workdir import CACHE_DIR
from .augment import shift
from .frozen import FrozenMode
from .pseudo import WEIGHT, PseudoLabels

log = logging.getLogger(__name__)

#: Images per forward pass when predicting, so memory stays bounded on big pools.
PREDICT_BATCH = 256
#: Embeddings per forward pass of the head in frozen-backbone mode (8192 x 1280 float32 = 42 MB): the
#: head is tiny, so per-call overhead would dominate with image-sized batches.
HEAD_BATCH = 8192


class TrainingError(Exception):
    """The model cannot be used until Retry; the message says what to fix (labels are always kept)."""


def model_fn_name(model_fn) -> str:
    name = getattr(model_fn, "__name__", "model_fn")
    return "model_fn" if name == "<lambda>" else name


class Learner:
    def __init__(self, pool, label_names, config, workdir, devices):
        self.pool = pool
        self.label_names = list(label_names)
        self.config = config
        self.devices = devices
        self.model = None
        self.frozen = FrozenMode(pool, config.frozen_backbone, workdir / CACHE_DIR, devices)
        self._rng = np.random.default_rng(config.seed)
        #: Every path that has been in a training batch (never a test path).
        self.trained_paths: set[str] = set()
        self._embed_model = self._embed_for = None
        #: The unlabelled pool's confident predictions, a down-weighted part of every batch (``pseudo``).
        self.pseudo = PseudoLabels(config)

    # --- building ------------------------------------------------------------------------------
    def build(self, model_fn, resume=None) -> str:
        """A model from ``resume`` (a saved .keras that fits) or ``model_fn``; returns a note.

        Raises ``TrainingError`` when ``model_fn`` fails or builds a model that does not fit.
        """
        from . import models
        from .devices import limit_threads
        from .quiet_tf import import_tensorflow

        import_tensorflow()  # the slow part; its C++ start-up lines kept off the notebook

        # Before the first operation: a core stays free for the keys.
        limit_threads(self.config.tf_threads, distributed=self.config.distribute is not None)
        shape, n = self.config.input_shape, len(self.label_names)
        note, model = "", None
        if resume is not None and resume.exists():
            try:
                with self.devices.scope():
                    model = models.reload_model(resume)
                models.check_model(model, n, shape, source=f"the saved model {resume}")
                note = f"continuing from {resume}"
            except Exception as e:
                model = None
                note = f"could not continue from {resume} ({e}); training a new model"
                log.warning(note)
        if model is None:
            model = self.new_model(model_fn)
        self.model = model
        try:
            frozen_note = self.frozen.setup(model)
        except ValueError as e:
            raise TrainingError(
                f"{e}. Labels are kept: set frozen_backbone='auto' or fix the model_fn, and press Retry"
            ) from e
        return "; ".join(filter(None, (note, frozen_note)))

    def new_model(self, model_fn):
        """A checked model from ``model_fn`` (default: the small CNN), built on this device setup."""
        from . import models

        model_fn = model_fn or models.default_model_fn
        name = model_fn_name(model_fn)
        shape, n = self.config.input_shape, len(self.label_names)
        try:
            with self.devices.scope():  # a user's tf.distribute strategy: variables mirrored per device
                model = model_fn(n, shape)
        except Exception as e:
            raise TrainingError(
                f"{name} raised {type(e).__name__}: {e}. Labels are kept: fix {name} and press Retry"
            ) from e
        try:
            models.check_model(model, n, shape, source=name)
        except Exception as e:
            raise TrainingError(f"{e}. Labels are kept: fix {name} and press Retry") from e
        return model

    # --- what the model in use takes ------------------------------------------------------------
    def head(self):
        """The head in frozen-backbone mode, else None."""
        return self.frozen.head_for(self.model) if self.model is not None else None

    @property
    def frozen_backbone(self) -> bool:
        return self.frozen.active_for(self.model)

    def _in_use(self):
        return self.head() or self.model

    def inputs(self, paths, stored: bool = False) -> tuple[np.ndarray, list[str]]:
        """Images, or in frozen-backbone mode embeddings (computed now when missing), of the paths that
        load. ``stored``: embeddings in their stored dtype (float16), cast on the device by ``forward``."""
        if self.head() is None:
            return self.pool.arrays(paths)
        from .frozen import EMBEDDING_DTYPE

        return self.frozen.embeddings.vectors(paths, dtype=EMBEDDING_DTYPE if stored else np.float32)

    def embed_ahead(self, paths, progress=None) -> None:
        """Frozen-backbone mode: embed the missing ones of many paths at once (``progress(done, total)``)."""
        if self.head() is None:
            return
        missing = self.frozen.embeddings.missing(paths)
        if missing:
            self.frozen.embeddings.vectors(missing, progress=progress)

    @property
    def predict_batch(self) -> int:
        return HEAD_BATCH if self.head() is not None else PREDICT_BATCH

    # --- learning --------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """One gradient step on a batch of ``inputs`` (``weights``: per image); returns the loss."""
        n = len(X)
        X, y = self.devices.pad(X, y)
        if weights is not None and len(X) > n:  # the repeated rows keep their weights
            weights = np.concatenate([weights, weights[np.arange(len(X) - n) % n]])
        return float(self._in_use().train_on_batch(X, y, sample_weight=weights, return_dict=True)["loss"])

    def step(self, labels) -> bool:
        """One step on a batch drawn from ALL training labels (fresh ones first: a new label is in the
        next step). False when nothing could load. Raises ``TrainingError`` for a failed step or a
        non-finite loss."""
        paths = list(labels.train)
        size = min(self.config.batch_size, len(paths))
        picks = self._rng.choice(len(paths), size=size, replace=False, p=self.batch_weights(labels))
        fresh = labels.fresh(size)
        taken = set(fresh)
        chosen = fresh + [p for p in (paths[i] for i in picks) if p not in taken][: size - len(fresh)]
        X, loaded = self.inputs(chosen)
        unreadable = set(chosen) - set(loaded)
        if unreadable:  # the pool recorded why in pool.skipped; keep them out of every later batch
            labels.drop_unreadable(unreadable)
            log.warning("dropped %d image(s) from training: they could not be decoded", len(unreadable))
        if not loaded:
            return False
        y = np.array([labels.train[p] for p in loaded], dtype="int64")
        X, y, weights = self._with_pseudo(X, y, labels)
        if self.config.augment and self.head() is None and X.ndim == 4:
            X = shift(X, self._rng)  # a weak view of each image: the class does not move with it
        try:
            loss = self.fit(X, y, weights)
        except Exception as e:
            raise TrainingError(
                f"a training step failed: {type(e).__name__}: {e}. Labels are kept; "
                "check model_fn (loss, input shape) and press Retry"
            ) from e
        self.trained_paths.update(loaded)
        labels.trained(loaded)
        if not math.isfinite(loss):
            raise TrainingError(
                f"the training loss became {loss} with {len(labels.train)} labels. Labels are kept; "
                "lower the learning rate in model_fn (or check the images) and press Retry"
            )
        return True

    def _with_pseudo(self, X, y, labels):
        """The batch with a pseudo-labelled part appended (``pseudo``), and per-image weights (None: no
        pseudo-labels)."""
        paths, classes = self.pseudo.batch(labels)
        if not paths:
            return X, y, None
        Xp, loaded = self.inputs(paths)
        if not loaded:
            return X, y, None
        keep = set(loaded)
        yp = classes[[i for i, p in enumerate(paths) if p in keep]]
        self.pseudo.used.update(loaded)
        weights = np.concatenate([np.ones(len(y)), np.full(len(yp), WEIGHT)]).astype("float32")
        return np.concatenate([X, Xp.astype(X.dtype)]), np.concatenate([y, yp]), weights

    def batch_weights(self, labels) -> np.ndarray | None:
        """With ``class_balance``, each class gets the same share of every batch (None: uniform)."""
        if not self.config.class_balance or len(labels.train) < 2:
            return None
        y = np.fromiter(labels.train.values(), dtype=np.int64, count=len(labels.train))
        w = 1.0 / np.bincount(y)[y]
        return w / w.sum()

    # --- predicting --------------------------------------------------------------------------------
    def forward(self, X: np.ndarray) -> np.ndarray:
        """Probabilities for one batch of ``inputs``."""
        return self.devices.predictor(self._in_use())(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        step = self.predict_batch
        chunks = [np.asarray(self.forward(X[i : i + step])) for i in range(0, len(X), step)]
        return np.concatenate(chunks).astype("float64") if chunks else np.zeros((0, len(self.label_names)))

    def predict_paths(self, paths, progress=None) -> tuple[np.ndarray, list[str]]:
        """Probabilities of the paths that load, chunk by chunk (bounded memory), and those paths."""
        self.embed_ahead(paths, progress)
        probs, scored = [], []
        step = self.predict_batch
        for i in range(0, len(paths), step):
            X, loaded = self.inputs(paths[i : i + step], stored=True)
            if loaded:
                probs.append(self.predict(X))
                scored.extend(loaded)
        if not probs:
            return np.zeros((0, len(self.label_names))), []
        return np.concatenate(probs), scored

    def mc_probs(self, paths, passes: int) -> np.ndarray:
        """(passes, n, k) Monte-Carlo dropout probabilities (only dropout random), on the head when frozen."""
        from .mc_dropout import mc_probabilities

        out = []
        for i in range(0, len(paths), PREDICT_BATCH):
            X, _ = self.inputs(paths[i : i + PREDICT_BATCH])
            out.append(mc_probabilities(self._in_use(), X, passes))
        return np.concatenate(out, axis=1) if out else np.zeros((passes, 0, len(self.label_names)))

    def embeddings(self, paths) -> np.ndarray:
        """(n, d) embeddings for diversity: the cached ones in frozen-backbone mode, else the model's
        ``embedding`` (or penultimate) layer."""
        if self.head() is not None:
            return self.frozen.embeddings.vectors(paths)[0].astype("float64")
        from . import models

        if self._embed_for is not self.model:  # rebuilt when the model was replaced
            self._embed_model, self._embed_for = models.embedding_model(self.model), self.model
        out = []
        for i in range(0, len(paths), PREDICT_BATCH):
            X, _ = self.pool.arrays(paths[i : i + PREDICT_BATCH])
            out.append(np.asarray(self._embed_model.predict_on_batch(X)).reshape(len(X), -1))
        return np.concatenate(out).astype("float64") if out else np.zeros((0, 1))
