"""Frozen-backbone mode: embed every image once, train and query the small head on cached embeddings.

With ``transfer_model_fn`` almost all the compute is the frozen backbone, and its output for an image
never changes. So the model is split at its layer named ``"embedding"``: the *backbone* (input ->
embedding) runs once per image, its outputs are kept in a memory-mapped file in ``<workdir>/cache``
(reused by the next session), and the *head* (embedding -> probabilities) is a model made of the SAME
layer objects as the full model: a gradient step on the head changes the full model, which stays the
model that is evaluated by others, saved as ``model.keras`` and reloaded. A step then costs
milliseconds and a query over 100,000 images is a pass of the head over 100,000 short vectors.

The split is only valid when the backbone part is a pure function of the image: every layer up to
``embedding`` has no trainable weight and none is random at training time (Dropout, noise,
augmentation). ``frozen_reason`` says why a model does not qualify. Knows nothing of widgets;
imports Keras lazily.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..data.cache import FILLED, ArrayCache, fingerprint, remove_stale

log = logging.getLogger(__name__)

#: Embeddings are stored as float16: half the disk and page cache of float32 (100,000 x 1280 values
#: take 256 MB), and the head does not notice the rounding (about 1e-3 relative).
EMBEDDING_DTYPE = np.dtype("float16")
#: Images per backbone forward pass.
EMBED_BATCH = 128
#: Layer class names that are random at training time: an embedding cached once would not match.
_RANDOM_LAYERS = ("Dropout", "Noise", "Random")


def _sublayers(layer) -> list:
    """``layer`` and, for a nested model, every layer inside it (depth first)."""
    out = [layer]
    for inner in getattr(layer, "layers", None) or ():
        if inner is not layer:
            out.extend(_sublayers(inner))
    return out


def _embedding_index(model) -> int | None:
    names = [layer.name for layer in model.layers]
    return names.index("embedding") if "embedding" in names else None


def frozen_reason(model) -> str | None:
    """Why ``model`` cannot run in frozen-backbone mode, or None when it can."""
    index = _embedding_index(model)
    if index is None:
        return "it has no layer named 'embedding' (the frozen feature extractor's output)"
    if len(model.inputs) != 1:
        return "it has more than one input"
    for layer in model.layers[: index + 1]:
        for inner in _sublayers(layer):
            if inner.trainable_weights:
                return f"layer {inner.name!r} before 'embedding' has trainable weights"
            kind = type(inner).__name__
            if any(word in kind for word in _RANDOM_LAYERS):
                return f"layer {inner.name!r} ({kind}) before 'embedding' is random while training"
    if not model.trainable_weights:
        return "it has no trainable weights after 'embedding'"
    return None


def split(model):
    """(backbone: input -> embedding, head: embedding -> output) sharing ``model``'s layer objects.

    The head's trainable weights ARE the full model's: training the head trains the full model.
    The head is compiled with the full model's optimizer (its state carries over both ways) and
    loss. Raises ValueError saying why when ``frozen_reason(model)`` is not None.
    """
    import keras

    reason = frozen_reason(model)
    if reason is not None:
        raise ValueError(f"the model cannot use frozen-backbone mode: {reason}")
    embedding = model.get_layer("embedding").output
    backbone = keras.Model(model.inputs, embedding, name=f"{model.name}_backbone")
    # Keras 3 builds a model between intermediate tensors by reusing the layers in between.
    head = keras.Model(embedding, model.output, name=f"{model.name}_head")
    if {id(w) for w in head.trainable_weights} != {id(w) for w in model.trainable_weights}:
        raise ValueError(
            "the model cannot use frozen-backbone mode: its trainable weights are not all after 'embedding'"
        )
    head.compile(optimizer=model.optimizer, loss=model.loss, jit_compile=False)
    return backbone, head


def weights_digest(model) -> str:
    """A hash of a model's weights and their names: embeddings are valid only for these weights."""
    h = hashlib.sha1()
    for w in model.weights:
        h.update(str(w.path).encode())
        h.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return h.hexdigest()[:16]


class Embeddings:
    """The backbone's output for each pool image, computed at most once and kept on disk.

    File: ``<folder>/embeddings-<dim>-<hash of paths, input shape and backbone weights>.data`` (+
    ``.state``), so another session with the same folder and the same backbone weights reuses it; a
    slot records the image file's size and mtime, so an image edited in place is embedded again.
    ``computed`` counts backbone passes' images in this object (tests and benchmarks read it).
    """

    def __init__(
        self,
        pool,
        backbone,
        folder,
        predict: Callable[[np.ndarray], np.ndarray] | None = None,
        digest: str | None = None,
    ):
        self.pool = pool
        self.dim = int(np.prod(backbone.output.shape[1:]))
        self.use(backbone, predict)
        #: Hash of the backbone's weights (``weights_digest``): part of the file name.
        self.digest = digest or weights_digest(backbone)
        self.key = fingerprint(pool.paths, pool.input_shape, self.dim, self.digest)
        name = f"embeddings-{self.dim}-{self.key}"
        self.cache = ArrayCache(folder, name, len(pool.paths), (self.dim,), EMBEDDING_DTYPE)
        remove_stale(folder, "embeddings-", keep=name)  # another backbone's: useless now
        self._index = {p: i for i, p in enumerate(pool.paths)}
        self._failed: set[str] = set()
        self.computed = 0

    def use(self, backbone, predict: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """Compute further embeddings with ``backbone`` (same weights, e.g. a rebuilt model's)."""
        self.backbone = backbone
        self._predict = predict or backbone.predict_on_batch

    def missing(self, paths: Sequence[str]) -> list[str]:
        """The ``paths`` whose embedding is not cached (checked against the file), in their order."""
        return self._missing(paths, self._indices(paths))

    def _indices(self, paths: Sequence[str]) -> np.ndarray:
        """Each path's slot, -1 for a path not in the pool (one dict lookup per path, nothing else)."""
        return np.fromiter(
            map(self._index.get, paths, itertools.repeat(-1)), dtype=np.int64, count=len(paths)
        )

    def _missing(self, paths: Sequence[str], index: np.ndarray) -> list[str]:
        known = index >= 0
        ready = np.zeros(len(paths), dtype=bool)
        ready[known] = self.cache.ready(index[known])
        out = []
        # Vectorised first: after the idle prefill nearly every slot is ready and skips the Python loop.
        for j in np.flatnonzero(~ready).tolist():
            path, i = paths[j], int(index[j])
            if path in self._failed:
                continue
            if i < 0 or self.cache.check(i, _stat(self.pool.root / path)) != FILLED:
                out.append(path)
        return out

    def vectors(self, paths: Sequence[str], progress=None, dtype=np.float32) -> tuple[np.ndarray, list[str]]:
        """``(n, dim)`` embeddings (float32, or ``dtype``) of the ``paths`` that load, and those paths.

        Missing ones are computed now in batches of ``EMBED_BATCH``; ``progress(done, total)`` is
        called after each batch when there is more than one. Images that fail to decode are left out
        (the pool records why in ``.skipped``) and not tried again by this object. ``dtype=
        EMBEDDING_DTYPE`` skips the conversion (a query over 100,000 images casts on the device instead).
        """
        paths = list(paths)
        index = self._indices(paths)
        todo = self._missing(paths, index)
        if todo:
            self._compute(todo, progress)
        keep = index >= 0
        if self._failed:
            keep &= np.fromiter((p not in self._failed for p in paths), dtype=bool, count=len(paths))
        if keep.all():
            ok = paths
        else:
            ok = [paths[j] for j in np.flatnonzero(keep).tolist()]
            index = index[keep]
        out = self.cache.get(index) if ok else np.zeros((0, self.dim), EMBEDDING_DTYPE)
        return out.astype(dtype, copy=False), ok

    def _compute(self, paths: list[str], progress=None) -> None:
        total = len(paths)
        for start in range(0, total, EMBED_BATCH):
            chunk = paths[start : start + EMBED_BATCH]
            stats = {p: _stat(self.pool.root / p) for p in chunk}  # before decoding: a later edit re-embeds
            X, loaded = self.pool.arrays(chunk)
            self._failed.update(set(chunk) - set(loaded))
            if loaded:
                E = np.asarray(self._predict(X), dtype=np.float32).reshape(len(loaded), self.dim)
                self.computed += len(loaded)
                for path, e in zip(loaded, E, strict=True):
                    index = self._index.get(path)
                    if index is not None:
                        self.cache.put(index, e, stats[path])
            if progress is not None and total > EMBED_BATCH:
                progress(min(start + EMBED_BATCH, total), total)
        self.cache.flush()


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


class Prefill:
    """Walks a list of paths once, a chunk at a time, doing ``work(chunk)`` (decode, embed).

    The trainer calls ``step()`` while it has nothing else to do; the chunk size adapts so a step
    takes about ``target_s`` (a new label then waits at most that long for its training step).
    """

    def __init__(self, kind: str, paths: Sequence[str], work: Callable[[list[str]], object], target_s=0.05):
        self.kind = kind
        self.paths = list(paths)
        self.work = work
        self.target_s = target_s
        self.done = 0
        self.chunk = 8

    @property
    def finished(self) -> bool:
        return self.done >= len(self.paths)

    def step(self) -> tuple[str, int, int]:
        """Do one chunk; returns (kind, done, total)."""
        if not self.finished:
            chunk = self.paths[self.done : self.done + self.chunk]
            started = time.perf_counter()
            self.work(chunk)
            took = time.perf_counter() - started
            self.done += len(chunk)
            if len(chunk) == self.chunk:  # aim the next chunk at target_s, changing by at most 2x
                per_item = max(took, 1e-6) / len(chunk)
                self.chunk = int(min(max(self.target_s / per_item, self.chunk / 2, 1), self.chunk * 2, 1024))
        return self.kind, self.done, len(self.paths)


class FrozenMode:
    """Frozen-backbone mode of one trainer: the head of the current model, and the embeddings it reads.

    ``setting`` is ``config.frozen_backbone`` (``"auto"``, True, False). A model replaced later (a
    schedule's reset, a Retry) is split again; the same backbone weights reuse the embeddings file.
    """

    def __init__(self, pool, setting, folder, devices):
        self.pool = pool
        self.setting = setting
        self.folder = Path(folder)
        self.devices = devices
        self.head = None
        self.embeddings: Embeddings | None = None
        self._model = None  # the model ``head`` was split from

    def setup(self, model) -> str:
        """Split ``model`` when the mode applies; returns a note for the status line. ValueError when
        ``frozen_backbone=True`` and the model does not qualify."""
        self.head, self._model = None, model
        if self.setting is False or model is None:
            return ""
        reason = frozen_reason(model)
        if reason is not None:
            if self.setting is True:
                raise ValueError(f"frozen_backbone=True, but the model cannot use it: {reason}")
            return ""
        with self.devices.scope():
            backbone, head = split(model)
        predict = self.devices.predictor(backbone)
        digest = weights_digest(backbone)
        if self.embeddings is not None and self.embeddings.digest == digest:
            self.embeddings.use(backbone, predict)  # e.g. a refit model with the same backbone weights
        else:
            self.embeddings = Embeddings(self.pool, backbone, self.folder, predict=predict, digest=digest)
        self.head = head
        return f"frozen backbone: the head trains on cached embeddings ({self.embeddings.dim} per image)"

    def head_for(self, model):
        """The head of ``model`` (split again if the model was replaced), or None outside the mode."""
        if self._model is not model:
            try:
                self.setup(model)
            except ValueError as e:  # e.g. a reset built an unfit model: train the full model instead
                log.warning("%s; training the full model", e)
        return self.head

    def active_for(self, model) -> bool:
        """In the mode for ``model`` right now (no side effect: safe from any thread)."""
        return self.head is not None and self._model is model
