"""Models the trainer can use: a small CNN trained from scratch, a frozen local-weights backbone, a reload.

Pretrained backbones by name (ImageNet weights from Keras' cache folder) are in ``backbones.py``.

A ``model_fn`` is any callable ``(num_classes, input_shape) -> compiled keras.Model`` whose output is
``num_classes`` softmax probabilities and whose input is an image batch already scaled to [0, 1]
(``pool.load_array`` scales once; the original framework scaled twice).

Keras (and so TensorFlow, ~7 s) is imported inside the functions only: importing this module is free,
and the panel can show itself before TensorFlow has loaded.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: importing keras at run time costs seconds
    import keras

#: ``transfer_model_fn``'s backbone names -> their ``backbones.BACKBONES`` entries.
_TRANSFER_BACKBONES = {"MobileNetV2": "mobilenet_v2", "MobileNet": "mobilenet"}
#: The from-scratch CNN first average-pools large images down to about this side (bounded CPU cost).
_WORKING_SIDE = 32
#: Losses that silently give wrong numbers with integer labels and a softmax.
_WRONG_LOSSES = {"binary_crossentropy", "categorical_crossentropy", "binary_focal_crossentropy"}

_COMPILE_HINT = (
    "call model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']) "
    "at the end of your model_fn"
)


def _keras():
    from .quiet_tf import import_tensorflow

    import_tensorflow()  # in a user's cell too (reload_model, transfer_model_fn): no C++ start-up lines
    import keras  # lazily: imports TensorFlow

    return keras


def _shape(input_shape) -> tuple[int, int, int]:
    """(h, w, c) from (h, w) or (h, w, c); ValueError names input_shape."""
    shape = tuple(input_shape)
    if len(shape) == 2:
        shape = (*shape, 3)
    if len(shape) != 3 or not all(isinstance(v, numbers.Integral) and v >= 1 for v in shape):
        raise ValueError(f"input_shape={input_shape!r} is invalid: expected (height, width, channels)")
    return tuple(int(v) for v in shape)


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} is invalid: expected a whole number >= 1")
    return int(num_classes)


def _compile(model):
    """Compile like every model here: Adam, sparse categorical cross-entropy on integer labels."""
    keras = _keras()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        # Integer class indices + softmax: sparse CE. Binary CE here inflates "accuracy".
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # Online training sees a new batch shape whenever the label count is below batch_size; XLA
        # would recompile for each one, which costs far more than it saves on models this small.
        jit_compile=False,
    )
    return model


def default_model_fn(num_classes: int, input_shape) -> keras.Model:
    """A small CNN trained from scratch on CPU, for images from 8x8 up to 224x224 and beyond.

    Large images are first average-pooled to about 32 px (cost stays bounded; for photos where detail
    matters use ``transfer_model_fn``). Then up to three Conv-ReLU-MaxPool blocks (no BatchNorm: its
    batch statistics are unstable with the tiny, changing batches of online training), Flatten,
    Dropout (also enables Monte-Carlo dropout later), a Dense layer named ``"embedding"`` (for
    diversity sampling) and a softmax. Inputs must already be in [0, 1]: there is no Rescaling layer.
    """
    keras = _keras()
    layers = keras.layers
    num_classes = _check_num_classes(num_classes)
    h, w, c = _shape(input_shape)

    inputs = keras.Input(shape=(h, w, c), name="image")
    x = inputs
    fh, fw = max(1, h // _WORKING_SIDE), max(1, w // _WORKING_SIDE)
    if fh > 1 or fw > 1:
        x = layers.AveragePooling2D(pool_size=(fh, fw), name="downsample")(x)
    sh, sw = h // fh, w // fw
    for i, filters in enumerate((32, 64, 64)):
        if min(sh, sw) <= 4 and i > 0:  # stop at about 4x4 so Flatten stays small
            break
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        if min(sh, sw) >= 2:
            x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
            sh, sw = sh // 2, sw // 2
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    x = layers.Dense(64, activation="relu", name="embedding")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return _compile(keras.Model(inputs, outputs, name="oal_cnn"))


def _missing_weights(path: Path, backbone: str, alpha: float) -> FileNotFoundError:
    return FileNotFoundError(
        f"backbone weights file {path} does not exist. Make one on a machine with internet access:\n"
        f"  import keras\n"
        f"  keras.applications.{backbone}(weights='imagenet', include_top=False, alpha={alpha}, "
        f"input_shape=(96, 96, 3)).save_weights('{path.name}')\n"
        f"then copy it here (nothing is downloaded at run time)."
    )


def transfer_model_fn(
    weights_path, backbone: str = "MobileNetV2", alpha: float = 0.35, trainable: bool = False
) -> Callable:
    """A ``model_fn`` using an ImageNet backbone whose weights come from the LOCAL file ``weights_path``.

    Helps with photos and few labels: only a small head (GlobalAveragePooling named ``"embedding"``,
    Dropout, Dense softmax) is trained while the backbone stays frozen (``trainable=False``).
    The backbone expects its own input range (MobileNet/MobileNetV2: [-1, 1]); our images arrive in
    [0, 1], so a Rescaling layer ``x * 2 - 1`` maps them once. Grey images (1 channel) are repeated to
    the 3 channels ImageNet backbones need. Inputs must be at least 32x32. The same model as
    ``backbones.backbone_model_fn(..., weights=weights_path)``, which also knows other backbones and
    finds ImageNet weights in Keras' cache folder.
    """
    from . import backbones  # backbones imports this module's helpers

    if backbone not in _TRANSFER_BACKBONES:
        raise ValueError(
            f"backbone={backbone!r} is not supported: expected one of {', '.join(_TRANSFER_BACKBONES)} "
            f"(or backbones.backbone_model_fn for others, or write your own model_fn)"
        )
    spec = backbones.get_backbone(_TRANSFER_BACKBONES[backbone])
    options = spec.options(alpha=alpha)  # ValueError naming alpha when it is not a width > 0
    weights_path = Path(weights_path).expanduser()
    if not weights_path.is_file():
        raise _missing_weights(weights_path, backbone, alpha)

    def model_fn(num_classes: int, input_shape):
        shape = backbones.check_input(spec, input_shape)
        if not weights_path.is_file():
            raise _missing_weights(weights_path, backbone, alpha)
        name = f"oal_{backbone.lower()}"  # the name this model has always had
        return backbones.build_model(spec, options, weights_path, num_classes, shape, trainable, name=name)

    model_fn.__name__ = model_fn.__qualname__ = f"transfer_model_fn({backbone}, alpha={alpha})"
    return model_fn


def reload_model(path) -> keras.Model:
    """A model saved as ``.keras`` (e.g. the trainer's ``model.keras``), loaded in safe mode.

    Safe mode refuses files that would run arbitrary Python (Lambda layers). A model saved without
    its compile state is compiled like ``default_model_fn``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist: give the path of a saved .keras model")
    keras = _keras()
    try:
        model = keras.saving.load_model(str(path), safe_mode=True)
    except Exception as e:  # whatever Keras raises, the user needs the file name
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "safe_mode" in str(e):
            raise ValueError(
                f"model file {path} contains Python code (e.g. a Lambda layer) that safe mode will not run. "
                f"If you trust it, load it yourself with keras.saving.load_model(path, safe_mode=False) "
                f"and pass the model instead. Keras said: {message}"
            ) from e
        raise ValueError(
            f"model file {path} is not a Keras model this version can load (expected a .keras file "
            f"saved with model.save; custom layers must be imported first). Keras said: {message}"
        ) from e
    if not isinstance(model, keras.Model):
        raise ValueError(f"model file {path} holds a {type(model).__name__}, not a keras.Model")
    if not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
        _compile(model)
    return model


def _loss_name(loss) -> str | None:
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or getattr(loss, "__name__", None)


def check_model(model, num_classes: int, input_shape, source: str = "model_fn") -> None:
    """Raise ValueError saying what to fix unless ``model`` is a compiled keras.Model taking
    ``input_shape`` images and returning ``num_classes`` probabilities. ``source`` names where the
    model came from in the message (e.g. "model_fn", "the reloaded model")."""
    keras = _keras()
    h, w, c = _shape(input_shape)
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"{source} returned {type(model).__name__}, not a keras.Model: build and return a compiled "
            f"keras.Model(inputs, outputs)"
        )
    if not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
        raise ValueError(f"{source} returned an uncompiled model (no optimizer/loss): {_COMPILE_HINT}")
    name = _loss_name(model.loss)
    if name in _WRONG_LOSSES:
        raise ValueError(
            f"{source} compiled the model with loss={name!r}, but labels are integer class indices and "
            f"the output a softmax: use loss='sparse_categorical_crossentropy' (other losses give wrong "
            f"loss and accuracy values)"
        )
    try:
        out_shape = model.output_shape
        in_shape = model.input_shape
    except (AttributeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{source} returned a model that is not built: give it a keras.Input ({e})") from e
    if isinstance(out_shape, list) or tuple(out_shape) != (None, num_classes):
        raise ValueError(
            f"{source} returned a model with output shape {out_shape}; expected (None, {num_classes}): "
            f"end with keras.layers.Dense({num_classes}, activation='softmax') (one unit per label)"
        )
    expected = (None, h, w, c)
    fits = (
        not isinstance(in_shape, list)
        and len(in_shape) == 4
        and all(got is None or got == want for got, want in zip(in_shape[1:], expected[1:], strict=True))
    )
    if not fits:
        raise ValueError(
            f"{source} returned a model with input shape {in_shape}; expected {expected} from the "
            f"input_shape setting: use keras.Input(shape=input_shape) with the input_shape passed to it"
        )


def embedding_model(model) -> keras.Model:
    """A model from the input to the layer named ``"embedding"`` (else the penultimate layer):
    feature vectors for diversity sampling."""
    keras = _keras()
    try:
        layer = model.get_layer("embedding")
    except ValueError:
        layer = model.layers[-2]
    return keras.Model(model.inputs, layer.output, name=f"{model.name}_embedding")
