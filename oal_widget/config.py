"""Every setting of a labelling session, validated in one place.

Names follow the original framework's config files (BUFFER_SIZE, TEST_SET_FRAC, BATCH_SIZE,
EARLY_STOPPING_METRICS_THRESHOLDS, EVAL_AND_QUERY_EVERY, INPUT_SHAPE) in snake case.
Knows nothing of widgets or TensorFlow; the names of strategies and policies come from ``al.registry``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .al.registry import DIVERSITY_NAMES, POLICY_NAMES, STRATEGY_NAMES

__all__ = ["Config", "DIVERSITY_NAMES", "METRICS", "POLICY_NAMES", "SCHEDULE_NAMES", "STRATEGY_NAMES"]

# Metrics the trainer computes on the test split; thresholds may use any of them.
METRICS = ("accuracy", "loss")
SCHEDULE_NAMES = ("warm", "shrink_perturb", "refit")
#: The largest grid page: every tile is a widget, and the next page's thumbnails are decoded ahead into
#: a cache of 64 (``session.thumbnails.CACHE_SIZE``).
MAX_GRID_SIZE = 48


@dataclass(frozen=True)
class Config:
    """Settings of one session. Every field has a default; wrong values raise ``ValueError``."""

    #: Height, width and channels (1 grey, 3 RGB) the model sees; (h, w) means RGB. Images are resized to it.
    input_shape: tuple[int, ...] = (64, 64, 3)
    #: Fraction of the images reserved for testing (a uniform random part, never trained on nor ranked).
    #: Only a few of them are asked: 4 + 10% of the labels (a quarter of the first ones), fewer once the
    #: estimate is precise; the estimate averages the calibrated confidence over all of them.
    test_fraction: float = 0.1
    #: Labels handed to the trainer at once; 1 hands over every label as soon as it is saved.
    buffer_size: int = 1
    #: Images per gradient step (drawn from ALL labels so far).
    batch_size: int = 32
    #: Gradient steps per training round; the trainer checks its inbox between steps.
    train_steps: int = 10
    #: Rounds the trainer keeps training without new labels before it waits for more.
    idle_rounds: int = 30
    #: New training labels between two evaluations on the test split.
    eval_every: int = 10
    #: New training labels between two active-learning queries (re-ordering of the pool).
    query_every: int = 10
    #: Stop when a metric leaves its band: ``{"accuracy": (None, 0.95)}`` stops at accuracy >= 0.95,
    #: ``{"loss": (0.05, None)}`` at loss <= 0.05. Empty: only the person (or the pool's end) stops.
    early_stopping: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: Labelled test images needed before a threshold may stop the session.
    min_test_labels: int = 10
    #: Query strategy: a name from ``STRATEGY_NAMES`` or a callable ``probs -> scores``
    #: (default chosen by ``bench/label_efficiency.py``; see the README).
    strategy: object = "margin"
    #: How scores become an order: a name from ``POLICY_NAMES`` or a callable ``(scores, rng) -> order``.
    policy: object = "epsilon_greedy"
    #: Share of the order given to random images by ``epsilon_greedy`` (exploration).
    epsilon: float = 0.1
    #: Sharpness of the ``power`` / ``softmax`` policies: lower is closer to greedy (> 0).
    temperature: float = 1.0
    #: Monte-Carlo dropout passes for ``bald`` (and a ``bandit`` drawing it): more is steadier but slower.
    mc_samples: int = 10
    #: ``kcenter``: the next ``query_every`` images are spread over the model's embedding space
    #: (k-center greedy among the best-ranked); ``none``: the order as ranked.
    diversity: str = "none"
    #: Random order until every class has this many training labels (capped at 3x that per class
    #: overall), then the strategy; 0 starts the strategy at the first query.
    cold_start: int = 0
    #: The first this many training labels are the most typical image of as many clusters of the
    #: images (TypiClust on a PCA of the pixels), largest cluster first; 0 turns it off.
    typical_start: int = 30
    #: Share of the order (at most) that seeks the classes with fewest labels: their most probable
    #: images, or for a class with no label the images farthest from every label; it falls as the classes fill
    #: (``al/balance.py``). Finds a rare class early; 0 turns it off. Never with the ``random`` strategy.
    seek_share: float = 0.5
    #: Blend the network with label spreading over a nearest-neighbour graph of the images, weighted by
    #: how well each predicted the latest labels before they were known (0 where the graph does not help).
    propagation: bool = True
    #: Learn a representation from the pool's own images before the first label (a small autoencoder,
    #: in the trainer's idle time): the cold start uses it, and the graph its codes or the network's own
    #: embedding wherever either predicts new labels better than the pixels (not with a frozen backbone).
    #: Off: on the benchmark sets it did not save labels and it doubles the time of a query.
    representation: bool = False
    #: Learn from the unlabelled images too: at every query the classifier's confident predictions on
    #: the candidates (never a test image) become down-weighted pseudo-labels in every training batch,
    #: from 20 training labels on, balanced over the classes the person has labelled.
    semi_supervised: bool = True
    #: A prediction becomes a pseudo-label only at or above this confidence (0 < t <= 1).
    pseudo_threshold: float = 0.7
    #: At most this many pseudo-labels per training label (reached at 100 labels, less before).
    pseudo_ratio: float = 4.0
    #: Shift each training image by up to an eighth of its side at every step (a weak augmentation;
    #: not with a frozen backbone, whose embeddings are computed once).
    augment: bool = True
    #: Continuous training: ``warm`` keeps updating one model; ``shrink_perturb`` (Ash & Adams 2020)
    #: or ``refit`` (a new model) whenever the training labels have doubled, with a catch-up fit.
    schedule: str = "warm"
    #: Draw training batches with equal weight per class (people rarely label classes evenly).
    class_balance: bool = False
    #: Seed for the test split, sampling and exploration; the same seed gives the same session.
    seed: int = 0
    #: Where the store, model and metrics go; ``None`` means ``<images>/.oal``.
    workdir: Path | None = None
    #: Keep decoded images in a memory-mapped file in ``<workdir>/cache`` (decoded once, memory stays
    #: bounded, reused by the next session); False keeps them in the process's memory instead.
    image_cache: bool = True
    #: A query scores at most this many unlabelled images, a fresh random sample each time (the rest
    #: follow in random order; unlabelled test images: a tenth of it); 0 scores the whole pool.
    query_sample: int = 2000
    #: A ``tf.distribute`` strategy (e.g. ``tf.distribute.MirroredStrategy()`` on several GPUs) the model
    #: is built and trained under; None uses TensorFlow's default device.
    distribute: object = None
    #: Frozen-backbone mode: each image's ``embedding`` (the output of a frozen feature extractor, as in
    #: ``transfer_model_fn``) is computed once and cached in ``<workdir>/cache``; training and queries run
    #: the small head on it. ``"auto"`` when every layer up to ``embedding`` is frozen and deterministic.
    frozen_backbone: object = "auto"
    #: Seconds an image shown to a session stays reserved for it (no one else is shown it) unless it is
    #: labelled or skipped first; a killed kernel's images come back after this.
    claim_lease: float = 600.0
    #: Share of the images other annotators labelled that are shown to this one too, blind (without their
    #: label or the model's prediction), to measure agreement; 0 turns it off. The first label stands.
    double_label: float = 0.0
    #: CPU threads TensorFlow may use for training: ``"auto"`` leaves one core to the browser, the server
    #: and the kernel that show the next image (on 2 cores: key-to-image p99 halved); a number; or None
    #: (TensorFlow's choice: every core). Applied before TensorFlow's first operation in the kernel.
    tf_threads: object = "auto"
    #: A pretrained ``keras.applications`` backbone by name, frozen, under a small head trained on its
    #: embeddings: ``mobilenet_v3_small``, ``mobilenet_v3_large``, ``mobilenet_v2``, ``mobilenet``,
    #: ``efficientnet_b0`` or ``resnet50`` (real photos; use an ``input_shape`` of 96 px or more).
    #: None uses ``model_fn`` (default: the small CNN).
    backbone: str | None = None
    #: Weights for ``backbone``: ``"imagenet"`` (Keras' cache folder, else downloaded), the path of a
    #: weights file, or None (random).
    backbone_weights: object = "imagenet"
    #: Images per page of the grid view (key ``g``): thumbnails of the next images in the order, each
    #: showing the label it will get; Enter stores the whole page at once (one undo step).
    grid_size: int = 24

    def __post_init__(self):
        object.__setattr__(self, "input_shape", _check_shape(self.input_shape))
        if not (isinstance(self.test_fraction, (int, float)) and 0 <= self.test_fraction < 1):
            _bad("test_fraction", self.test_fraction, "a number in [0, 1), e.g. 0.1")
        for name in ("buffer_size", "batch_size", "train_steps", "idle_rounds", "eval_every", "query_every"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                _bad(name, value, "a whole number >= 1")
        if not _is_int(self.min_test_labels) or self.min_test_labels < 1:
            _bad("min_test_labels", self.min_test_labels, "a whole number >= 1")
        if not _is_int(self.grid_size) or not 1 <= self.grid_size <= MAX_GRID_SIZE:
            _bad("grid_size", self.grid_size, f"a whole number from 1 to {MAX_GRID_SIZE}, e.g. 24")
        if not _is_int(self.query_sample) or self.query_sample < 0:
            _bad("query_sample", self.query_sample, "a whole number >= 0 (0 scores the whole pool)")
        if not isinstance(self.image_cache, bool):
            _bad("image_cache", self.image_cache, "True or False")
        if self.distribute is not None and not callable(getattr(self.distribute, "scope", None)):
            _bad("distribute", self.distribute, "None or a tf.distribute strategy, e.g. MirroredStrategy()")
        if not (
            self.tf_threads is None
            or self.tf_threads == "auto"
            or (_is_int(self.tf_threads) and self.tf_threads >= 1)
        ):
            _bad("tf_threads", self.tf_threads, "'auto', a whole number >= 1, or None")
        if (
            isinstance(self.double_label, bool)
            or not isinstance(self.double_label, (int, float))
            or not 0 <= self.double_label <= 1
        ):
            _bad("double_label", self.double_label, "a share in [0, 1], e.g. 0.05 (0: off)")
        lease = self.claim_lease
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 1 <= lease < math.inf:
            _bad("claim_lease", lease, "a number of seconds >= 1, e.g. 600")
        if self.backbone is not None and (not isinstance(self.backbone, str) or not self.backbone.strip()):
            _bad("backbone", self.backbone, "None or a backbone name, e.g. 'mobilenet_v3_small'")
        if self.backbone_weights is not None and not isinstance(self.backbone_weights, (str, os.PathLike)):
            _bad("backbone_weights", self.backbone_weights, "'imagenet', a weights file path, or None")
        if not (isinstance(self.frozen_backbone, bool) or self.frozen_backbone == "auto"):
            _bad("frozen_backbone", self.frozen_backbone, "'auto', True or False")
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:  # numpy's generators refuse the others
            _bad("seed", self.seed, "a whole number in [0, 2**32)")
        if not (isinstance(self.epsilon, (int, float)) and 0 <= self.epsilon <= 1):
            _bad("epsilon", self.epsilon, "a number in [0, 1]")
        if not (isinstance(self.temperature, (int, float)) and 0 < self.temperature < math.inf):
            _bad("temperature", self.temperature, "a number > 0, e.g. 1.0")
        if not _is_int(self.mc_samples) or self.mc_samples < 1:
            _bad("mc_samples", self.mc_samples, "a whole number >= 1, e.g. 10")
        if not _is_int(self.cold_start) or self.cold_start < 0:
            _bad("cold_start", self.cold_start, "a whole number >= 0 (labels per class)")
        if not _is_int(self.typical_start) or self.typical_start < 0:
            _bad("typical_start", self.typical_start, "a whole number >= 0 (first training labels), e.g. 30")
        if not (_is_number(self.seek_share) and 0 <= self.seek_share <= 1):
            _bad("seek_share", self.seek_share, "a share of the order in [0, 1], e.g. 0.5 (0: off)")
        if not (_is_number(self.pseudo_threshold) and 0 < self.pseudo_threshold <= 1):
            _bad("pseudo_threshold", self.pseudo_threshold, "a confidence in (0, 1], e.g. 0.7")
        if not (_is_number(self.pseudo_ratio) and 0 <= self.pseudo_ratio < math.inf):
            _bad("pseudo_ratio", self.pseudo_ratio, "a number >= 0 of pseudo-labels per label, e.g. 4")
        for name in ("class_balance", "propagation", "semi_supervised", "augment", "representation"):
            if not isinstance(getattr(self, name), bool):
                _bad(name, getattr(self, name), "True or False")
        _check_choice("diversity", self.diversity, DIVERSITY_NAMES, allow_callable=False)
        _check_choice("schedule", self.schedule, SCHEDULE_NAMES, allow_callable=False)
        _check_choice("strategy", self.strategy, STRATEGY_NAMES)
        _check_choice("policy", self.policy, POLICY_NAMES)
        object.__setattr__(self, "early_stopping", _check_thresholds(self.early_stopping))
        if self.early_stopping and self.test_fraction == 0:
            raise ValueError(
                f"setting early_stopping={dict(self.early_stopping)!r} can never stop with test_fraction=0: "
                f"it waits for min_test_labels={self.min_test_labels} labelled test images; keep a test "
                "fraction (the default is 0.1) or leave early_stopping out"
            )
        if self.workdir is not None:
            if not isinstance(self.workdir, (str, os.PathLike)) or not str(self.workdir).strip():
                _bad("workdir", self.workdir, "None or a folder path, e.g. 'labels/.oal'")
            object.__setattr__(self, "workdir", Path(self.workdir))

    @property
    def channels(self) -> int:
        return self.input_shape[2]

    def replace(self, **changes) -> Config:
        """A copy with some settings changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}; accepted: {sorted(field_names())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain values for JSON (callables by name)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if callable(value):
                value = getattr(value, "__name__", repr(value))
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Mapping):
                value = {k: list(v) for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            elif value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
                value = type(value).__name__  # e.g. a tf.distribute strategy
            out[f.name] = value
        return out


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


def _bad(name, value, accepted):
    raise ValueError(f"setting {name}={value!r} is invalid: expected {accepted}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_shape(shape):
    ok = (
        isinstance(shape, (tuple, list))
        and len(shape) in (2, 3)
        and all(_is_int(v) and v >= 1 for v in shape)
        and (len(shape) == 2 or shape[2] in (1, 3))
    )
    if not ok:
        _bad("input_shape", shape, "(height, width) or (height, width, channels) with channels 1 or 3")
    if len(shape) == 2:
        shape = (*shape, 3)
    if min(shape[:2]) < 8:
        _bad("input_shape", shape, "height and width of at least 8 pixels")
    return tuple(shape)


def _check_choice(name, value, names, allow_callable=True):
    if allow_callable and callable(value):
        return
    if value not in names:
        _bad(name, value, f"one of {', '.join(names)}" + (" or a callable" if allow_callable else ""))


def _check_thresholds(thresholds):
    if thresholds is None:
        return {}
    if not isinstance(thresholds, Mapping):
        _bad("early_stopping", thresholds, 'a dict like {"accuracy": (None, 0.95)}')
    out = {}
    for metric, band in thresholds.items():
        per_class = isinstance(metric, str) and metric.startswith("recall:") and len(metric) > len("recall:")
        if metric not in METRICS and not per_class:
            _bad(
                "early_stopping",
                thresholds,
                f"metric names among {', '.join(METRICS)} or 'recall:<label>' (one class), not {metric!r}",
            )
        if not (isinstance(band, (tuple, list)) and len(band) == 2):
            _bad("early_stopping", thresholds, f"a (lower, upper) pair for {metric!r}, either may be None")
        lower, upper = band
        for bound in (lower, upper):
            if bound is not None and not (isinstance(bound, (int, float)) and math.isfinite(bound)):
                _bad("early_stopping", thresholds, f"finite numbers or None as bounds of {metric!r}")
        if lower is None and upper is None:
            _bad("early_stopping", thresholds, f"at least one bound for {metric!r}")
        if lower is not None and upper is not None and lower >= upper:
            _bad("early_stopping", thresholds, f"lower < upper for {metric!r}")
        out[metric] = (lower, upper)
    return out
