"""What many test modules share: a tiny real Keras model, a bounded wait, a trainer's label set."""

from __future__ import annotations

import time

SHAPE = (16, 16, 1)
#: Bound for waiting on a condition on a shared 2-core box; never a timing assertion.
WAIT = 60.0


def labelset_of(paths, test=(), names=tuple(str(d) for d in range(10))):
    """A trainer's ``LabelSet`` holding ``paths`` as training labels, each labelled by its class folder."""
    from oal_widget.training.labelset import LabelSet

    labels = LabelSet(list(names), test)
    for p in paths:
        labels.add(p, p.split("/")[0], "train")
    return labels


def tiny_model_fn(num_classes, input_shape):
    """A real, compiled Keras model small enough to train in milliseconds (softmax over flat pixels)."""
    import keras

    model = keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def wait_for(condition, what: str = "condition", timeout: float = WAIT, context=None) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` s naming ``what`` (and ``context()``)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            extra = f"; {context()}" if context is not None else ""
            raise AssertionError(f"{what} not reached within {timeout} s{extra}")
        time.sleep(0.01)


def settle(panel, timeout: float = WAIT) -> None:
    """Wait (bounded) until the panel's UI thread has run every job posted so far (trainer updates are
    applied there, asynchronously, as in a kernel)."""
    assert panel._ui.wait_idle(timeout), f"the panel's UI thread still busy after {timeout} s"


def brick_wall(folder, copies: int, seed: int) -> set[tuple[str, ...]]:
    """Writes the 64 patches of scikit-image's brick wall (each has look-alikes scoring as a crop does) and
    ``copies`` crops (80-92%, resized back) of every sixth; returns those planted groups, names sorted."""
    import numpy as np
    import skimage.data
    from PIL import Image

    wall = skimage.data.brick()
    rng = np.random.default_rng(seed)
    planted = set()
    for k, (y, x) in enumerate((y, x) for y in range(0, 512, 64) for x in range(0, 512, 64)):
        patch = wall[y : y + 64, x : x + 64]
        Image.fromarray(patch).save(folder / f"p{k:02d}.png")
        if k % 6 == 0:
            names = [f"p{k:02d}.png"]
            for copy in range(copies):
                c = round(64 * rng.uniform(0.8, 0.92))
                oy, ox = rng.integers(0, 64 - c + 1, size=2)
                crop = Image.fromarray(patch[oy : oy + c, ox : ox + c]).resize((64, 64), Image.BICUBIC)
                crop.save(folder / f"p{k:02d}_c{copy}.png")
                names.append(f"p{k:02d}_c{copy}.png")
            planted.add(tuple(names))
    return planted
