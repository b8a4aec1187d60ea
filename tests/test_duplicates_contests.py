"""The closer look at pairs left out for their crowd: the copies of one picture (a group of three) do not
count as each other's rivals; look-alikes still do. Real photos from scikit-image; no TensorFlow."""

from __future__ import annotations

from helpers import brick_wall

from oal_widget.data import closer_look
from oal_widget.data.closer_look import winners
from oal_widget.data.duplicates import find_groups
from oal_widget.data.pool import ImagePool


def test_copies_of_one_picture_are_not_each_others_rivals():
    # 0 with its two copies 1 and 2: each pair's close rival is the other copy.
    assert winners({(0, 1): [(0, 2)], (0, 2): [(0, 1)]}) == {(0, 1), (0, 2)}
    assert winners({(0, 1): [(0, 2), (1, 2)], (0, 2): [(0, 1)], (1, 2): []}) == {(0, 1), (0, 2), (1, 2)}
    # A close rival that did not pass the finer look itself is a look-alike: the pair loses.
    assert winners({(0, 1): [(0, 5)], (0, 2): [(0, 1)]}) == {(0, 2)}
    assert winners({(0, 1): [], (3, 4): [(3, 5)]}) == {(0, 1)}
    # Four images that pass with each other are a crowd of look-alikes, not a picture and its copies.
    crowd = {(0, 1): [(0, 2)], (0, 2): [(0, 3)], (0, 3): [(0, 1)]}
    assert winners(crowd) == set()


def test_a_patch_and_its_two_crops_among_look_alike_bricks_are_found_whole(tmp_path, monkeypatch):
    triples = brick_wall(tmp_path, copies=2, seed=1)
    pool = ImagePool(tmp_path, (64, 64, 1))

    def mixed(groups) -> int:  # groups holding more than one patch of the wall
        return sum(len({name[:3] for name in group}) > 1 for group in groups)

    found = set(find_groups(pool).groups)
    monkeypatch.setattr(closer_look, "GROUP_MOST", 2)  # every other image a rival, copies included
    apart = set(find_groups(pool).groups)
    assert len(found & triples) >= len(apart & triples) + 2
    assert mixed(found) <= mixed(apart)
