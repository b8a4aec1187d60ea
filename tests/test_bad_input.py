"""Bad input through the real panel and the real (tiny) trainer: bad images next to good ones, bad
settings, bad models. Nothing stops the session; every problem is named where the person looks.

tests/test_pool.py checks each damaged format at the decoding level; here they all sit in ONE folder
that a person labels with keys, while a real Keras model trains.
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_model_fn, wait_for
from PIL import Image

from oal_widget import Annotator
from oal_widget.data.pool import SYMLINK_OUTSIDE

LABELS = ["zero", "one", "two"]
SHAPE = (16, 16, 1)
WAIT = 60.0  # bound for conditions on a shared 2-core box; never a timing assertion
TINY = dict(input_shape=SHAPE, train_steps=2, batch_size=64, eval_every=4, query_every=4, idle_rounds=5)


def key(name: str) -> dict:
    return {"type": "keydown", "event": "keydown", "key": name, "repeat": False}


def png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


def jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def bomb_png() -> bytes:
    """A PNG whose header claims 30000 x 30000 pixels: Pillow refuses it as a decompression bomb."""
    data = bytearray(png(Image.new("L", (8, 8))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = (30000).to_bytes(4, "big") * 2
    data[ihdr + 17 : ihdr + 21] = zlib.crc32(bytes(data[ihdr : ihdr + 17])).to_bytes(4, "big")
    return bytes(data)


def write(root: Path, rel: str, data: bytes) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return rel


def add_odd_files(root: Path, outside: Path) -> tuple[dict[str, str], set[str]]:
    """Bad files (path -> a word their reason must contain) and odd-but-good files, next to the digits."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    good_png = png(Image.new("RGB", (8, 8), "red"))
    bad_crc = bytearray(good_png)
    idat = bad_crc.index(b"IDAT")
    bad_crc[idat + 4 + int.from_bytes(bad_crc[idat - 4 : idat], "big")] ^= 0xFF
    full_jpeg = jpeg(noise)
    bad = {
        write(root, "bad/empty.png", b""): "0 bytes",
        write(root, "bad/truncated.jpg", full_jpeg[: len(full_jpeg) // 2]): "truncated",
        write(root, "bad/text.png", b"I am a text file, not a PNG\n"): "not an image",
        write(root, "bad/crc.png", bytes(bad_crc)): "checksum",
        write(root, "bad/bomb.png", bomb_png()): "decompression bomb",
    }
    os.symlink(root / "bad/loop_b.png", root / "bad/loop_a.png")
    os.symlink(root / "bad/loop_a.png", root / "bad/loop_b.png")
    bad["bad/loop_a.png"] = bad["bad/loop_b.png"] = "symlink loop"
    os.symlink(root, root / "bad/folder_loop")  # never entered: no hang, nothing listed
    write(outside, "secret.png", good_png)
    os.symlink(outside / "secret.png", root / "bad/escape.png")
    bad["bad/escape.png"] = SYMLINK_OUTSIDE

    exif = Image.new("L", (16, 8), 255)
    exif_data = exif.getexif()
    exif_data[0x0112] = 6  # rotate 90 degrees on display
    cmyk = Image.new("CMYK", (16, 16), (0, 0, 0, 255))
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    frames = [Image.new("L", (16, 16), v) for v in (0, 128, 255)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    good = {
        write(root, "odd/one pixel.png", png(Image.new("L", (1, 1), 0))),
        write(root, "odd/cmyk.jpg", jpeg(cmyk)),
        write(root, "odd/deep/16 bit.png", png(Image.fromarray(np.full((16, 16), 40000, np.uint16)))),
        write(root, "odd/deep/er/palette, transparent.png", png(palette, transparency=0)),
        write(root, "odd/animated.gif", gif.getvalue()),
        write(root, "odd/exif rotated.JPEG", jpeg(exif, exif=exif_data)),
        write(root, "odd/ünïcödé 猫, comma.png", png(Image.new("L", (16, 16), 200))),
    }
    locked = write(root, "odd/locked.png", png(Image.new("L", (16, 16), 90)))
    (root / locked).chmod(0)
    if os.geteuid() == 0:
        good.add(locked)  # root reads any file (tests/test_pool.py checks the reason as 'nobody')
    else:
        bad[locked] = "permission denied"
    return bad, good


def label_for(path: str) -> str:
    top = path.split("/")[0]
    return LABELS[int(top)] if top in {"0", "1", "2"} else "zero"


def test_bad_images_are_listed_and_every_good_one_is_labelled_and_trained_on(small_digits, tmp_path):
    bad, odd_good = add_odd_files(small_digits, tmp_path / "outside")
    panel = Annotator(small_digits, LABELS, model_fn=tiny_model_fn, workdir=tmp_path / "wd", **TINY)
    s = panel.session
    try:
        # Deleted after the folder was indexed, and far from the images already decoded for display.
        deleted = [p for p in s.order() if p.startswith(("0/", "1/", "2/"))][-1]
        (small_digits / deleted).unlink()
        bad[deleted] = "deleted"
        digits = {p for p in s.pool.paths if p.startswith(("0/", "1/", "2/"))} - {deleted}
        good = digits | odd_good

        for _ in range(len(s.pool.paths) + 1):  # bounded: one key per image at most
            if s.current is None:
                break
            assert s.current in good, f"{s.current} was shown to be labelled"
            panel._on_key(key(str(LABELS.index(label_for(s.current)) + 1)))
            assert not panel._error.value.startswith("error"), panel._error.value
        assert s.current is None, "labelling did not reach the end"
        wait_for(lambda: s.trainer_status == "stopped" and not s.trainer.is_alive(), "the automatic stop")

        assert set(s.labels()) == good  # every good image labelled, with its label
        assert all(label == label_for(p) for p, label in s.labels().items())
        reasons = {item.path: item.reason for item in s.skipped}
        for path, word in bad.items():
            assert word in reasons.get(path, ""), (path, reasons.get(path))
            assert html_escaped(path) in panel._skipped.html.value  # listed in the panel with its reason
        assert "folder_loop" not in " ".join(reasons)
        assert f"{len(reasons)} file(s) skipped" in panel._skipped.html.value
        trainer = s.trainer
        test = {p for p in s.pool.paths if s.is_test(p)}
        assert trainer.trained_paths == good - test  # every good training image was in a batch
        # Every good test label graded the last evaluation, but one whose near-duplicate has a training
        # label (the background search may have found it after that evaluation).
        assert s.duplicates.join(10)
        graded = {p for p in good & test if not s.shadowed(p)}
        assert trainer.history and len(graded) <= trainer.history[-1]["n_test"] <= len(good & test)
        assert (s.workdir / "model.keras").is_file()
        wait_for(lambda: panel._done.layout.display != "none", "the end screen")
    finally:
        (small_digits / "odd/locked.png").chmod(0o644)
        s.close()


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


# --- bad models in the panel ---------------------------------------------------------------------
def raising_model_fn(num_classes, input_shape):
    raise RuntimeError("out of GPU memory")


def uncompiled_model_fn(num_classes, input_shape):
    import keras

    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(num_classes)]
    )


def wrong_outputs_model_fn(num_classes, input_shape):
    model = tiny_model_fn(num_classes + 1, input_shape)
    return model


def nan_model_fn(num_classes, input_shape):
    import keras

    model = tiny_model_fn(num_classes, input_shape)
    # Stands for a diverging model: the loss is NaN from the first step.
    model.compile(optimizer="sgd", loss=lambda y, p: keras.ops.mean(p) * float("nan"))
    return model


@pytest.mark.parametrize(
    "model_fn, says",
    [
        (raising_model_fn, "raising_model_fn raised RuntimeError: out of GPU memory"),
        (uncompiled_model_fn, "uncompiled_model_fn returned an uncompiled model"),
        (wrong_outputs_model_fn, "expected (None, 3)"),
        (nan_model_fn, "the training loss became nan"),
    ],
)
def test_a_bad_model_shows_an_error_keeps_every_label_and_retry_recovers(
    small_digits, tmp_path, model_fn, says
):
    panel = Annotator(small_digits, LABELS, model_fn=model_fn, workdir=tmp_path / "wd", **TINY)
    s = panel.session
    try:
        for _ in range(3):
            panel._on_key(key(str(LABELS.index(label_for(s.current)) + 1)))
        wait_for(lambda: s.trainer_status == "error", "the error")
        assert says in panel._error.value and "retry" in panel._error.value
        assert panel.labelling.retry.layout.display != "none"
        for _ in range(3):  # the person goes on labelling: each key still saves, the error stays in sight
            panel._on_key(key(str(LABELS.index(label_for(s.current)) + 1)))
            assert says in panel._error.value
        assert len(s.labels()) == 6
        assert "model" not in (s.trainer.latest.saved or {})

        s.retry(model_fn=tiny_model_fn)  # the fixed function; the retry button sends the same Retry
        n_train = len(set(s.labels()) - {p for p in s.pool.paths if s.is_test(p)})
        wait_for(
            lambda: s.trainer_status != "error" and s.trainer.training_set_size == n_train,
            "training after retry",
        )
        wait_for(lambda: panel._error.value == "", "the error line cleared")
        assert panel.labelling.retry.layout.display == "none"
        saved = panel.stop(timeout=120)  # a loaded box may need long to save: not what is tested
        assert Path(saved["model"]).is_file() and len(s.labels()) == 6
    finally:
        s.close()


def test_the_retry_button_rebuilds_with_the_same_model_fn(small_digits, tmp_path):
    """A model_fn that failed for a passing reason (memory, a setting it reads) works on Retry."""
    state = {"fail": True}

    def flaky_model_fn(num_classes, input_shape):
        if state["fail"]:
            raise MemoryError("not enough memory for the model")
        return tiny_model_fn(num_classes, input_shape)

    panel = Annotator(small_digits, LABELS, model_fn=flaky_model_fn, workdir=tmp_path / "wd", **TINY)
    s = panel.session
    try:
        panel._on_key(key("1"))
        wait_for(lambda: s.trainer_status == "error", "the error")
        state["fail"] = False
        panel.labelling.retry.click()
        wait_for(lambda: s.model is not None and s.trainer_status != "error", "the model after retry")
        assert len(s.labels()) == 1
    finally:
        s.close()


# --- bad settings ----------------------------------------------------------------------------------
def test_every_invalid_setting_raises_a_value_error_naming_it_and_writes_nothing(small_digits):
    from oal_widget.config import field_names

    for name in field_names():  # any setting added later is covered too
        with pytest.raises(ValueError) as info:
            Annotator(small_digits, LABELS, **{name: object()})
        assert name in str(info.value), (name, str(info.value))
    bad_arguments = [
        ({"labels": ["cat"]}, "labels"),
        ({"labels": ["cat", "cat"]}, "labels"),
        ({"labels": "cat,dog"}, "labels"),
        ({"labels": LABELS, "model_fn": "my_model"}, "model_fn"),
        ({"labels": LABELS, "keymap": {"x": "fly"}}, "keymap"),
        ({"labels": LABELS, "seed": -1}, "seed"),
        ({"labels": LABELS, "learning_rate": 0.1}, "learning_rate"),
    ]
    for kwargs, name in bad_arguments:
        with pytest.raises(ValueError, match=name):
            Annotator(small_digits, **kwargs)
    assert not (small_digits / ".oal").exists()  # a wrong setting leaves no trace in the folder


def test_in_a_notebook_a_wrong_folder_is_one_line_naming_the_close_one(small_digits, tmp_path, monkeypatch):
    """IPython shows a setting's error as its message alone (``_render_traceback_``), not the frames of
    the package; a folder that does not exist names the closest one beside it."""
    from IPython.core.interactiveshell import InteractiveShell

    (tmp_path / "photos").mkdir()
    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shown: list[list[str]] = []
    monkeypatch.setattr(shell, "_showtraceback", lambda etype, evalue, stb: shown.append(stb))
    shell.run_cell("from oal_widget import Annotator\nAnnotator('photo', labels=['cat', 'dog'])")
    shell.run_cell("Annotator('photos', labels=['cat'])")
    assert len(shown) == 2 and all(len(lines) == 1 for lines in shown), shown
    assert shown[0][0].startswith(
        "FileNotFoundError: images folder 'photo' does not exist: did you mean 'photos'?"
    )
    assert shown[1][0].startswith(
        "ValueError: labels=['cat'] is invalid: a classifier needs at least 2 labels"
    )
