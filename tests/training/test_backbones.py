"""backbones.py: pretrained backbones by name, weights from Keras' cache folder, a clear error offline.

Real Keras at the smallest sizes. The full path (build, weights from the cache, Keras' own model for
comparison, training) runs for mobilenet_v3_small (minimalistic: the smallest with ImageNet
weights); the other backbones are checked on their registry entries and their input scaling.
The network is never used: a test that needs it "online" fakes the download.
"""

import socket
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from oal_widget.training import backbones
from oal_widget.training.backbones import BACKBONES, backbone_model_fn, resolve_weights, weights_source
from oal_widget.training.frozen import frozen_reason, split
from oal_widget.training.models import check_model

TF = "https://storage.googleapis.com/tensorflow/keras-applications/"
SMALL = {"minimalistic": True}  # mobilenet_v3_small's smallest variant with ImageNet weights
NO_TOP = "_no_top_v2.h5"  # MobileNetV3's ImageNet files without the classifier
SMALL_FILE = f"weights_mobilenet_v3_small_minimalistic_224_1.0_float{NO_TOP}"
V2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels"
V3 = f"{TF}mobilenet_v3/weights_mobilenet_v3"


@pytest.fixture(scope="module")
def keras():
    import keras

    keras.utils.set_random_seed(0)
    return keras


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras home for this test (backbones reads KERAS_HOME at each call, Keras only at import)."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection and name lookup fails at once; returns the list of attempts."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture(scope="module")
def small(keras):
    """mobilenet_v3_small (minimalistic) with random weights at its minimum size, 32x32 RGB."""
    return backbone_model_fn("mobilenet_v3_small", weights=None, minimalistic=True)(3, (32, 32, 3))


def _save_like_keras(model, path):
    """Save ``model``'s weights in the layout of Keras' downloadable ImageNet files (legacy HDF5,
    what keras.applications loads), which ``save_weights`` no longer writes."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


# --- registry -------------------------------------------------------------------------------
def test_importing_backbones_does_not_import_tensorflow():
    code = (
        "import sys, oal_widget.training.backbones; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("name", "options", "shape", "url"),
    [
        ("mobilenet_v3_small", {}, (64, 64), f"{V3}_small_224_1.0_float{NO_TOP}"),
        ("mobilenet_v3_small", SMALL, (32, 32), f"{TF}mobilenet_v3/{SMALL_FILE}"),
        ("mobilenet_v3_large", {"alpha": 0.75}, (224, 224), f"{V3}_large_224_0.75_float{NO_TOP}"),
        ("mobilenet_v2", {}, (96, 96), f"{TF}mobilenet_v2/{V2}_1.0_96_no_top.h5"),
        ("mobilenet_v2", {"alpha": 0.35}, (96, 64), f"{TF}mobilenet_v2/{V2}_0.35_224_no_top.h5"),
        ("mobilenet", {"alpha": 0.25}, (128, 128), f"{TF}mobilenet/mobilenet_2_5_128_tf_no_top.h5"),
        ("efficientnet_b0", {}, (32, 32), "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"),
        ("resnet50", {}, (40, 40), f"{TF}resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ],
)  # fmt: skip
def test_weights_have_the_file_name_and_url_keras_uses(keras_home, name, options, shape, url):
    # Names read from keras/src/applications/*.py (Keras 3.x); a size-dependent name takes 224 for a
    # non-square input, as Keras does. test_imagenet_weights_... checks one against Keras' own request.
    path, got = weights_source(name, shape, **options)
    assert got == url
    assert path == keras_home / "models" / url.rsplit("/", 1)[1]
    spec = BACKBONES[name]
    assert spec.min_side == 32
    assert (path.name in spec.md5) == (
        name not in ("mobilenet_v2", "mobilenet")
    )  # Keras has no hash for those


def test_the_usual_names_are_known_and_settings_checked():
    assert {"mobilenet_v3_small", "mobilenet_v3_large", "mobilenet_v2", "efficientnet_b0", "resnet50"} <= set(
        BACKBONES
    )
    with pytest.raises(ValueError, match=r"backbone='mobilenetv3'.*mobilenet_v3_small, .*resnet50"):
        backbone_model_fn("mobilenetv3")
    with pytest.raises(ValueError, match=r"input_shape=\(16, 16, 3\) is too small for resnet50.*at least 32"):
        backbone_model_fn("resnet50", weights=None, input_shape=(16, 16))
    with pytest.raises(ValueError, match="4 channels"):
        backbone_model_fn("resnet50", weights=None, input_shape=(32, 32, 4))
    with pytest.raises(ValueError, match="resnet50' takes no alpha"):
        backbone_model_fn("resnet50", weights=None, alpha=0.5)
    with pytest.raises(ValueError, match="no minimalistic"):
        backbone_model_fn("mobilenet_v2", weights=None, minimalistic=True)
    with pytest.raises(ValueError, match=r"alpha in 0\.75, 1\.0, not alpha=0\.35.*weights=None"):
        backbone_model_fn("mobilenet_v3_small", alpha=0.35)
    with pytest.raises(ValueError, match=r"alpha in 1\.0 with minimalistic=True"):
        backbone_model_fn("mobilenet_v3_large", alpha=0.75, minimalistic=True)
    with pytest.raises(ValueError, match="dropout"):
        backbone_model_fn("resnet50", weights=None, dropout=1.0)
    with pytest.raises(ValueError, match="weights=123"):
        backbone_model_fn("resnet50", weights=123)
    backbone_model_fn("mobilenet_v3_small", weights=None, alpha=0.35)  # any width without ImageNet weights


def test_a_weights_path_that_does_not_exist_is_named(tmp_path):
    missing = tmp_path / "mine.weights.h5"
    with pytest.raises(FileNotFoundError, match=r"mine\.weights\.h5.*ResNet50\(include_top=False\)"):
        backbone_model_fn("resnet50", weights=missing)


# --- input scaling --------------------------------------------------------------------------
def _scaled(keras, name, x, base=None, loaded=False):
    inputs = keras.Input(x.shape[1:])
    outputs = backbones._scale_input(keras, BACKBONES[name], base, inputs, loaded)
    return np.asarray(keras.Model(inputs, outputs)(x))


def test_input_scaling_matches_what_each_backbone_was_trained_on(keras):
    x = np.random.default_rng(0).random((2, 4, 5, 3), dtype=np.float32)  # RGB in [0, 1], as the pool gives
    apps = keras.applications
    for name in ("mobilenet_v3_small", "mobilenet_v3_large", "mobilenet_v2", "mobilenet"):
        # [-1, 1] (MobileNetV3's own Rescaling, turned off, does the same from 0-255)
        np.testing.assert_allclose(
            _scaled(keras, name, x), apps.mobilenet_v2.preprocess_input(255 * x), atol=1e-5
        )
    np.testing.assert_allclose(
        _scaled(keras, "resnet50", x), apps.resnet50.preprocess_input(255 * x), atol=1e-3
    )

    # EfficientNet scales itself from 0-255; with ImageNet weights Keras adds a division by sqrt(std)
    # after its Normalization layer, which ours folds into the input scaling.
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    norm = keras.layers.Normalization(mean=mean, variance=std)  # what the ImageNet file holds
    stem = keras.Sequential([keras.Input((4, 5, 3)), keras.layers.Rescaling(1 / 255), norm])
    keras_imagenet = np.asarray(stem(255 * x)) / np.sqrt(std)  # then Keras' Rescaling(1 / sqrt(std))
    base = keras.Sequential([keras.Input((4, 5, 3)), keras.layers.Normalization()])
    base.layers[0].set_weights([mean.astype("float32"), std.astype("float32"), np.array(0)])
    ours = np.asarray(stem(_scaled(keras, "efficientnet_b0", x, base, loaded=True)))
    np.testing.assert_allclose(ours, keras_imagenet, atol=1e-4)
    np.testing.assert_allclose(_scaled(keras, "efficientnet_b0", x), 255 * x, atol=1e-4)  # random weights


# --- the full path on mobilenet_v3_small ----------------------------------------------------
def test_model_is_frozen_qualifies_for_frozen_mode_and_trains(keras, small):
    check_model(small, 3, (32, 32, 3))
    assert frozen_reason(small) is None  # frozen-backbone mode applies automatically
    assert small.loss == "sparse_categorical_crossentropy"
    base = small.get_layer("MobileNetV3Small")
    assert not base.trainable
    assert {w.path for w in small.trainable_weights} == {"probabilities/kernel", "probabilities/bias"}
    assert [layer.name for layer in small.layers][-3:] == ["embedding", "dropout", "probabilities"]
    assert small.get_layer("to_backbone_range").scale == 2.0

    rng = np.random.default_rng(0)
    x, y = rng.random((6, 32, 32, 3), dtype=np.float32), np.array([0, 1, 2, 0, 1, 2])
    before, head_before = base.get_weights(), small.get_layer("probabilities").get_weights()
    small.train_on_batch(x, y)  # moves neither the backbone's weights nor its BatchNorm statistics
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), before, strict=True))
    assert not np.array_equal(small.get_layer("probabilities").get_weights()[0], head_before[0])
    backbone, head = split(small)  # what frozen-backbone mode trains
    assert np.isfinite(head.train_on_batch(backbone.predict_on_batch(x), y))


def test_efficientnet_qualifies_for_frozen_mode_too(keras):
    # Keras' EfficientNet has drop-connect Dropout layers (identity in inference mode, but frozen-backbone
    # mode refuses any Dropout before "embedding"); ours is built without them.
    model = backbone_model_fn("efficientnet_b0", weights=None)(2, (32, 32, 3))
    assert frozen_reason(model) is None
    assert "Normalization" in {type(layer).__name__ for layer in model.get_layer("efficientnetb0").layers}


def test_imagenet_weights_come_from_keras_cache_without_network(
    keras, small, keras_home, no_network, monkeypatch
):
    path, url = weights_source("mobilenet_v3_small", (32, 32, 1), **SMALL)
    assert path == keras_home / "models" / SMALL_FILE
    donor = small.get_layer("MobileNetV3Small")
    _save_like_keras(donor, path)  # as if Keras had downloaded it (with other weights than ImageNet's)

    # Keras' own model asks for this very file, URL and checksum, and loads it.
    asked = []

    def keras_get_file(fname=None, origin=None, **kwargs):
        asked.append((fname, origin, kwargs.get("cache_subdir"), kwargs.get("file_hash")))
        return str(path)

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", keras_get_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "weights for input shape (224, 224) will be loaded"
        theirs = keras.applications.MobileNetV3Small(
            include_top=False, weights="imagenet", input_shape=(32, 32, 3), minimalistic=True
        )
    assert asked == [(SMALL_FILE, url, "models", BACKBONES["mobilenet_v3_small"].md5[SMALL_FILE])]

    model_fn = backbone_model_fn("mobilenet_v3_small", "imagenet", (32, 32, 1), minimalistic=True)
    model = model_fn(2, (32, 32, 1))
    assert not no_network  # found in the cache: nothing was looked up or connected
    base = model.get_layer("MobileNetV3Small")
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), donor.get_weights(), strict=True))
    assert frozen_reason(model) is None

    # Grey images work, and embed as Keras' model embeds the same picture in RGB scaled its way (0-255).
    grey = np.random.default_rng(1).random((3, 32, 32, 1), dtype=np.float32)
    ours = keras.Model(model.input, model.get_layer("embedding").output)(grey)
    expected = np.asarray(theirs(np.repeat(255 * grey, 3, axis=-1), training=False)).mean(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-4, atol=1e-5)


def test_a_broken_file_in_the_cache_says_delete_it(keras, keras_home, no_network):
    path, _ = weights_source("mobilenet_v3_small", **SMALL)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a download")
    model_fn = backbone_model_fn("mobilenet_v3_small", minimalistic=True)
    with pytest.raises(ValueError, match=rf"{path.name} \(delete it.*MobileNetV3Small\(alpha=1\.0, minimal"):
        model_fn(2, (32, 32, 3))
    assert not no_network


# --- no cache, no internet; downloads -------------------------------------------------------
def test_no_cache_and_no_internet_says_what_to_do_at_once(keras_home, no_network):
    started = time.perf_counter()
    with pytest.raises(ValueError) as info:
        backbone_model_fn("mobilenet_v3_small", input_shape=(64, 64, 3))  # before any model is built
    assert time.perf_counter() - started < 2
    message = str(info.value)
    path, url = weights_source("mobilenet_v3_small")
    assert str(path) in message and url in message
    assert "'mobilenet_v3_small'" in message and "machine with internet" in message
    assert "weights='/path/to/" in message and "weights=None" in message
    assert no_network  # it did try

    # A size-dependent file name is resolved when the trainer builds the model, and named the same way.
    model_fn = backbone_model_fn("mobilenet_v2", alpha=0.35)
    with pytest.raises(ValueError, match=r"kernels_0\.35_96_no_top\.h5.*could not be downloaded"):
        model_fn(3, (96, 96, 1))


def test_a_network_that_hangs_gives_the_error_within_the_probe_timeout(keras_home, monkeypatch):
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(30)
        raise OSError("released")

    monkeypatch.setattr(socket, "getaddrinfo", hang)  # a name lookup ignores socket timeouts
    monkeypatch.setattr(backbones, "PROBE_TIMEOUT_S", 0.3)
    started = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=r"no answer from storage\.googleapis\.com within 0\.3 s"):
            resolve_weights("resnet50")
    finally:
        release.set()
    assert time.perf_counter() - started < 2


def test_online_the_file_is_downloaded_by_keras_into_its_cache(keras, keras_home, monkeypatch):
    fetched = []

    def get_file(fname, origin, cache_dir=None, cache_subdir="datasets", file_hash=None, **kwargs):
        fetched.append((fname, origin, cache_dir, cache_subdir, file_hash))
        target = keras_home / cache_subdir / fname
        target.write_bytes(b"weights")
        return str(target)

    monkeypatch.setattr(backbones, "_unreachable", lambda url: None)  # "online"
    monkeypatch.setattr(keras.utils, "get_file", get_file)
    path, url = weights_source("efficientnet_b0")
    assert resolve_weights("efficientnet_b0") == path
    assert fetched == [(path.name, url, str(keras_home), "models", "50bc09e76180e00e4465e1a485ddc09d")]
    assert resolve_weights("efficientnet_b0") == path and len(fetched) == 1  # cached now

    def failing(*args, **kwargs):
        raise Exception("URL fetch failure on https://...: 403 -- Forbidden")

    monkeypatch.setattr(keras.utils, "get_file", failing)
    with pytest.raises(ValueError, match=r"(?s)download failed: URL fetch failure.*weights=None"):
        resolve_weights("resnet50")


# --- the Annotator / Session setting -------------------------------------------------------------
def test_the_backbone_setting_builds_the_model_and_frozen_mode_applies(small_digits, keras_home, no_network):
    """``backbone=`` in the session: a clear error at once without weights; with weights the trainer
    builds the named backbone and trains its head on cached embeddings."""
    from helpers import wait_for

    from oal_widget.session.session import Session

    shape = (32, 32, 3)
    with pytest.raises(ValueError, match="(?s)mobilenet_v3_small.*pass backbone_weights=None"):
        Session(small_digits, ["0", "1", "2"], backbone="mobilenet_v3_small", input_shape=shape)
    with pytest.raises(ValueError, match="backbone= builds the model_fn"):
        Session(small_digits, ["0", "1", "2"], backbone="mobilenet_v2", model_fn=lambda n, s: None)
    with pytest.raises(ValueError, match="setting backbone=3"):
        Session(small_digits, ["0", "1", "2"], backbone=3)
    s = Session(
        small_digits, ["0", "1", "2"], backbone="mobilenet_v3_small", backbone_weights=None, input_shape=shape
    )
    try:
        for _ in range(4):
            s.label(s.current.split("/")[0])
        wait_for(lambda: s.trainer.frozen_backbone or s.trainer.error, "frozen-backbone mode")
        assert s.trainer.error is None and s.trainer.frozen_backbone
    finally:
        s.close()
