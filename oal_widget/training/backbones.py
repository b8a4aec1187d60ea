"""Pretrained ``keras.applications`` backbones by name, e.g. ``backbone_model_fn("mobilenet_v3_small")``.

The model is input -> grey to RGB (1-channel images) -> the backbone's input scaling -> the backbone
(frozen, in inference mode) -> GlobalAveragePooling named ``"embedding"`` -> Dropout -> Dense softmax,
so frozen-backbone mode (``frozen.py``) applies: each image is embedded once, the head trains in ms.

ImageNet weights (``weights="imagenet"``) come from Keras' cache folder (``$KERAS_HOME/models``, default
``~/.keras/models``) under the very file name Keras itself uses, so a file Keras downloaded once, or
one copied there by hand, is loaded and nothing is fetched; only when it is missing is it downloaded
(by ``keras.utils.get_file``, with Keras' checksum), after a probe of a few seconds so that a machine
without internet gets a clear error at once instead of a hang. ``weights=`` a path loads that file;
``None`` gives random weights. Knows nothing of widgets; imports Keras lazily.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .models import _check_num_classes, _compile, _keras, _shape

if TYPE_CHECKING:  # only for annotations: importing keras at run time costs seconds
    import keras

#: Seconds a missing weights file may spend finding out whether the download server answers.
PROBE_TIMEOUT_S = 3.0
_TF_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
#: keras.applications.imagenet_utils: what EfficientNet's ImageNet weights divide by (see _efficientnet).
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
#: keras.applications.resnet50.preprocess_input ("caffe"): BGR means on the 0-255 scale.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _rows(shape, sizes) -> int:
    """The input size in a size-dependent file name, as Keras picks it: square and known, else 224."""
    h, w = shape[0], shape[1]
    return h if h == w and h in sizes else 224


def _mobilenet_file(o, shape) -> str:
    text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[o["alpha"]]
    return f"mobilenet_{text}_{_rows(shape, (128, 160, 192, 224))}_tf_no_top.h5"


def _mobilenet_v2_file(o, shape) -> str:
    rows = _rows(shape, (96, 128, 160, 192, 224))
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{o['alpha']}_{rows}_no_top.h5"


def _mobilenet_v3_file(kind: str) -> Callable:
    def file_name(o, shape) -> str:
        minimal = "_minimalistic" if o["minimalistic"] else ""
        return f"weights_mobilenet_v3_{kind}{minimal}_224_{o['alpha']}_float_no_top_v2.h5"

    return file_name


def _efficientnet_b0(keras, shape, options):
    """EfficientNetB0 without its drop-connect Dropout layers (identity in inference mode, but
    frozen-backbone mode refuses any Dropout before ``embedding``); same weights, same output."""
    try:
        from keras.src.applications.efficientnet import EfficientNet  # private: the only way to set it

        return EfficientNet(
            1.0, 1.0, 224, 0.2, drop_connect_rate=0.0, name="efficientnetb0", include_top=False,
            weights=None, input_shape=shape, weights_name="b0",
        )  # fmt: skip
    except (ImportError, TypeError):  # another Keras: the public model (frozen mode may not apply)
        return keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=shape)


@dataclass(frozen=True)
class Backbone:
    """One backbone: how to build it, scale its input, and find its ImageNet no-top weights."""

    name: str  #: our name, as users know it
    keras_name: str  #: the ``keras.applications`` constructor
    #: Input scaling, after keras.applications' preprocess_input modes: "tf" ([-1, 1]), "caffe" (BGR,
    #: ImageNet means subtracted, 0-255), "efficientnet" (0-255: the model rescales and normalises itself).
    preprocessing: str
    url: str  #: folder the weights are downloaded from (+ file name)
    file_name: Callable[[dict, tuple], str]  #: (options, input shape) -> Keras' cache file name
    #: The width multipliers with ImageNet weights; () when the backbone takes no ``alpha``.
    alphas: tuple[float, ...] = ()
    minimalistic: bool = False  #: takes ``minimalistic`` (MobileNetV3)
    md5: dict = field(default_factory=dict)  #: file name -> Keras' checksum (none for MobileNet v1/v2)
    size_dependent: bool = False  #: the file name depends on the input size
    min_side: int = 32  #: smallest height and width keras.applications accepts
    build: Callable | None = None  #: (keras, shape, options) -> model, when the constructor is not enough
    fixed: dict = field(default_factory=dict)  #: constructor arguments we always pass

    def options(self, alpha=None, minimalistic=None, imagenet=False) -> dict:
        """The constructor's options with Keras' defaults filled in; ValueError saying what is allowed."""
        out = {}
        if alpha is not None and not self.alphas:
            raise ValueError(f"backbone {self.name!r} takes no alpha (width multiplier): leave it out")
        if minimalistic is not None and not self.minimalistic:
            raise ValueError(f"backbone {self.name!r} takes no minimalistic setting: leave it out")
        if self.alphas:
            alpha = 1.0 if alpha is None else alpha
            if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
                raise ValueError(f"alpha={alpha!r} is invalid: expected a width multiplier > 0, e.g. 1.0")
            out["alpha"] = float(alpha)
        if self.minimalistic:
            out["minimalistic"] = bool(minimalistic)
        if imagenet and self.alphas:
            allowed = (1.0,) if out.get("minimalistic") else self.alphas
            if out["alpha"] not in allowed:
                extra = " with minimalistic=True" if out.get("minimalistic") else ""
                raise ValueError(
                    f"backbone {self.name!r} has ImageNet weights for alpha in "
                    f"{', '.join(map(str, allowed))}{extra}, not alpha={alpha}: pick one of those, or pass "
                    f"weights=None (random) or a weights file of your own"
                )
        return out

    def describe(self, options: dict) -> str:
        """``MobileNetV3Small(alpha=1.0, minimalistic=True, include_top=False)``."""
        args = [f"{k}={v}" for k, v in options.items()] + ["include_top=False"]
        return f"{self.keras_name}({', '.join(args)})"

    def construct(self, keras, shape, options):
        """The backbone with random weights for an RGB ``shape`` (weights are loaded separately)."""
        if self.build is not None:
            return self.build(keras, shape, options)
        constructor = getattr(keras.applications, self.keras_name)
        return constructor(include_top=False, weights=None, input_shape=shape, **self.fixed, **options)


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            "mobilenet_v3_small", "MobileNetV3Small", "tf", _TF_URL + "mobilenet_v3/",
            _mobilenet_v3_file("small"), alphas=(0.75, 1.0), minimalistic=True,
            # Keras' own Rescaling expects 0-255; ours maps [0, 1] to the same [-1, 1] instead.
            fixed={"include_preprocessing": False},
            md5={
                "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5": "ebdb5cc8e0b497cd13a7c275d475c819",
                "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5": "d3e8ec802a04aa4fc771ee12a9a9b836",
                "weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5":
                    "cde8136e733e811080d9fcd8a252f7e4",
            },
        ),
        Backbone(
            "mobilenet_v3_large", "MobileNetV3Large", "tf", _TF_URL + "mobilenet_v3/",
            _mobilenet_v3_file("large"), alphas=(0.75, 1.0), minimalistic=True,
            fixed={"include_preprocessing": False},
            md5={
                "weights_mobilenet_v3_large_224_0.75_float_no_top_v2.h5": "40af19a13ebea4e2ee0c676887f69a2e",
                "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5": "07fb09a5933dd0c8eaafa16978110389",
                "weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5":
                    "ec5221f64a2f6d1ef965a614bdae7973",
            },
        ),
        Backbone(
            "mobilenet_v2", "MobileNetV2", "tf", _TF_URL + "mobilenet_v2/", _mobilenet_v2_file,
            alphas=(0.35, 0.5, 0.75, 1.0, 1.3, 1.4), size_dependent=True,
        ),
        Backbone(
            "mobilenet", "MobileNet", "tf", _TF_URL + "mobilenet/", _mobilenet_file,
            alphas=(0.25, 0.5, 0.75, 1.0), size_dependent=True,
        ),
        Backbone(
            "efficientnet_b0", "EfficientNetB0", "efficientnet", "https://storage.googleapis.com/keras-applications/",
            lambda o, s: "efficientnetb0_notop.h5", build=_efficientnet_b0,
            md5={"efficientnetb0_notop.h5": "50bc09e76180e00e4465e1a485ddc09d"},
        ),
        Backbone(
            "resnet50", "ResNet50", "caffe", _TF_URL + "resnet/",
            lambda o, s: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            md5={"resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5": "4d473c1dd8becc155b73f8504c6f6626"},
        ),
    )
}  # fmt: skip


def get_backbone(name: str) -> Backbone:
    """The registry entry for ``name``; ValueError listing the known names."""
    if name not in BACKBONES:
        raise ValueError(
            f"backbone={name!r} is not known: expected one of {', '.join(BACKBONES)} "
            f"(or write your own model_fn)"
        )
    return BACKBONES[name]


def keras_cache_dir() -> Path:
    """Keras' folder for downloaded weights: ``$KERAS_HOME/models``, else ``~/.keras/models``.

    Read now, not at Keras' import as Keras does, so KERAS_HOME may be set any time before a build.
    Keras falls back to ``/tmp/.keras`` when the home folder is not writable; so does this.
    """
    home = os.environ.get("KERAS_HOME")
    if home:
        base = Path(home).expanduser()
    else:
        base = Path.home() / ".keras" if os.access(Path.home(), os.W_OK) else Path("/tmp/.keras")
    if base.exists() and not os.access(base, os.W_OK):  # as keras.utils.get_file does
        base = Path("/tmp/.keras")
    return base / "models"


def weights_source(
    name: str, input_shape=(224, 224, 3), *, alpha=None, minimalistic=None
) -> tuple[Path, str]:
    """(path in Keras' cache folder, download URL) of ``name``'s ImageNet no-top weights."""
    spec = get_backbone(name)
    options = spec.options(alpha, minimalistic, imagenet=True)
    file_name = spec.file_name(options, _shape(input_shape))
    return keras_cache_dir() / file_name, spec.url + file_name


def resolve_weights(
    name: str, weights="imagenet", input_shape=(224, 224, 3), *, alpha=None, minimalistic=None
):
    """The weights file a build of ``name`` loads (None: random weights).

    ``"imagenet"``: the file in Keras' cache folder; if absent, downloaded there when the server
    answers within ``PROBE_TIMEOUT_S``, else ValueError naming the file, its URL and what to do.
    A path: that file (FileNotFoundError when it is not there).
    """
    spec = get_backbone(name)
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "imagenet":
        path, url = weights_source(name, input_shape, alpha=alpha, minimalistic=minimalistic)
        if path.is_file():
            return path
        return _download(spec, spec.options(alpha, minimalistic), path, url)
    if not isinstance(weights, str | os.PathLike):
        raise ValueError(
            f"weights={weights!r} is invalid: expected 'imagenet', None or the path of a weights file"
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {path} for backbone {name!r} does not exist: give the path of a file saved with "
            f"keras.applications.{spec.describe(spec.options(alpha, minimalistic))}.save_weights(...), "
            f"or weights='imagenet' (Keras' cache folder {keras_cache_dir()}), or weights=None (random)"
        )
    return path


def _download(spec: Backbone, options: dict, path: Path, url: str) -> Path:
    """``url`` fetched into ``path`` by Keras (checksum checked), or a ValueError saying what to do."""
    reason = _unreachable(url)
    if reason is None:
        from keras.utils import get_file  # imports TensorFlow: only once we know there is something to fetch

        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # else get_file would use /tmp/.keras
            got = get_file(
                path.name, url, cache_dir=str(path.parent.parent), cache_subdir=path.parent.name,
                file_hash=spec.md5.get(path.name),
            )  # fmt: skip
            return Path(got)
        except Exception as e:  # noqa: BLE001 - whatever failed, the person needs the same three options
            reason = f"the download failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    raise ValueError(
        f"no ImageNet weights for backbone {spec.name!r} ({spec.describe(options)}): Keras' cache folder "
        f"has no file {path}, and it could not be downloaded ({reason}). Either:\n"
        f"  - download {url} on a machine with internet and copy it to {path} (Keras' cache folder is "
        f"$KERAS_HOME/models, default ~/.keras/models), or\n"
        f"  - pass weights='/path/to/{path.name}' (a local copy of that file), or\n"
        f"  - pass weights=None for random weights (a frozen random backbone learns little)."
    )


def _unreachable(url: str, timeout: float | None = None) -> str | None:
    """None when ``url`` answers a HEAD request within ``timeout`` s, else why not. In a thread with a
    deadline: without a network a name lookup ignores socket timeouts and can take half a minute."""
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    outcome: list[str | None] = []

    def probe():
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
                outcome.append(None)
        except Exception as e:  # noqa: BLE001 - any failure means "cannot download here"
            outcome.append(f"{type(e).__name__}: {e}")

    thread = threading.Thread(target=probe, name="oal-weights-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"no answer from {urllib.parse.urlsplit(url).netloc} within {timeout:g} s"
    return outcome[0]


def backbone_model_fn(
    name: str,
    weights="imagenet",
    input_shape=None,
    *,
    alpha: float | None = None,
    minimalistic: bool | None = None,
    dropout: float = 0.2,
    trainable: bool = False,
) -> Callable:
    """A ``model_fn`` on the pretrained backbone ``name`` (one of ``BACKBONES``), frozen.

    ``weights``: ``"imagenet"`` (Keras' cache folder, else a download, else a ValueError saying what
    to do), the path of a weights file (``keras.applications.<Backbone>(include_top=False, ...)``'s),
    or None (random). With ``input_shape`` (or a backbone whose file does not depend on the size) the
    weights are found or fetched now, in the caller's thread, so a problem shows at once; the model
    itself is built when the trainer calls ``model_fn(num_classes, input_shape)``. ``alpha`` (width,
    MobileNets) and ``minimalistic`` (MobileNetV3) are passed to Keras; ``trainable=True`` fine-tunes
    the backbone too (frozen-backbone mode then does not apply).
    """
    spec = get_backbone(name)
    imagenet = isinstance(weights, str) and weights == "imagenet"
    options = spec.options(alpha, minimalistic, imagenet=imagenet)
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout={dropout!r} is invalid: expected a rate in [0, 1), e.g. 0.2")
    if input_shape is not None:
        check_input(spec, input_shape)
    if weights is not None and (not imagenet or input_shape is not None or not spec.size_dependent):
        resolve_weights(name, weights, input_shape or (224, 224, 3), alpha=alpha, minimalistic=minimalistic)

    def model_fn(num_classes: int, input_shape) -> keras.Model:
        shape = check_input(spec, input_shape)
        path = resolve_weights(name, weights, shape, alpha=alpha, minimalistic=minimalistic)
        return build_model(spec, options, path, num_classes, shape, trainable, dropout)

    model_fn.__name__ = model_fn.__qualname__ = f"backbone_model_fn({name!r})"
    return model_fn


def check_input(spec: Backbone, input_shape) -> tuple[int, int, int]:
    """(h, w, c) of ``input_shape``; ValueError when ``spec`` cannot take it (size, channels)."""
    h, w, c = _shape(input_shape)
    if min(h, w) < spec.min_side:
        raise ValueError(
            f"input_shape={(h, w, c)} is too small for {spec.name}: height and width must be at least "
            f"{spec.min_side}; use a larger input_shape or default_model_fn"
        )
    if c not in (1, 3):
        raise ValueError(f"input_shape={(h, w, c)} has {c} channels: backbones take 1 (grey) or 3 (RGB)")
    return h, w, c


def build_model(
    spec: Backbone, options: dict, path, num_classes, shape, trainable=False, dropout=0.2, name=None
):
    """input -> grey to RGB -> input scaling -> frozen backbone -> "embedding" -> Dropout -> softmax."""
    keras = _keras()
    layers = keras.layers
    num_classes = _check_num_classes(num_classes)
    h, w, c = shape
    base = spec.construct(keras, (h, w, 3), options)
    if path is not None:
        _load(base, Path(path), spec, options)
    base.trainable = bool(trainable)

    inputs = keras.Input(shape=(h, w, c), name="image")
    x = inputs
    if c == 1:  # ImageNet backbones take RGB: repeat the grey channel
        x = layers.Concatenate(name="grey_to_rgb")([x, x, x])
    x = _scale_input(keras, spec, base, x, loaded=path is not None)
    # training=False keeps BatchNorm in inference mode even if the backbone is unfrozen later.
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="embedding")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return _compile(keras.Model(inputs, outputs, name=name or f"oal_{spec.name}"))


def _load(base, path: Path, spec: Backbone, options: dict) -> None:
    try:
        # Keras warns once per layer before raising on a mismatch; the error below says it all.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base.load_weights(str(path))
    except Exception as e:  # any failure means "not the weights this backbone needs"
        cached = " (delete it to have it downloaded again)" if path.parent == keras_cache_dir() else ""
        said = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(
            f"weights file {path}{cached} does not fit {spec.describe(options)}: expected weights saved from "
            f"keras.applications.{spec.describe(options)} (any input size). Keras said: {said}"
        ) from e


def _scale_input(keras, spec: Backbone, base, x, loaded: bool):
    """Our images are RGB in [0, 1]; map them to what ``base`` was trained on (a layer named
    ``to_backbone_range``; no Lambda layer, so ``model.keras`` reloads in safe mode)."""
    layers = keras.layers
    if spec.preprocessing == "tf":
        return layers.Rescaling(2.0, offset=-1.0, name="to_backbone_range")(x)
    if spec.preprocessing == "efficientnet":
        return layers.Rescaling(*_efficientnet(base, loaded), name="to_backbone_range")(x)
    # caffe: RGB -> BGR, x 255, minus the ImageNet means; a frozen 1x1 convolution does all three.
    import numpy as np

    conv = layers.Conv2D(3, 1, name="to_backbone_range", trainable=False)
    y = conv(x)
    kernel = np.zeros((1, 1, 3, 3), dtype="float32")
    for out_channel in range(3):
        kernel[0, 0, 2 - out_channel, out_channel] = 255.0
    conv.set_weights([kernel, -np.asarray(_CAFFE_MEAN_BGR, dtype="float32")])
    return y


def _efficientnet(base, loaded: bool):
    """(scale, offset) per channel for EfficientNet, which takes 0-255 and rescales itself.

    Keras' ``EfficientNetB0(weights="imagenet")`` adds one more layer after its Normalization, a
    division by sqrt(ImageNet std) (its weights file holds the std where the variance belongs,
    tensorflow#49930), and only when it loads those weights itself. We build with weights=None and
    load the file, so that step is folded in here: feeding 255 * (m + k (x - m)), m the loaded mean,
    k = 1 / sqrt(std), makes Normalization(y / 255) = k * Normalization(x), as Keras computes it.
    """
    if not loaded:
        return 255.0, 0.0
    norm = next(layer for layer in base.layers if type(layer).__name__ == "Normalization")
    mean = [float(v) for v in norm.get_weights()[0].reshape(-1)]
    k = [1.0 / math.sqrt(s) for s in _IMAGENET_STD_RGB]
    return [255.0 * ki for ki in k], [255.0 * m * (1.0 - ki) for m, ki in zip(mean, k, strict=True)]
