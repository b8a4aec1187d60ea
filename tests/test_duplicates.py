"""Duplicate groups: exact and planted near-duplicates found, distinct images apart, the test reserve never
straddling a group (``split_test``, ``reserve_changes``). Real photos from scikit-image; no TensorFlow."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import brick_wall
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from oal_widget.data.duplicates import (
    Cancelled,
    DuplicateGroups,
    find_groups,
    reserve_changes,
    whole_groups_only,
)
from oal_widget.data.pool import ImagePool, split_test

SIDE = 64


def _patches() -> list[np.ndarray]:
    """Distinct 64x64 grey patches, with the photo around each (shifts take new content from it)."""
    import skimage.data

    out = []
    for photo in (skimage.data.camera(), skimage.data.astronaut()[..., 1], skimage.data.coffee()[..., 0]):
        for y in range(40, photo.shape[0] - SIDE - 40, 2 * SIDE):
            for x in range(40, photo.shape[1] - SIDE - 40, 2 * SIDE):
                patch = photo[y : y + SIDE, x : x + SIDE]
                if patch.std() > 20:  # flat patches (sky, background) have nothing to match on
                    out.append((photo, y, x))
    return out


def _save(folder, name, array, **options):
    path = folder / name
    Image.fromarray(array).save(path, **options)
    return name


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A folder of distinct patches and, for some, a planted copy of each kind; the expected groups."""
    folder = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(0)
    patches = _patches()
    expected = []
    for k, (photo, y, x) in enumerate(patches):
        image = photo[y : y + SIDE, x : x + SIDE]
        name = _save(folder, f"p{k:03d}.png", image)
        kind = k % 7
        if kind == 0:
            (folder / f"p{k:03d}_copy.png").write_bytes((folder / name).read_bytes())
            expected.append((name, f"p{k:03d}_copy.png"))
        elif kind == 1:
            expected.append(
                (name, _save(folder, f"p{k:03d}_q.jpg", image, quality=int(rng.integers(30, 91))))
            )
        elif kind == 2:
            f = rng.uniform(0.8, 0.95)
            c = round(SIDE * f)
            oy, ox = rng.integers(0, SIDE - c + 1, size=2)
            crop = np.asarray(
                Image.fromarray(image[oy : oy + c, ox : ox + c]).resize((SIDE, SIDE), Image.BICUBIC)
            )
            expected.append((name, _save(folder, f"p{k:03d}_crop.png", crop)))
        elif kind == 3:
            d = 4
            moved = photo[y + d : y + d + SIDE, x - d : x - d + SIDE]
            expected.append((name, _save(folder, f"p{k:03d}_shift.png", moved)))
        elif kind == 4:
            bright = np.clip(image * 1.1 + 12, 0, 255).astype(np.uint8)
            expected.append((name, _save(folder, f"p{k:03d}_bright.png", bright)))
    pool = ImagePool(folder, (SIDE, SIDE, 1))
    return pool, sorted(tuple(sorted(g)) for g in expected)


def test_planted_near_duplicates_are_grouped_and_distinct_images_are_not(planted, monkeypatch):
    from oal_widget.data import duplicate_scores, duplicates

    pool, expected = planted
    assert len(expected) >= 10
    calls = []
    found = find_groups(pool, progress=lambda done, total: calls.append((done, total)))
    assert set(found.groups) <= set(expected)  # nothing but planted groups, each whole
    # 34 images are a thin crowd: a copy scoring under CLEAR must stand far above the rest, a few do not.
    assert len(found) >= 0.75 * len(expected)
    scored = duplicates.score_pairs(pool)
    at = {p: i for i, p in enumerate(scored.order)}
    missed = [tuple(sorted((at[a], at[b]))) for a, b in set(expected) - set(found.groups)]
    assert all(scored.pairs[pair] < duplicates.CLEAR for pair in missed)
    # Every one with a full crowd's margin: these distinct patches have no look-alikes to confuse.
    monkeypatch.setattr(duplicate_scores, "THIN_MARGIN", 0.0)
    assert sorted(find_groups(pool, threshold=0.9).groups) == expected
    assert calls[-1][0] == calls[-1][1] == 2 * len(pool.paths)
    copy = next(g for g in expected if g[1].endswith("_copy.png"))
    crop = next(g for g in expected if g[1].endswith("_crop.png"))
    found = find_groups(pool, threshold=0.9)
    assert found.kinds[found.index(copy[0])] == "exact"
    assert found.kinds[found.index(crop[0])] == "near"
    assert found.group_of(crop[1]) == crop and found.others(crop[0]) == (crop[1],)
    lone = next(p for p in pool.paths if not any(p in g for g in expected))
    assert found.group_of(lone) == () and found.index(lone) is None
    assert found.n_images == 2 * len(expected)
    assert all(0.9 <= found.scores[g] <= 1.0 for g in expected)


def test_a_pool_that_grew_reuses_what_was_seen(planted, tmp_path, monkeypatch):
    from oal_widget.data import duplicate_scores

    monkeypatch.setattr(duplicate_scores, "THIN_MARGIN", 0.0)  # 34 images: every copy, as with a full crowd
    pool, expected = planted
    originals = [p for p in pool.paths if "_" not in p]
    first = find_groups(ImagePool(pool.root, pool.input_shape, paths=originals), threshold=0.9)
    assert len(first) == 0  # the originals alone: no duplicates
    decoded = []

    class Counting(ImagePool):
        def arrays(self, paths):
            decoded.extend(paths)
            return super().arrays(paths)

    grown = Counting(pool.root, pool.input_shape)
    again = find_groups(grown, previous=first, threshold=0.9)
    assert sorted(again.groups) == expected
    assert sorted(decoded) == sorted(p for p in pool.paths if "_" in p)  # only the new images decoded


def test_cancel_and_bad_settings(planted):
    pool, _ = planted
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        find_groups(pool, cancel=stop)
    with pytest.raises(Cancelled):
        find_groups(pool, cancel=lambda: True)
    with pytest.raises(ValueError, match="threshold"):
        find_groups(pool, threshold=1.5)
    with pytest.raises(ValueError, match="one row per pool.paths"):
        find_groups(pool, features=np.zeros((3, 4)))


def test_given_features_find_the_candidates(planted):
    pool, expected = planted
    arrays, _ = pool.arrays(pool.paths)
    features = arrays.reshape(len(arrays), -1)[:, ::7]  # any vectors: only the candidates come from them
    found = find_groups(pool, features=features, threshold=0.9)
    assert set(found.groups) <= set(expected)
    assert len(found) >= len(expected) // 2


def test_undecodable_files_are_left_out(tmp_path):
    import skimage.data

    image = skimage.data.camera()[100:164, 100:164]
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(image).save(tmp_path / "b.jpg", quality=60)
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    found = find_groups(ImagePool(tmp_path, (SIDE, SIDE, 1)))
    assert found.groups == (("a.png", "b.jpg"),)
    assert find_groups(ImagePool(tmp_path, (SIDE, SIDE, 1), paths=[])) == DuplicateGroups()


# --- the test split keeps groups whole -------------------------------------------------------------
def test_split_test_without_groups_is_unchanged():
    paths = [f"img_{i:03d}.png" for i in range(50)]
    assert split_test(paths, 0.2, 3, groups=[]) == split_test(paths, 0.2, 3)
    assert split_test(paths, 0.2, 3, groups=[("elsewhere.png", "other.png")]) == split_test(paths, 0.2, 3)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 40),
    fraction=st.floats(0.05, 0.9),
    seed=st.integers(0, 10**6),
    data=st.data(),
)
def test_split_test_never_straddles_a_group(n, fraction, seed, data):
    paths = [f"{i:02d}.png" for i in range(n)]
    labels = data.draw(st.lists(st.integers(0, n), min_size=n, max_size=n))  # same number: same group
    groups = [tuple(p for p, g in zip(paths, labels, strict=True) if g == k) for k in set(labels)]
    groups = [g for g in groups if len(g) > 1]
    test = set(split_test(paths, fraction, seed, groups=groups))
    for group in groups:
        assert set(group) <= test or not set(group) & test
    units = len(groups) + sum(1 for p in paths if not any(p in g for g in groups))
    assert len(test) < n  # never all
    assert test or units < 2  # never none, unless one group holds every image
    assert sorted(test) == split_test(list(reversed(paths)), fraction, seed, groups=groups)


def test_reserve_changes():
    groups = [("a", "b"), ("c", "d", "e"), ("f", "g"), ("h", "i")]
    test = {"a", "c", "f", "g", "z"}
    training = {"b", "x"}
    changes = reserve_changes(test, training, groups)
    assert changes.leave == {"a"}  # a near-duplicate of training image b
    assert changes.join == {"d", "e"}  # unlabelled near-duplicates of reserve image c
    fixed = (test - changes.leave) | changes.join
    assert not reserve_changes(fixed, training | changes.leave, groups)  # applied: nothing more to do
    assert not reserve_changes(set(), training, groups) and not reserve_changes(test, training, [])
    # A labelled reserve image grouped with an unlabelled one and a training one: only the leave.
    assert reserve_changes({"c"}, {"d"}, groups) == type(changes)(leave=frozenset({"c"}))


def test_whole_groups_only():
    groups = [("a", "b"), ("c", "d")]
    assert whole_groups_only({"a", "b", "c", "x"}, groups) == {"a", "b", "x"}


def test_look_alikes_do_not_chain_into_one_group():
    from oal_widget.data.duplicates import linked

    # 0-1 a planted copy; 2, 3, 4 look-alikes of each other and of 1, each with a better partner.
    verified = {
        (0, 1): 0.99,
        (1, 2): 0.96,
        (2, 3): 0.98,
        (3, 4): 0.97,
        (2, 4): 0.95,
        (5, 6): 1.0,
        (6, 7): 0.999,
    }
    pairs = set(linked(verified))
    assert (0, 1) in pairs and (2, 3) in pairs and (3, 4) in pairs  # each image's best partner
    assert (1, 2) not in pairs and (2, 4) not in pairs  # neither end's best: no chain from 0 to 4
    assert {(5, 6), (6, 7)} <= pairs  # sure pairs always join


# --- the relative test: a pair must stand out above each image's other neighbours --------------------
def test_a_pair_joins_only_when_it_stands_above_the_crowd():
    from oal_widget.data.duplicates import CLEAR, CLEAR_MARGIN, MARGIN, SURE, select_pairs, stands_out

    assert stands_out(0.93, 0.925 - MARGIN) and not stands_out(0.93, 0.935 - MARGIN)
    assert stands_out(CLEAR, CLEAR - CLEAR_MARGIN - 0.005) and not stands_out(
        CLEAR, CLEAR - CLEAR_MARGIN + 0.005
    )
    assert stands_out(SURE, SURE)  # identical pixels: however many copies
    # 0-1: a near-duplicate whose images have no other close neighbour; 2..6: five look-alikes, all
    # alike at about the same score; 2-3 scores best among them but does not stand out.
    scored = {(0, 1): 0.93, (0, 2): 0.6, (1, 2): 0.55}
    scored |= {(i, j): 0.92 for i in range(2, 7) for j in range(i + 1, 7)}
    scored[(2, 3)] = 0.95
    verified, top = select_pairs(scored, 0.9, [[] for _ in range(7)])
    assert set(verified) == {(0, 1)}
    assert top[0] == (0.93, 0.6) and top[2] == (0.95, 0.92, 0.92)
    # A grown pool: image 1's best scores from before count, so 0-1 is now one look-alike among many.
    verified, _ = select_pairs({(0, 1): 0.93}, 0.9, [[], [0.93, 0.92, 0.91]], start=0)
    assert not verified


def test_look_alike_digits_stay_apart_and_a_crop_of_one_is_found(tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    from oal_widget.data import duplicate_scores

    digits = load_digits()
    ones = (digits.images[digits.target == 1] * 255 / 16).round().astype(np.uint8)
    for k, image in enumerate(ones):  # 182 handwritten 1s: many look alike
        Image.fromarray(image).resize((32, 32), Image.BICUBIC).save(tmp_path / f"one_{k:03d}.png")
    original = np.asarray(Image.open(tmp_path / "one_007.png"))
    Image.fromarray(original[2:30, 1:29]).resize((32, 32), Image.BICUBIC).save(tmp_path / "crop.png")
    pool = ImagePool(tmp_path, (32, 32, 1))
    found = find_groups(pool)
    assert found.group_of("crop.png") == ("crop.png", "one_007.png")  # cropped to 88%: found
    alike = [g for g in found.groups if "crop.png" not in g]  # a few 1s are near-identical (one writer)
    monkeypatch.setattr(duplicate_scores, "MARGIN", -1.0)  # without the relative test: best partners alone
    monkeypatch.setattr(duplicate_scores, "CLEAR_MARGIN", -1.0)
    loose = find_groups(pool).groups
    assert len(alike) <= 8 and 4 * len(alike) <= len(loose) - 1, (alike, loose)


# --- a thin crowd: in a small pool the margin grows ---------------------------------------------------
def test_the_margin_grows_as_the_pool_shrinks():
    from oal_widget.data.duplicates import FULL_CROWD, MARGIN, THIN_MARGIN, pool_margin

    assert pool_margin(FULL_CROWD) == pool_margin(100 * FULL_CROWD) == MARGIN
    assert pool_margin(FULL_CROWD // 10) == pytest.approx(MARGIN + THIN_MARGIN)
    assert pool_margin(24) > pool_margin(200) > pool_margin(1000) > MARGIN
    assert pool_margin(0) == pool_margin(1)  # an empty pool is no error
    assert pool_margin(200, margin=0.1, thin_margin=0.0) == 0.1


def test_look_alike_digits_in_a_small_pool_stay_apart(tmp_path, monkeypatch):
    from oal_widget.data import duplicate_scores
    from oal_widget.data.samples import write_digits

    for path in write_digits(tmp_path, per_class=8, size=16, seed=1):  # the tests' 24 digits 0, 1, 2
        if path.parent.name not in {"0", "1", "2"}:
            path.unlink()
    pool = ImagePool(tmp_path, (16, 16, 1))
    assert len(pool.paths) == 24 and len(find_groups(pool)) == 0
    # With a full crowd's margin two handwritten 2s (0.95) stand 0.07 above their third-best neighbour.
    monkeypatch.setattr(duplicate_scores, "THIN_MARGIN", 0.0)
    assert [{p.split("/")[0] for p in g} for g in find_groups(pool).groups] == [{"2"}]


# --- a closer look at the pairs a small pool leaves in doubt -------------------------------------------
def test_a_closer_look_finds_more_planted_copies_and_nothing_else(planted, monkeypatch):
    from oal_widget.data import duplicates

    pool, expected = planted
    found = set(find_groups(pool).groups)
    monkeypatch.setattr(duplicates, "rescued", lambda *args, **kwargs: set())
    monkeypatch.setattr(duplicates, "contest_winners", lambda *args, **kwargs: set())
    coarse = set(find_groups(pool).groups)
    assert coarse < found <= set(expected)  # 34 images: the closer looks bring back copies, only copies


def test_a_closer_look_keeps_look_alike_digits_apart(tmp_path):
    from oal_widget.data import closer_look, duplicates
    from oal_widget.data.samples import write_digits

    for path in write_digits(tmp_path, per_class=8, size=16, seed=1):  # the tests' 24 digits 0, 1, 2
        if path.parent.name not in {"0", "1", "2"}:
            path.unlink()
    pool = ImagePool(tmp_path, (16, 16, 1))
    scored = duplicates.score_pairs(pool)
    verified, top = duplicates.select_pairs(scored.pairs, duplicates.NEAR_THRESHOLD, scored.best)
    doubtful = duplicates.in_doubt(scored.pairs, duplicates.NEAR_THRESHOLD, top, verified)
    # Two handwritten 2s are in doubt among 24 digits; looked at closer, they are two drawings.
    assert {scored.order[i].split("/")[0] for pair in doubtful for i in pair} == {"2"}
    assert closer_look.rescued(pool, scored.order, doubtful) == set()


# --- a closer look at the pairs left out for their crowd ------------------------------------------------
def test_contested_pairs_are_best_partners_and_their_rivals_are_look_alikes(monkeypatch):
    from oal_widget.data import duplicate_scores
    from oal_widget.data.duplicate_scores import contested

    # 0-1 a copy in a crowd: 2 and 3 look-alikes of 0, 4 has 1's pixels, 5 is 1's verified copy, 6 a
    # look-alike of 1. 0-5, 1-2, 2-3 are nobody's best partner; 6-7 scores under the threshold.
    scored = {
        (0, 1): 0.95, (0, 2): 0.93, (0, 3): 0.92, (0, 4): 0.94, (0, 5): 0.90, (1, 5): 0.99,
        (1, 2): 0.91, (1, 6): 0.90, (2, 3): 0.90, (6, 7): 0.8,
    }  # fmt: skip
    hashes = [b"a", b"b", b"c", b"d", b"b", b"e", b"f", b"g"]
    verified = {(1, 5): 0.99}
    top = [(0.95, 0.94, 0.93), (0.99, 0.95, 0.91), (0.93, 0.91, 0.9), (0.92, 0.9, 0.9), (0.94,), (0.99, 0.9)]
    top += [(0.9, 0.8), (0.8,)]
    found = dict(contested(scored, 0.88, verified, hashes, top))
    assert set(found) == {(0, 1), (0, 2), (0, 3), (0, 4), (1, 6)}
    # 0's rivals: 2 and 3, not 4 (1's pixels) nor 5 (1's copy); 1's: 2 and 6, not 5 (its own copy).
    assert found[(0, 1)] == [(0, 2), (0, 3), (1, 2), (1, 6)]
    # Few contests per image at most, those standing highest above their crowd first.
    monkeypatch.setattr(duplicate_scores, "CONTESTS_MIN", 1)
    monkeypatch.setattr(duplicate_scores, "CONTESTS", 0.0)
    assert [pair for pair, _ in contested(scored, 0.88, verified, hashes, top)] == [(0, 1)]


def test_a_crop_in_a_crowd_of_look_alike_bricks_is_found(tmp_path, monkeypatch):
    from oal_widget.data import duplicates

    crops = brick_wall(tmp_path, copies=1, seed=0)
    pool = ImagePool(tmp_path, (64, 64, 1))
    found = set(find_groups(pool).groups)
    monkeypatch.setattr(duplicates, "contest_winners", lambda *args, **kwargs: set())
    coarse = set(find_groups(pool).groups)
    assert len(found & crops) >= len(coarse & crops) + 2  # crops the crowd hid, found at the closer look
    assert found - crops <= coarse - crops  # and no other pair (a few patches of the wall are alike)


def test_a_straight_edge_matches_anywhere_along_it():
    from oal_widget.data.closer_look import FINE, UNIQUE, fine_score

    rows, cols = np.mgrid[:64, :64]
    for edge, other in ((cols > 30, cols > 36), (2 * rows + cols > 80, 2 * rows + cols > 90)):
        score, unique = fine_score(edge.astype(np.float32), other.astype(np.float32))
        assert score >= FINE and unique < UNIQUE  # as alike as a crop, but the place is not determined
    import skimage.data

    photo = skimage.data.camera()[100:164, 200:264].astype(np.float32) / 255
    crop = np.asarray(Image.fromarray(photo[3:57, 5:59], mode="F").resize((64, 64), Image.BICUBIC))
    score, unique = fine_score(photo, crop)
    assert score >= FINE and unique >= UNIQUE
