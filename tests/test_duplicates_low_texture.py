"""Near-duplicates of smooth colour images (a colour wheel's patches), scored on their colour where the
band-passed correlation is noise; textured and grey images keep their score. Real images from
scikit-image; no TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oal_widget.data import low_texture
from oal_widget.data.duplicates import find_groups
from oal_widget.data.low_texture import MIN_CHROMA, chroma_fields, chroma_similarity
from oal_widget.data.pool import ImagePool

SIDE = 64


def _wheel_patches() -> list[np.ndarray]:
    """The colour wheel cut into 64x64 patches: smooth, and alike in grey (25 gradients)."""
    import skimage.data

    wheel = skimage.data.colorwheel()[..., :3]
    return [wheel[y : y + SIDE, x : x + SIDE] for y in range(8, 300, SIDE) for x in range(8, 300, SIDE)]


def _textured_patches() -> list[np.ndarray]:
    import skimage.data

    out = []
    for photo in (skimage.data.astronaut(), skimage.data.coffee()):
        for y in range(40, 360, 2 * SIDE):
            for x in range(40, 360, 2 * SIDE):
                out.append(photo[y : y + SIDE, x : x + SIDE])
    return out


@pytest.fixture(scope="module")
def wheel_pool(tmp_path_factory):
    """Colour wheel patches, textured photo patches, and for three wheel patches a JPEG re-encode or a
    brighter copy; the planted groups."""
    folder = tmp_path_factory.mktemp("wheel")
    wheel, textured = _wheel_patches(), _textured_patches()
    for k, patch in enumerate(wheel):
        Image.fromarray(patch).save(folder / f"w{k:02d}.png")
    for k, patch in enumerate(textured):
        Image.fromarray(patch).save(folder / f"t{k:02d}.png")
    expected = []
    for k in (3, 11, 17):
        Image.fromarray(wheel[k]).save(folder / f"w{k:02d}_q.jpg", quality=40)
        expected.append((f"w{k:02d}.png", f"w{k:02d}_q.jpg"))
    brighter = np.clip(wheel[21].astype(np.float32) * 1.1 + 15, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(folder / "w21_bright.png")
    expected.append(("w21.png", "w21_bright.png"))
    return ImagePool(folder, (SIDE, SIDE, 3)), sorted(expected)


def test_smooth_colour_copies_are_found_and_look_alike_gradients_stay_apart(wheel_pool, monkeypatch):
    pool, expected = wheel_pool
    found = find_groups(pool)
    assert sorted(found.groups) == expected  # every re-encode and brighter copy, nothing else
    # Without the colour, their band-passed correlation is noise: none of them is found.
    monkeypatch.setattr(low_texture, "LOW_ENERGY", 0.0)
    assert set(find_groups(pool).groups).isdisjoint(expected)


def test_neighbouring_gradients_score_under_the_threshold_and_copies_near_one(wheel_pool, monkeypatch):
    from oal_widget.data.duplicate_scores import CLEAR, NEAR_THRESHOLD, score_pairs

    pool, expected = wheel_pool
    scored = score_pairs(pool)
    changed = low_texture.rescored(pool, scored.order, scored.thumbs, scored.pairs, scored.hashes)
    copies = {tuple(sorted((scored.order.index(a), scored.order.index(b)))) for a, b in expected}
    wheel = {i for i, p in enumerate(scored.order) if p.startswith("w")}
    look_alikes = [s for (i, j), s in changed.items() if i in wheel and j in wheel and (i, j) not in copies]
    assert len(look_alikes) >= 20 and max(look_alikes) < NEAR_THRESHOLD  # two wheel patches: no pair
    assert all(changed[pair] >= CLEAR for pair in copies)
    monkeypatch.setattr(low_texture, "DECODE_BATCH", 3)  # decoded a few at a time: the same scores
    assert low_texture.rescored(pool, scored.order, scored.thumbs, scored.pairs, scored.hashes) == changed


def test_textured_and_grey_pairs_are_not_rescored(wheel_pool, tmp_path):
    from oal_widget.data.duplicate_scores import score_pairs

    pool, _ = wheel_pool
    scored = score_pairs(pool)
    textured = {i for i, p in enumerate(scored.order) if p.startswith("t")}
    changed = low_texture.rescored(pool, scored.order, scored.thumbs, scored.pairs, scored.hashes)
    assert changed  # the wheel's pairs
    assert not any(i in textured and j in textured for i, j in changed)
    # The same wheel in grey: nothing tells two smooth grey gradients apart, the scores stay as they are.
    for path in pool.paths:
        Image.open(pool.root / path).convert("L").convert("RGB").save(tmp_path / path)
    for channels in (3, 1):  # grey pixels in colour files, and a grey pool
        grey = ImagePool(tmp_path, (SIDE, SIDE, channels))
        scored = score_pairs(grey)
        assert low_texture.rescored(grey, scored.order, scored.thumbs, scored.pairs, scored.hashes) == {}


def test_chroma_ignores_brightness_and_contrast_and_grey_has_none():
    rng = np.random.default_rng(0)
    colour = rng.uniform(0.2, 0.8, size=(1, 16, 16, 3)).astype(np.float32)
    changed = np.clip(colour * 1.15 - 0.05, 0, 1)
    grey = np.repeat(colour.mean(axis=-1, keepdims=True), 3, axis=-1)
    fields = chroma_fields(np.concatenate([colour, changed, grey]))
    assert fields is not None and fields.shape == (3, 2 * low_texture.CHROMA_SIDE**2)
    assert chroma_similarity(fields[:1], fields[1:2])[0] == pytest.approx(1.0, abs=1e-5)
    assert np.isnan(chroma_similarity(fields[:1], fields[2:3])[0])  # grey: no colour to compare
    assert np.sqrt((fields[2] ** 2).mean()) < MIN_CHROMA
    assert chroma_fields(colour[..., :1]) is None
