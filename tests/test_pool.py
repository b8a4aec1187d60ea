"""pool.py: finding images, decoding every format and mode, bad files, the test split. No TensorFlow."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from oal_widget.data import pool as pool_mod
from oal_widget.data.pool import (
    IMAGE_EXTENSIONS,
    SYMLINK_OUTSIDE,
    ImageError,
    ImagePool,
    Skipped,
    display_png,
    load_array,
    scan,
    split_test,
)

GREY = (8, 8, 1)
RGB = (8, 8, 3)


def save(root, rel, im, **kwargs):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kwargs)
    return rel


def write_bytes(root, rel, data):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return rel


def png_bytes(im):
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return bytearray(buf.getvalue())


def jpeg_bytes(im, **kwargs):
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kwargs)
    return bytes(buf.getvalue())


# --- scan ---------------------------------------------------------------------------------------
def test_scan_finds_every_format_in_any_case_with_relative_paths(tmp_path):
    im = Image.new("RGB", (4, 4), "white")
    expected = [
        save(tmp_path, "a.png", im),
        save(tmp_path, "b.jpg", im),
        save(tmp_path, "C.JPEG", im, format="JPEG"),
        save(tmp_path, "d.bmp", im),
        save(tmp_path, "e.gif", im),
        save(tmp_path, "f.webp", im),
        save(tmp_path, "g.tif", im),
        save(tmp_path, "h.TIFF", im, format="TIFF"),
        save(tmp_path, "nested/deeper/i.Png", im, format="PNG"),
        save(tmp_path, "with space/ü, x: y.png", im),
        save(tmp_path, "émoji 🐱/'quoted'.png", im),
    ]
    write_bytes(tmp_path, "notes.txt", b"not an image")
    write_bytes(tmp_path, "data.csv", b"a,b")
    (tmp_path / "folder.png").mkdir()  # a folder named like an image is not an image
    paths, skipped = scan(tmp_path)
    assert paths == sorted(expected)
    assert skipped == []
    for p in paths:  # every path loads, relative to the root, with '/' separators
        assert "\\" not in p and not p.startswith("/")
        assert load_array(tmp_path, p, GREY).shape == GREY
    assert {os.path.splitext(p)[1].lower() for p in paths} == IMAGE_EXTENSIONS


def test_same_basename_in_two_folders_gives_two_paths_not_basenames(tmp_path):
    # Paths, never basenames: two folders may hold the same file name.
    save(tmp_path, "cats/img_001.png", Image.new("L", (4, 4), 0))
    save(tmp_path, "dogs/img_001.png", Image.new("L", (4, 4), 255))
    pool = ImagePool(tmp_path, GREY)
    assert pool.paths == ["cats/img_001.png", "dogs/img_001.png"]
    assert pool.array("cats/img_001.png").max() == 0.0
    assert pool.array("dogs/img_001.png").min() == 1.0
    with pytest.raises(ImageError, match="img_001.png"):
        pool.array("img_001.png")  # a basename is not a path of this pool


def test_scan_skips_workdir_and_hidden_entries(tmp_path):
    im = Image.new("L", (4, 4))
    save(tmp_path, "keep.png", im)
    save(tmp_path, ".oal/model_preview.png", im)
    save(tmp_path, ".ipynb_checkpoints/keep-checkpoint.png", im)
    save(tmp_path, "sub/.hidden/x.png", im)
    write_bytes(tmp_path, "sub/._resource_fork.jpg", b"\x00\x05\x16\x07junk")
    assert scan(tmp_path) == (["keep.png"], [])


def test_scan_never_decodes(tmp_path, monkeypatch):
    # scan must stay cheap (100,000 files in seconds): listing and stat only.
    for i in range(30):
        write_bytes(tmp_path, f"c{i % 3}/{i:03d}.png", b"not decoded by scan")

    def no_decoding(*args, **kwargs):
        raise AssertionError("scan opened an image")

    monkeypatch.setattr(Image, "open", no_decoding)
    paths, skipped = scan(tmp_path)
    assert len(paths) == 30 and skipped == []


def test_missing_root_says_which_folder_and_what_to_do(tmp_path):
    missing = tmp_path / "no_such_folder"
    for call in (lambda: scan(missing), lambda: ImagePool(missing, GREY)):
        with pytest.raises(FileNotFoundError, match="no_such_folder.*does not exist.*pass the path"):
            call()
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="file.png.*not a folder"):
        ImagePool(tmp_path / "file.png", GREY)


def test_empty_folder_is_an_empty_pool_not_an_error(tmp_path):
    write_bytes(tmp_path, "readme.txt", b"no images here")
    pool = ImagePool(tmp_path, GREY)
    assert pool.paths == [] and len(pool) == 0 and pool.skipped == []
    arrays, ok = pool.arrays([])
    assert arrays.shape == (0, *GREY) and arrays.dtype == np.float32 and ok == []


def test_symlinks_inside_are_followed_outside_and_loops_are_skipped(tmp_path):
    root = tmp_path / "images"
    outside = tmp_path / "secret"
    save(root, "real/a.png", Image.new("L", (4, 4), 255))
    save(outside, "b.png", Image.new("L", (4, 4), 0))
    os.symlink(root / "real/a.png", root / "inside_link.png")
    os.symlink(outside / "b.png", root / "escape.png")
    os.symlink("../../secret/b.png", root / "real/relative_escape.png")
    os.symlink(root / "loop_b.png", root / "loop_a.png")
    os.symlink(root / "loop_a.png", root / "loop_b.png")
    os.symlink(root / "gone.png", root / "broken.png")
    os.symlink(root, root / "real/loop_dir")  # a folder loop: must not hang
    os.symlink(outside, root / "outside_dir")  # folder symlinks are never entered
    paths, skipped = scan(root)
    assert paths == ["inside_link.png", "real/a.png"]
    reasons = {s.path: s.reason for s in skipped}
    assert reasons["escape.png"] == SYMLINK_OUTSIDE
    assert reasons["real/relative_escape.png"] == SYMLINK_OUTSIDE
    assert set(reasons) == {
        "escape.png",
        "real/relative_escape.png",
        "loop_a.png",
        "loop_b.png",
        "broken.png",
    }
    assert "symlink" in reasons["loop_a.png"] and "symlink" in reasons["broken.png"]
    assert load_array(root, "inside_link.png", GREY).min() == 1.0
    # load_array checks too: a link swapped to point outside after the scan is refused.
    with pytest.raises(ImageError, match="outside the images folder"):
        load_array(root, "escape.png", GREY)


def test_zero_byte_file_is_skipped_by_scan_and_refused_by_load(tmp_path):
    write_bytes(tmp_path, "empty.png", b"")
    save(tmp_path, "ok.png", Image.new("L", (4, 4)))
    paths, skipped = scan(tmp_path)
    assert paths == ["ok.png"]
    assert skipped == [Skipped("empty.png", "empty file (0 bytes)")]
    with pytest.raises(ImageError, match=r"empty.png.*0 bytes"):
        load_array(tmp_path, "empty.png", GREY)


UNREADABLE_CHECK = """
import json, os, sys
from oal_widget.data.pool import ImageError, load_array, scan
if os.geteuid() == 0:  # root reads anything: drop to 'nobody' once Python and the package are loaded
    os.setgid(65534)
    os.setuid(65534)
root = sys.argv[1]
paths, skipped = scan(root)
try:
    load_array(root, "locked.png", (8, 8, 1))
    error = None
except ImageError as e:
    error = str(e)
print(json.dumps({"paths": paths, "skipped": [[s.path, s.reason] for s in skipped], "error": error}))
"""


def test_unreadable_file_and_folder_are_skipped_with_reason():
    # pytest's tmp_path lies in a folder only its owner may enter: 'nobody' needs one it can reach.
    tmp_path = Path(tempfile.mkdtemp(prefix="oal_perm_"))
    root = tmp_path / "images"
    save(root, "locked.png", Image.new("L", (4, 4)))
    save(root, "ok.png", Image.new("L", (4, 4)))
    save(root, "closed/x.png", Image.new("L", (4, 4)))
    for folder in (tmp_path, root):
        folder.chmod(0o755)  # 'nobody' may enter
    (root / "locked.png").chmod(0)
    (root / "closed").chmod(0)
    try:
        out = subprocess.run(
            [sys.executable, "-c", UNREADABLE_CHECK, str(root)], capture_output=True, text=True, timeout=60
        )
    finally:
        (root / "locked.png").chmod(0o644)
        (root / "closed").chmod(0o755)
        shutil.rmtree(tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["paths"] == ["ok.png"]
    reasons = dict(result["skipped"])
    assert set(reasons) == {"closed", "locked.png"}
    assert "permission denied" in reasons["locked.png"].lower()
    assert "cannot be listed" in reasons["closed"]
    assert "locked.png" in result["error"] and "permission denied" in result["error"]


def test_undecodable_file_name_is_skipped(tmp_path):
    bad = os.fsencode(tmp_path) + b"/bad\xff name.png"
    try:
        with open(bad, "wb") as f:
            f.write(png_bytes(Image.new("L", (4, 4))))
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    save(tmp_path, "good.png", Image.new("L", (4, 4)))
    paths, skipped = scan(tmp_path)
    assert paths == ["good.png"]
    assert len(skipped) == 1 and "UTF-8" in skipped[0].reason


# --- load_array: modes and formats --------------------------------------------------------------
def test_white_pixel_is_one_scaled_exactly_once(tmp_path):
    # Scaled once: a white pixel is 1.0, not 1/255.
    save(tmp_path, "w.png", Image.new("RGB", (8, 8), (255, 255, 255)))
    save(tmp_path, "k.png", Image.new("RGB", (8, 8), (0, 0, 0)))
    save(tmp_path, "g.png", Image.new("L", (8, 8), 51))
    white = load_array(tmp_path, "w.png", RGB)
    assert white.dtype == np.float32 and white.shape == RGB
    assert np.all(white == 1.0)
    assert np.all(load_array(tmp_path, "k.png", RGB) == 0.0)
    assert np.allclose(load_array(tmp_path, "g.png", GREY), 51 / 255)
    pool = ImagePool(tmp_path, RGB)
    assert np.all(pool.array("w.png") == 1.0)
    stacked, ok = pool.arrays(["w.png", "k.png"])
    assert ok == ["w.png", "k.png"] and np.all(stacked[0] == 1.0) and np.all(stacked[1] == 0.0)


@pytest.mark.parametrize("shape", [(8, 8, 1), (8, 8, 3), (12, 20, 3), (12, 20)])
def test_output_shape_and_range(tmp_path, shape):
    rng = np.random.default_rng(0)
    save(tmp_path, "x.png", Image.fromarray(rng.integers(0, 256, (30, 17, 3), dtype=np.uint8)))
    arr = load_array(tmp_path, "x.png", shape)
    assert arr.shape == (*shape[:2], shape[2] if len(shape) == 3 else 3)
    assert arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1


@pytest.mark.parametrize(
    ("mode", "color", "expected_grey"),
    [
        ("1", 1, 255),
        ("1", 0, 0),
        ("L", 128, 128),
        ("RGB", (255, 255, 255), 255),
        ("LA", (0, 0), 255),  # fully transparent -> white
        ("LA", (0, 255), 0),
        ("RGBA", (0, 0, 0, 0), 255),
        ("RGBA", (0, 0, 0, 255), 0),
        ("RGBA", (0, 0, 0, 128), 127),  # half transparent black on white
    ],
)
def test_modes_become_grey_and_rgb(tmp_path, mode, color, expected_grey):
    save(tmp_path, "x.png", Image.new(mode, (8, 8), color))
    grey = load_array(tmp_path, "x.png", GREY)
    rgb = load_array(tmp_path, "x.png", RGB)
    assert grey.shape == GREY and rgb.shape == RGB
    assert np.allclose(grey, expected_grey / 255, atol=1.5 / 255)
    assert np.allclose(rgb, expected_grey / 255, atol=1.5 / 255)


def test_palette_png_with_transparency_composites_on_white(tmp_path):
    im = Image.new("P", (8, 8), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 red (transparent), index 1 blue
    im.paste(1, (0, 0, 4, 8))
    rel = save(tmp_path, "p.png", im, transparency=0)
    assert Image.open(tmp_path / rel).mode == "P"
    rgb = load_array(tmp_path, rel, RGB)
    assert np.allclose(rgb[:, 6:], 1.0)  # transparent red shows as white, not red
    assert np.allclose(rgb[:, :2], [0, 0, 1])  # opaque blue stays blue


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 64, 32768, 65535]] * 4, dtype=np.uint16).repeat(2, axis=1)
    rel = save(tmp_path, "deep.png", Image.fromarray(values))
    assert Image.open(tmp_path / rel).mode == "I;16"
    grey = load_array(tmp_path, rel, (4, 8, 1))[0, ::2, 0] * 255
    # Pillow's own convert("L") clips: 32768 would become 255.
    assert np.allclose(grey, [0, 64, 128, 255], atol=1.0)
    assert np.allclose(load_array(tmp_path, rel, (4, 8, 3))[0, ::2, 1] * 255, [0, 64, 128, 255], atol=1.0)


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I", [0, 100, 255], [0, 100, 255]),  # 8-bit values in a 32-bit image
        ("I", [0, 32896, 65535], [0, 128, 255]),  # 16-bit values
        ("I", [-10, 0, 10], [0, 127.5, 255]),  # no known range: stretched
        ("F", [0.0, 0.5, 1.0], [0, 127.5, 255]),
        ("F", [0.0, 100.0, 255.0], [0, 100, 255]),
    ],
)
def test_wide_modes_in_tiff(tmp_path, mode, values, expected):
    dtype = np.int32 if mode == "I" else np.float32
    arr = np.array([values] * 3, dtype=dtype).repeat(2, axis=1)
    rel = save(tmp_path, "wide.tif", Image.fromarray(arr, mode))
    assert Image.open(tmp_path / rel).mode == mode
    grey = load_array(tmp_path, rel, (3, 6, 1))[0, ::2, 0] * 255
    assert np.allclose(grey, expected, atol=1.0)


def test_a_big_16_bit_scan_decodes_in_bounded_memory(tmp_path):
    """A 12-megapixel 16-bit TIFF (24 MB of pixels): the decoder reduces it before any float copy (it made
    float64 copies of every pixel, about ten times the image, two or three decoders at once). tracemalloc
    sees numpy's allocations, not Pillow's own decode buffer: this bounds the copies the code makes."""
    import tracemalloc

    rows = np.linspace(0, 65535, 3000, dtype=np.uint16)[:, None].repeat(4000, axis=1)
    rel = save(tmp_path, "scan.tif", Image.fromarray(rows))
    raw = rows.nbytes
    del rows
    tracemalloc.start()
    try:
        grey = load_array(tmp_path, rel, (30, 40, 1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * raw, f"peak {peak / 1e6:.0f} MB for a {raw / 1e6:.0f} MB image"
    assert np.allclose(grey[[0, -1], 0, 0] * 255, [0, 255], atol=6)  # scaled, not clipped, top to bottom


def test_cmyk_jpeg(tmp_path):
    im = Image.new("CMYK", (16, 16), (0, 0, 0, 0))  # no ink: white
    im.paste((0, 0, 0, 255), (0, 0, 8, 16))  # full black ink on the left
    rel = save(tmp_path, "cmyk.jpg", im, quality=95)
    assert Image.open(tmp_path / rel).mode == "CMYK"
    rgb = load_array(tmp_path, rel, (16, 16, 3))
    assert rgb[:, 12:].mean() > 0.95 and rgb[:, :4].mean() < 0.05


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), 255), Image.new("L", (8, 8), 0), Image.new("L", (8, 8), 128)]
    rel = save(tmp_path, "anim.gif", frames[0], save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(tmp_path / rel).n_frames == 3
    assert np.all(load_array(tmp_path, rel, GREY) == 1.0)
    assert np.all(load_array(tmp_path, rel, RGB) == 1.0)


def test_animated_webp_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), (255, 255, 255)), Image.new("RGB", (8, 8), (0, 0, 0))]
    rel = save(tmp_path, "anim.webp", frames[0], save_all=True, append_images=frames[1:], lossless=True)
    assert np.allclose(load_array(tmp_path, rel, RGB), 1.0, atol=2 / 255)


def exif_rotated_jpeg(tmp_path):
    """A 40x20 (w x h) JPEG, black block at the stored top-left, EXIF orientation 6 (rotate 90 cw)."""
    im = Image.new("L", (40, 20), 255)
    im.paste(0, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    return save(tmp_path, "rotated.jpg", im, exif=exif, quality=95)


def test_exif_orientation_is_applied(tmp_path):
    rel = exif_rotated_jpeg(tmp_path)
    # Upright the image is 20 wide and 40 high, and the block is at the top-RIGHT.
    arr = load_array(tmp_path, rel, (40, 20, 1))[..., 0]
    assert arr[:10, 10:].mean() < 0.1  # top right: black
    assert arr[:10, :10].mean() > 0.9  # top left: white
    shown = Image.open(io.BytesIO(display_png(tmp_path, rel)))
    assert shown.height > shown.width  # upright: portrait


def test_one_pixel_image(tmp_path):
    rel = save(tmp_path, "dot.png", Image.new("RGB", (1, 1), (255, 0, 0)))
    arr = load_array(tmp_path, rel, (16, 16, 3))
    assert arr.shape == (16, 16, 3)
    assert np.allclose(arr, [1, 0, 0])
    shown = Image.open(io.BytesIO(display_png(tmp_path, rel)))
    assert shown.size == (256, 256)


def test_upper_case_jpeg_and_odd_names_load(tmp_path):
    for rel in ["UPPER.JPEG", "dir with space/a, b: c 'q' \"d\".jpg", "ünï/çødé 🐱.JPG"]:
        save(tmp_path, rel, Image.new("RGB", (8, 8), (255, 255, 255)), format="JPEG", quality=95)
    paths, _ = scan(tmp_path)
    assert len(paths) == 3
    for rel in paths:
        assert load_array(tmp_path, rel, GREY).mean() > 0.95


# --- bad files ----------------------------------------------------------------------------------
def bad_files(tmp_path):
    """Each damaged file and a word its error message must contain."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    jpeg = jpeg_bytes(noise)
    png = png_bytes(Image.new("RGB", (8, 8), "red"))
    bad_header_crc = bytearray(png)
    bad_header_crc[29] ^= 0xFF  # the IHDR chunk's CRC
    bad_data_crc = bytearray(png)
    idat = bad_data_crc.find(b"IDAT")
    length = int.from_bytes(bad_data_crc[idat - 4 : idat], "big")
    bad_data_crc[idat + 4 + length] ^= 0xFF  # the IDAT chunk's CRC: Pillow's decoder alone ignores it
    return {
        write_bytes(tmp_path, "truncated.jpg", jpeg[: len(jpeg) // 2]): "truncated",
        write_bytes(tmp_path, "truncated.png", bytes(png[:-30])): "",
        write_bytes(tmp_path, "text.png", b"hello, I am a text file\n"): "not an image",
        write_bytes(tmp_path, "header_crc.png", bytes(bad_header_crc)): "",
        write_bytes(tmp_path, "data_crc.png", bytes(bad_data_crc)): "checksum",
        write_bytes(tmp_path, "html.jpg", b"<html><body>404 not found</body></html>"): "not an image",
    }


def test_damaged_files_raise_image_error_naming_file_and_reason(tmp_path):
    cases = bad_files(tmp_path)
    for rel, word in cases.items():
        for call, args in ((load_array, (tmp_path, rel, GREY)), (display_png, (tmp_path, rel))):
            with pytest.raises(ImageError) as info:
                call(*args)
            assert info.value.path == rel
            assert rel in str(info.value) and info.value.reason in str(info.value)
            assert word in info.value.reason


def test_pool_records_damaged_files_and_keeps_the_rest(tmp_path):
    cases = bad_files(tmp_path)
    save(tmp_path, "good.png", Image.new("L", (4, 4), 255))
    pool = ImagePool(tmp_path, GREY)
    assert set(pool.paths) == set(cases) | {"good.png"}  # scan does not decode: all listed
    assert pool.skipped == []
    arrays, ok = pool.arrays(pool.paths)
    assert ok == ["good.png"] and arrays.shape == (1, *GREY) and np.all(arrays == 1.0)
    assert {s.path for s in pool.skipped} == set(cases)
    with pytest.raises(ImageError, match="truncated.jpg"):
        pool.array("truncated.jpg")  # a second time: the same error, not a second skipped entry
    assert len(pool.skipped) == len(cases)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    rel = save(tmp_path, "bomb.png", Image.new("L", (40, 40)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 pixels > 2 x 100: Pillow raises
    with pytest.raises(ImageError, match=r"bomb.png.*decompression bomb.*MAX_IMAGE_PIXELS"):
        load_array(tmp_path, rel, GREY)
    with pytest.raises(ImageError, match="decompression bomb"):
        display_png(tmp_path, rel)


def test_file_deleted_after_scan(tmp_path):
    save(tmp_path, "a/gone.png", Image.new("L", (4, 4)))
    save(tmp_path, "a/stays.png", Image.new("L", (4, 4)))
    pool = ImagePool(tmp_path, GREY)
    (tmp_path / "a/gone.png").unlink()
    with pytest.raises(ImageError, match=r"a/gone.png.*(deleted|moved)"):
        pool.array("a/gone.png")
    assert [s.path for s in pool.skipped] == ["a/gone.png"]
    assert pool.paths == ["a/gone.png", "a/stays.png"]  # .paths is never changed under a reader
    _, ok = pool.arrays(pool.paths)
    assert ok == ["a/stays.png"]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.png", "a/../../x.png", "", "a//b.png"])
def test_paths_must_stay_relative(tmp_path, bad):
    with pytest.raises(ImageError, match="relative"):
        load_array(tmp_path, bad, GREY)


def test_truncated_images_are_not_loaded_globally():
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- display_png --------------------------------------------------------------------------------
def test_display_upscales_small_with_nearest_and_shrinks_large(tmp_path):
    digit = Image.new("L", (8, 8), 255)
    digit.putpixel((0, 0), 0)
    save(tmp_path, "digit.png", digit)
    save(tmp_path, "big.jpg", Image.new("RGB", (2000, 1000), (10, 200, 30)), quality=90)
    save(tmp_path, "mid.png", Image.new("RGB", (300, 100), (255, 255, 255)))
    small = Image.open(io.BytesIO(display_png(tmp_path, "digit.png")))
    assert small.format == "PNG" and small.mode == "RGB" and small.size == (256, 256)
    pixels = np.asarray(small)
    assert np.all(pixels[:32, :32] == 0) and np.all(pixels[32:, 32:] == 255)  # sharp blocks: NEAREST
    big = Image.open(io.BytesIO(display_png(tmp_path, "big.jpg", max_side=384)))
    assert big.size == (384, 192)
    assert np.allclose(np.asarray(big).mean(axis=(0, 1)), [10, 200, 30], atol=4)
    mid = Image.open(io.BytesIO(display_png(tmp_path, "mid.png", max_side=384)))
    assert mid.size == (300, 100)


# --- ImagePool ----------------------------------------------------------------------------------
def test_pool_cache_is_thread_safe_and_returns_fresh_copies(tmp_path, monkeypatch):
    for i in range(12):
        save(tmp_path, f"c/{i:02d}.png", Image.new("L", (8, 8), i * 20))
    pool = ImagePool(tmp_path, GREY)
    calls = []
    real = pool_mod._load_uint8
    monkeypatch.setattr(pool_mod, "_load_uint8", lambda *a: calls.append(a[1]) or real(*a))
    errors = []

    def worker():
        try:
            for p in pool.paths:
                assert np.allclose(pool.array(p), int(p[2:4]) * 20 / 255)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and not any(t.is_alive() for t in threads)
    decoded = len(calls)
    arr = pool.array("c/00.png")
    arr += 1  # a caller changing its copy must not change the cache
    assert np.all(pool.array("c/00.png") == 0.0)
    assert len(calls) == decoded  # served from the cache
    assert set(calls) == set(pool.paths)


def test_pool_input_shape_two_numbers_means_rgb(tmp_path):
    save(tmp_path, "x.png", Image.new("L", (4, 4), 255))
    pool = ImagePool(tmp_path, (10, 12))
    assert pool.input_shape == (10, 12, 3) and pool.array("x.png").shape == (10, 12, 3)
    with pytest.raises(ValueError, match="input_shape"):
        ImagePool(tmp_path, (10, 12, 2))


def test_pool_on_real_digits(digits_dir):
    pool = ImagePool(digits_dir, (16, 16, 1))
    assert len(pool.paths) == 200 and pool.skipped == []
    assert all(p.count("/") == 1 and p.split("/")[0].isdigit() for p in pool.paths)
    arrays, ok = pool.arrays(pool.paths[:20])
    assert arrays.shape == (20, 16, 16, 1) and ok == pool.paths[:20]
    assert arrays.max() == 1.0 and arrays.min() < 0.2  # white paper, dark ink, scaled once


# --- split_test ---------------------------------------------------------------------------------
paths_strategy = st.lists(st.text(min_size=1, max_size=8), max_size=60, unique=True)


@settings(max_examples=200, deadline=None)
@given(paths=paths_strategy, fraction=st.floats(0, 0.999), seed=st.integers(0, 2**32 - 1))
def test_split_test_properties(paths, fraction, seed):
    test = split_test(paths, fraction, seed)
    n = len(paths)
    assert test == split_test(list(reversed(paths)), fraction, seed)  # deterministic, order-free
    assert len(set(test)) == len(test) and set(test) <= set(paths)
    assert test == sorted(test)
    if n < 2 or fraction == 0:
        assert test == []
    else:
        assert 1 <= len(test) <= n - 1  # at least one to test, at least one to train
        assert abs(len(test) - n * fraction) <= 1 or len(test) in (1, n - 1)


def test_split_test_depends_on_seed_and_rejects_bad_fraction():
    paths = [f"c/{i:03d}.png" for i in range(100)]
    a, b = split_test(paths, 0.2, 0), split_test(paths, 0.2, 1)
    assert len(a) == len(b) == 20 and a != b
    assert split_test(paths, 0.2, 0) == a
    assert split_test(["a", "b"], 0.9, 0) in (["a"], ["b"])
    for bad in (-0.1, 1.0, 1.5, "0.2", None, True):
        with pytest.raises(ValueError, match="test_fraction"):
            split_test(paths, bad, 0)
