"""The trainer's idle work: the pool decoded ahead, then every image's features indexed for "more like
this"; in ``simulate`` the index never holds an oracle image (nobody may label it)."""

from __future__ import annotations

from oal_widget.simulate import simulate


def test_the_index_covers_the_pool_and_never_an_oracle_image(digits_dir, tmp_path, monkeypatch):
    from oal_widget.data.pool import split_test
    from oal_widget.simulate import ORACLE_FRACTION
    from oal_widget.training import idle

    built = []
    original = idle.IdleWork.take_index

    def spy(self):
        index = original(self)
        if index is not None:
            built.append((index, list(self.pool.paths)))
        return index

    monkeypatch.setattr(idle.IdleWork, "take_index", spy)
    simulate(
        digits_dir, budget=12, input_shape=(16, 16, 1), workdir=tmp_path / "wd", progress=None, train_steps=1
    )
    found = sorted(p.relative_to(digits_dir).as_posix() for p in digits_dir.rglob("*.png"))
    oracle = set(split_test(found, ORACLE_FRACTION, 1))  # the simulator's own seed for it: seed + 1
    assert built, "the idle work built no index"
    index, pool_paths = built[0]
    assert set(index.paths) == set(pool_paths) and not oracle & set(index.paths)
    some = index.paths[0]
    near = index.nearest(some, 5)
    assert len(near) == 5 and some not in near
    # nearest by features: on digits most of an image's nearest share its class
    same = [p.split("/")[0] == some.split("/")[0] for p in index.nearest(some, 5)]
    assert sum(same) >= 3, near
