"""models.py with real (tiny) Keras models on real digits. TensorFlow is imported once for the module."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oal_widget.training.models import (
    check_model,
    default_model_fn,
    embedding_model,
    reload_model,
    transfer_model_fn,
)


@pytest.fixture(scope="module")
def keras():
    import keras

    keras.utils.set_random_seed(0)
    return keras


@pytest.fixture(scope="module")
def digits(digits_dir):
    """(x float32 (200, 16, 16, 1) in [0, 1], y int (200,)) read from the PNG files."""
    paths = sorted(Path(digits_dir).glob("*/*.png"))
    x = np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255.0 for p in paths])
    y = np.array([int(p.parent.name) for p in paths])
    return x[..., None], y


@pytest.fixture(scope="module")
def mobilenet_weights(keras, tmp_path_factory):
    """A MobileNetV2 (alpha 0.35, no top) weights file saved by the test, and the saved arrays."""
    base = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35
    )
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2.weights.h5"
    base.save_weights(path)
    return path, base.get_weights()


def test_importing_models_does_not_import_tensorflow():
    code = (
        "import sys, oal_widget.training.models; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- default_model_fn -----------------------------------------------------------------------
def test_default_model_learns_digits_and_reports_true_accuracy(keras, digits):
    x, y = digits
    model = default_model_fn(10, (16, 16, 1))
    assert model.loss == "sparse_categorical_crossentropy"  # not binary CE (it inflated "accuracy")
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Rescaling" not in kinds  # images arrive in [0, 1] already (never scaled twice)
    assert "Dropout" in kinds
    assert type(model.get_layer("embedding")).__name__ == "Dense"

    train_x, train_y = x[::2], y[::2]  # 100 labels
    before = model.evaluate(train_x, train_y, verbose=0, return_dict=True)["loss"]
    rng = np.random.default_rng(0)
    for _ in range(60):
        batch = rng.choice(len(train_x), 32)
        model.train_on_batch(train_x[batch], train_y[batch])
    after = model.evaluate(train_x, train_y, verbose=0, return_dict=True)
    assert after["loss"] < before * 0.7

    # The reported accuracy is the share of argmax hits (binary CE on a softmax reported ~0.9 for anything).
    test_x, test_y = x[1::2], y[1::2]
    reported = model.evaluate(test_x, test_y, verbose=0, return_dict=True)["accuracy"]
    probs = np.asarray(model(test_x, training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    by_hand = float(np.mean(probs.argmax(axis=1) == test_y))
    assert reported == pytest.approx(by_hand, abs=1e-6)
    assert by_hand > 0.4  # learned something (chance is 0.1) on digits it never saw


@pytest.mark.parametrize("shape", [(8, 8, 1), (16, 16, 3), (20, 100, 1), (224, 224, 3)])
def test_default_model_handles_small_and_large_inputs(keras, shape):
    model = default_model_fn(4, shape)
    check_model(model, 4, shape)
    out = np.asarray(model(np.random.default_rng(0).random((2, *shape), dtype=np.float32)))
    assert out.shape == (2, 4)
    assert model.count_params() < 200_000  # stays a CPU-sized model at 224x224
    assert embedding_model(model).output_shape == (None, 64)


def test_default_model_validates_its_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        default_model_fn(0, (16, 16, 1))
    with pytest.raises(ValueError, match="input_shape"):
        default_model_fn(3, (16,))


# --- transfer_model_fn ----------------------------------------------------------------------
def _backbone(model):
    return next(layer for layer in model.layers if layer.name.startswith("mobilenet"))


def test_transfer_model_loads_local_weights_frozen_with_grey_input(keras, mobilenet_weights):
    path, saved = mobilenet_weights
    model_fn = transfer_model_fn(path)
    model = model_fn(3, (32, 32, 1))
    check_model(model, 3, (32, 32, 1))
    base = _backbone(model)
    assert not base.trainable
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), saved, strict=True))
    assert {w.path for w in model.trainable_weights} == {"probabilities/kernel", "probabilities/bias"}
    assert model.get_layer("to_backbone_range").scale == 2.0  # [0, 1] -> [-1, 1]
    assert model.get_layer("to_backbone_range").offset == -1.0

    x = np.random.default_rng(0).random((4, 32, 32, 1), dtype=np.float32)
    model(x, training=True)  # a training-mode pass must not move BatchNorm statistics either
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), saved, strict=True))
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert embedding_model(model).output_shape[-1] == base.output_shape[-1]


def test_transfer_weights_fit_another_input_size_in_rgb(keras, mobilenet_weights):
    path, saved = mobilenet_weights
    model = transfer_model_fn(path, trainable=True)(2, (40, 48, 3))
    check_model(model, 2, (40, 48, 3))
    base = _backbone(model)
    assert base.trainable
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), saved, strict=True))


def test_transfer_missing_weights_says_how_to_get_them(tmp_path):
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(FileNotFoundError, match=r"(?s)nope\.weights\.h5.*save_weights") as info:
        transfer_model_fn(missing)
    assert "weights='imagenet'" in str(info.value)


def test_transfer_wrong_weights_name_file_and_backbone(keras, mobilenet_weights, tmp_path):
    path, _ = mobilenet_weights
    with pytest.raises(ValueError, match=r"mobilenet_v2\.weights\.h5.*MobileNetV2\(alpha=0\.5"):
        transfer_model_fn(path, alpha=0.5)(3, (32, 32, 3))

    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other = tmp_path / "dense.weights.h5"
    dense.save_weights(other)
    with pytest.raises(ValueError, match=r"dense\.weights\.h5.*MobileNetV2\(alpha=0\.35"):
        transfer_model_fn(other)(3, (32, 32, 3))

    junk = tmp_path / "junk.weights.h5"
    junk.write_text("not weights")
    with pytest.raises(ValueError, match=r"junk\.weights\.h5"):
        transfer_model_fn(junk)(3, (32, 32, 3))


def test_transfer_rejects_small_inputs_and_bad_settings(mobilenet_weights):
    path, _ = mobilenet_weights
    with pytest.raises(ValueError, match=r"input_shape=\(16, 16, 1\).*at least 32"):
        transfer_model_fn(path)(3, (16, 16, 1))
    with pytest.raises(ValueError, match="backbone='ResNet9000'.*MobileNetV2"):
        transfer_model_fn(path, backbone="ResNet9000")
    with pytest.raises(ValueError, match="alpha"):
        transfer_model_fn(path, alpha=0)


# --- reload_model ---------------------------------------------------------------------------
def test_reload_round_trip_gives_same_predictions(keras, digits, tmp_path):
    x, y = digits
    model = default_model_fn(10, (16, 16, 1))
    model.train_on_batch(x[:32], y[:32])
    path = tmp_path / "model.keras"
    model.save(path)
    again = reload_model(path)
    np.testing.assert_allclose(np.asarray(again(x[:8])), np.asarray(model(x[:8])), rtol=1e-5)
    check_model(again, 10, (16, 16, 1), source="the reloaded model")
    again.train_on_batch(x[:32], y[:32])  # still trainable: compile state came back


def test_reload_compiles_an_uncompiled_model(keras, tmp_path):
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    )
    path = tmp_path / "bare.keras"
    model.save(path)
    again = reload_model(path)
    assert again.loss == "sparse_categorical_crossentropy"
    check_model(again, 3, (16, 16, 1))


def test_reload_refuses_code_in_safe_mode(keras, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(2)])
    path = tmp_path / "with_lambda.keras"
    model.save(path)
    with pytest.raises(ValueError, match=r"with_lambda\.keras.*safe_mode=False"):
        reload_model(path)


def test_reload_errors_name_the_file(keras, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.keras"):
        reload_model(tmp_path / "missing.keras")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"definitely not a zip")
    with pytest.raises(ValueError, match=r"junk\.keras.*not a Keras model"):
        reload_model(junk)


# --- check_model ----------------------------------------------------------------------------
def test_check_model_errors_say_what_to_fix(keras):
    def tiny(outputs=3, shape=(16, 16, 1)):
        return keras.Sequential(
            [keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(outputs, activation="softmax")]
        )

    with pytest.raises(ValueError, match="model_fn returned str, not a keras.Model"):
        check_model("model", 3, (16, 16, 1))
    with pytest.raises(ValueError, match=r"uncompiled model.*model\.compile\("):
        check_model(tiny(), 3, (16, 16, 1))

    wrong_out = tiny(outputs=2)
    wrong_out.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"output shape \(None, 2\); expected \(None, 3\)"):
        check_model(wrong_out, 3, (16, 16, 1))

    wrong_in = tiny(shape=(32, 32, 1))
    wrong_in.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"input shape \(None, 32, 32, 1\); expected \(None, 16, 16, 1\)"):
        check_model(wrong_in, 3, (16, 16, 1))

    binary = tiny()
    binary.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="binary_crossentropy.*sparse_categorical_crossentropy"):
        check_model(binary, 3, (16, 16, 1))
    binary.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy())
    with pytest.raises(ValueError, match="binary_crossentropy"):
        check_model(binary, 3, (16, 16, 1))

    flexible = keras.Sequential(
        [
            keras.Input((None, None, 1)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, "softmax"),
        ]
    )
    flexible.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    check_model(flexible, 3, (16, 16, 1))  # any-size input is fine


def test_embedding_model_falls_back_to_the_penultimate_layer(keras):
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(5, name="features"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    assert embedding_model(model).output_shape == (None, 5)
