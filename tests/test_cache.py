"""The decoded-image cache: a memory-mapped uint8 file in the workdir, filled once, reused, checked."""

import os

import numpy as np
import pytest
from PIL import Image

from oal_widget.data import pool as pool_module
from oal_widget.data.cache import ArrayCache
from oal_widget.data.pool import ImageError, ImagePool, load_array

SHAPE = (16, 16, 1)


def _no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the image was cached")

    monkeypatch.setattr(pool_module, "_load_uint8", refuse)


def test_cached_arrays_equal_decoded_ones_and_stay_out_of_ram(small_digits, tmp_path):
    pool = ImagePool(small_digits, SHAPE)
    cache = pool.use_disk_cache(tmp_path / "cache")
    X, ok = pool.arrays(pool.paths)
    assert ok == pool.paths
    expected = np.stack([load_array(small_digits, p, SHAPE) for p in pool.paths])
    np.testing.assert_array_equal(X, expected)
    assert X.dtype == np.float32 and X.max() <= 1.0
    assert cache.filled() == len(pool.paths)
    assert cache.data_path.is_file() and cache.data_path.parent == tmp_path / "cache"
    assert pool._cache == {}  # nothing held in the process's own memory
    # Arrays handed out are copies: writing to one does not change the cache.
    a = pool.array(pool.paths[0])
    a[:] = 7
    np.testing.assert_array_equal(pool.array(pool.paths[0]), expected[0])


def test_a_second_pool_reads_the_cache_without_decoding(small_digits, tmp_path, monkeypatch):
    first = ImagePool(small_digits, SHAPE)
    first.use_disk_cache(tmp_path / "cache")
    X1, _ = first.arrays(first.paths)
    first.disk_cache.flush()

    _no_decoding(monkeypatch)
    second = ImagePool(small_digits, SHAPE)
    cache = second.use_disk_cache(tmp_path / "cache")
    assert cache.filled() == len(second.paths)
    X2, ok = second.arrays(second.paths)
    assert ok == second.paths
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(second.array(second.paths[3]), X1[3])


def test_an_image_edited_in_place_is_decoded_again(small_digits, tmp_path):
    pool = ImagePool(small_digits, SHAPE)
    pool.use_disk_cache(tmp_path / "cache")
    path = pool.paths[0]
    before = pool.array(path)
    pool.disk_cache.flush()
    # Overwrite with a white image and a different mtime: a new pool must not trust the old slot.
    target = small_digits / path
    Image.new("L", (16, 16), 255).save(target)
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = ImagePool(small_digits, SHAPE)
    again.use_disk_cache(tmp_path / "cache")
    after = again.array(path)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, np.ones(SHAPE, dtype=np.float32))


def test_a_damaged_file_fails_once_with_its_name_and_is_not_decoded_again(
    small_digits, tmp_path, monkeypatch
):
    bad = small_digits / "0" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    pool = ImagePool(small_digits, SHAPE)
    pool.use_disk_cache(tmp_path / "cache")
    with pytest.raises(ImageError, match="broken.png"):
        pool.array("0/broken.png")
    X, ok = pool.arrays(pool.paths)  # the others still load; the broken one is left out
    assert "0/broken.png" not in ok and len(ok) == len(pool.paths) - 1
    assert [s.path for s in pool.skipped] == ["0/broken.png"]
    _no_decoding(monkeypatch)
    with pytest.raises(ImageError, match="broken.png"):
        pool.array("0/broken.png")
    assert len(pool.skipped) == 1


def test_fill_decodes_everything_ahead_with_progress(small_digits, tmp_path):
    pool = ImagePool(small_digits, SHAPE)
    cache = pool.use_disk_cache(tmp_path / "cache")
    seen = []
    loaded = pool.fill(workers=2, progress=lambda done, total: seen.append((done, total)))
    assert loaded == len(pool.paths) == cache.filled()
    assert seen[0] == (0, len(pool.paths)) and seen[-1] == (len(pool.paths), len(pool.paths))


def test_a_changed_folder_gets_a_new_cache_and_the_old_file_goes(small_digits, tmp_path):
    folder = tmp_path / "cache"
    pool = ImagePool(small_digits, SHAPE)
    old = pool.use_disk_cache(folder)
    pool.arrays(pool.paths)
    (small_digits / pool.paths[0]).unlink()
    again = ImagePool(small_digits, SHAPE)
    new = again.use_disk_cache(folder)
    assert new.data_path != old.data_path
    assert not old.data_path.exists() and new.data_path.exists()
    X, ok = again.arrays(again.paths)
    assert ok == again.paths


def test_an_unwritable_cache_folder_names_itself_and_what_to_do(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="image_cache=False") as e:
        ArrayCache(blocker / "cache", "images", 4, SHAPE)
    assert str(blocker) in str(e.value)
