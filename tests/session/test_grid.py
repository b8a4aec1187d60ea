"""The grid page, headless: which tiles, what each will get, one commit per page, undo of a page.

Real SQLite store and images, a fake trainer (no TensorFlow): predictions arrive as the trainer's
Updates do.
"""

from __future__ import annotations

import pytest
from fake_trainer import Factory
from helpers import wait_for

from oal_widget.data.store import Store, UndoConflict
from oal_widget.messages import Labelled, Unlabelled, Update
from oal_widget.session.grid import Grid
from oal_widget.session.session import Session

LABELS = ["0", "1", "2"]
SHAPE = (16, 16, 1)


def make(root, **kw) -> tuple[Session, Factory]:
    factory = Factory()
    kw.setdefault("input_shape", SHAPE)
    return Session(root, LABELS, trainer_factory=factory, **kw), factory


def truth(path: str) -> str:
    return path.split("/", 1)[0]  # the digit's folder


def predict(session, factory, wrong=(), confidence=0.9, n_labels=7) -> dict:
    """A query Update predicting every image: its true digit, or the next digit for ``wrong`` ones."""
    predictions = {}
    for path in session.pool.paths:
        name = truth(path)
        if path in wrong:
            name = LABELS[(LABELS.index(name) + 1) % len(LABELS)]
        predictions[path] = (name, confidence)
    factory.last.publish(Update(status="training", n_labels=n_labels, predictions=predictions))
    return predictions


@pytest.fixture
def session(small_digits):
    s, factory = make(small_digits, grid_size=6, test_fraction=0.25)
    yield s, factory
    s.close()


def check_order(s: Session) -> None:
    """The order stays a permutation of the images still unlabelled."""
    order = s.order()
    labelled = set(s.store.labels())
    assert len(order) == len(set(order))
    assert set(order) == {p for p in s.pool.paths if p not in labelled}


# --- the page ----------------------------------------------------------------------------------------
def test_a_tile_whose_image_joined_the_test_split_since_the_page_opened_never_stores_a_prediction(session):
    s, factory = session
    predict(s, factory)
    grid = Grid(s, grouped=False)
    grid.open()
    tile = next(t for t in grid.tiles if not t.test and t.path != s.current)
    assert grid.gets(tile) == (truth(tile.path), "accepted")
    with Store(s.workdir) as teammate:  # a teammate's near-duplicate search
        assert teammate.join_test_split([tile.path]) == [tile.path]
    s.refresh()
    assert s.is_test(tile.path) and grid.gets(tile) is None, (
        "a prediction would grade the model as a test label"
    )
    assert grid.sync() and not grid.sync()
    now = next(t for t in grid.tiles if t.path == tile.path)
    assert now.test and now.prediction is None and grid.summary()["test_unset"] >= 1
    grid.commit()
    assert s.store.get(tile.path) is None
    assert not any(isinstance(c, Labelled) and c.path == tile.path for c in factory.last.commands)


def test_the_cursor_stays_on_its_tile_when_a_tile_loses_its_prediction_in_the_grouped_page(session):
    s, factory = session
    predict(s, factory)
    grid = Grid(s)  # grouped: a tile without a prediction goes last
    grid.open()
    predicted = [t for t in grid.shown if t.prediction is not None]
    grid.point(grid.shown.index(predicted[-1]))
    under = grid.under_cursor.path
    with Store(s.workdir) as teammate:
        teammate.join_test_split([predicted[0].path])
    s.refresh()
    assert grid.sync() and grid.under_cursor.path == under, "a key would label another image"


def test_a_tile_a_teammate_labelled_since_the_page_opened_is_a_blind_opinion_never_a_prediction(small_digits):
    s, factory = make(small_digits, test_fraction=0, double_label=1.0, annotator="alice")
    predict(s, factory)
    grid = Grid(s, grouped=False)
    grid.open()
    tile = next(t for t in grid.tiles if t.path != s.current)
    with Store(s.workdir, annotator="bob") as bob:  # an import of his: no claim stops it
        bob.label(tile.path, truth(tile.path))
    s.refresh()
    assert s.is_second_opinion(tile.path) and grid.gets(tile) is None, "the model's guess as her blind label"
    assert grid.sync() and next(t for t in grid.tiles if t.path == tile.path).prediction is None
    grid.commit()
    assert s.store.record(tile.path).annotator == "bob"
    assert [a.annotator for a in s.store.annotations(tile.path)] == ["bob"], "no opinion of hers stored"
    s.close()


def test_the_page_is_the_next_images_of_the_order_current_first(session):
    s, _ = session
    grid = Grid(s)
    assert grid.size == 6 == s.config.grid_size
    grid.open()
    paths = [t.path for t in grid.tiles]
    assert paths == s.order()[:6] and paths[0] == s.current
    assert all(s.label_of(p) is None for p in paths)


def test_a_tile_shows_the_prediction_a_test_tile_never_does(session):
    s, factory = session
    grid = Grid(s)
    grid.open()
    assert all(grid.gets(t) is None for t in grid.tiles)  # no prediction yet: nothing to store
    predict(s, factory)
    grid.open()
    tests = [t for t in grid.tiles if t.test]
    trains = [t for t in grid.tiles if not t.test]
    assert tests and trains, "the seed gives a page with both kinds"
    for tile in trains:
        assert tile.prediction == (truth(tile.path), 0.9)
        assert grid.gets(tile) == (truth(tile.path), "accepted")
    for tile in tests:
        assert tile.prediction is None and grid.gets(tile) is None
    assert grid.summary() == {
        "tiles": 6, "accepted": len(trains), "person": 0, "duplicate": 0, "nothing": len(tests),
            "test_unset": len(tests),
    }  # fmt: skip


# --- the cursor and the person's choices ---------------------------------------------------------------
def test_the_cursor_moves_over_the_tiles_and_stays_on_the_page(small_digits):
    s, _ = make(small_digits, grid_size=20)
    try:
        grid = Grid(s, columns=8)
        grid.open()
        grid.move(1)
        assert grid.cursor == 1
        grid.move(dy=1)
        assert grid.cursor == 9
        grid.move(dy=1)
        assert grid.cursor == 17
        grid.move(dy=1)  # no row below: the last tile
        assert grid.cursor == 19
        grid.move(-30)
        assert grid.cursor == 0
        grid.point(12)
        assert grid.cursor == 12 and grid.under_cursor is grid.shown[12]
        grid.point(99)  # no such tile: the cursor stays
        assert grid.cursor == 12
    finally:
        s.close()


def test_a_label_sets_the_tile_under_the_cursor_and_moves_on_clear_takes_it_off(session):
    s, factory = session
    predict(s, factory)
    grid = Grid(s, grouped=False)
    grid.open()
    first = grid.under_cursor
    grid.set("2")
    assert grid.gets(first) == ("2", "person") and grid.cursor == 1
    grid.point(0)
    grid.clear()
    assert grid.gets(first) is None and first.cleared
    grid.clear()  # again: the prediction is back (a test tile stays without)
    assert grid.gets(first) == (None if first.test else (truth(first.path), "accepted"))
    with pytest.raises(ValueError, match="not one of the labels"):
        grid.set("cat")


def test_tiles_grouped_by_predicted_class_put_the_odd_one_among_its_group(session):
    s, factory = session
    grid = Grid(s, grouped=True)
    grid.open()
    wrong = next(t.path for t in grid.tiles if not t.test)
    predict(s, factory, wrong={wrong})
    grid.open()
    shown = grid.shown
    keys = [LABELS.index(t.prediction[0]) if t.prediction else 99 for t in shown]
    assert keys == sorted(keys), "tiles grouped in label order, those without a prediction last"
    odd = next(t for t in shown if t.path == wrong)
    block = [i for i, t in enumerate(shown) if t.prediction and t.prediction[0] == odd.prediction[0]]
    assert block == list(range(block[0], block[-1] + 1)), "one class, one contiguous group"
    assert shown.index(odd) in block, "the wrongly predicted image sits among the images of that class"
    grid.point(shown.index(odd))
    grid.group(False)
    assert grid.under_cursor is odd and grid.shown == grid.tiles  # the cursor stays on its tile


def test_newer_predictions_replace_the_shown_ones_only_while_the_page_is_untouched(session):
    s, factory = session
    grid = Grid(s)
    grid.open()
    predict(s, factory, confidence=0.6, n_labels=4)
    assert grid.refresh() and grid.predicted_at == 4
    predict(s, factory, confidence=0.95, n_labels=9)
    grid.point(0)
    grid.set("1")
    assert not grid.refresh(), "a touched page keeps what the person saw"
    assert {t.prediction[1] for t in grid.tiles if t.prediction} == {0.6} and grid.predicted_at == 4


def test_new_predictions_never_move_a_key_onto_another_image(session):
    """New predictions regroup the tiles. Once the person has moved the cursor the page keeps its layout;
    before that the cursor follows its tile, so the next key labels the image it was on."""
    s, factory = session
    predict(s, factory, confidence=0.9, n_labels=4)
    grid = Grid(s)
    grid.open()
    grid.move(3)
    aimed = grid.under_cursor.path
    predict(s, factory, wrong=[t.path for t in grid.tiles][:3], confidence=0.7, n_labels=9)
    assert not grid.refresh(), "a page the person is moving over keeps its layout"
    grid.set("2")
    assert [t.path for t in grid.tiles if t.chosen == "2"] == [aimed]

    grid.open()  # a new page: cursor on the first tile shown, not moved
    first = grid.under_cursor.path
    assert grid.cursor == 0
    predictions = predict(s, factory, confidence=0.9, n_labels=12)
    predictions[first] = ("2", 0.01)  # its tile moves to the end of the last group
    factory.last.publish(Update(status="training", n_labels=12, predictions=predictions))
    assert grid.refresh() and grid.predicted_at == 12
    assert grid.cursor != 0 and grid.under_cursor.path == first, "the cursor followed its tile"


def test_surest_pages_hold_the_most_confident_training_images_then_the_order(session):
    s, factory = session
    predictions = {p: (truth(p), 0.3 + i / 100) for i, p in enumerate(s.pool.paths[:10])}
    factory.last.publish(Update(status="training", n_labels=3, predictions=predictions))
    grid = Grid(s, surest=True, grouped=False)
    grid.open()
    ranked = sorted((p for p in predictions if not s.is_test(p)), key=lambda p: -predictions[p][1])
    paths = [t.path for t in grid.tiles]
    assert paths[: min(6, len(ranked))] == ranked[:6], "surest first, never a test image"
    assert len(paths) == 6 and len(set(paths)) == 6, "too few predictions: the order fills the page"
    grid.commit()
    assert not set(paths[: len(ranked[:6])]) & set(s.order()), "stored, gone from the order"
    check_order(s)
    assert grid.order(False) and not grid.surest, "an untouched page follows the new order at once"
    assert [t.path for t in grid.tiles] == s.order()[:6]
    grid.set("1")
    assert not grid.order(True) and grid.surest, "a touched page stays as it is"


# --- storing and undoing a page ------------------------------------------------------------------------
def test_commit_stores_the_page_in_one_transaction_with_its_sources(session, monkeypatch):
    s, factory = session
    predict(s, factory, n_labels=7)
    grid = Grid(s, grouped=False)
    grid.open()
    page = list(grid.tiles)
    set_tile = next(t for t in page if not t.test)
    grid.point(page.index(set_tile))
    grid.set("2")  # the person's own label over a prediction
    calls = []
    real = s.store.commit_labels
    monkeypatch.setattr(s.store, "commit_labels", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    monkeypatch.setattr(s.store, "label", lambda *a, **kw: pytest.fail("a page is stored at once"))
    sent_before = len(factory.last.commands)

    stored = grid.commit()

    assert len(calls) == 1, "one transaction for the whole page"
    want = {t.path for t in page if not t.test}
    assert set(stored) == want
    records = {r.path: r for r in s.store.records()}
    assert set(records) == want
    for path, record in records.items():
        if path == set_tile.path:
            assert (record.label, record.source, record.model_labels) == ("2", "person", None)
        else:
            assert (record.label, record.source, record.model_labels) == (truth(path), "accepted", 7)
    sent = [c for c in factory.last.commands[sent_before:] if isinstance(c, Labelled)]
    assert {(c.path, c.label, c.source) for c in sent} == {
        (p, records[p].label, records[p].source) for p in want
    }, "the trainer hears of every label, with its source"
    assert not set(stored) & set(s.order()), "the order moved on: those images are no longer wanted"
    check_order(s)
    assert [t.path for t in grid.tiles] == s.order()[:6], "the next page shows"
    assert not {t.path for t in grid.tiles} & want


def test_backspace_undoes_the_whole_page_and_shows_it_again_as_it_was(session):
    s, factory = session
    predict(s, factory)
    grid = Grid(s, grouped=False)
    grid.open()
    page = [t.path for t in grid.tiles]
    grid.point(1)
    grid.set("0")
    stored = grid.commit()
    assert s.store.labels()

    restored = grid.undo()

    assert set(restored) == set(stored) and s.store.labels() == {}
    assert factory.last.labels() == {}, "the trainer forgot every label of the page"
    assert sum(isinstance(c, Unlabelled) for c in factory.last.commands) == len(stored)
    assert [t.path for t in grid.tiles] == page and grid.tiles[1].chosen == "0"
    assert s.current == page[0]
    check_order(s)
    assert grid.undo() == [], "nothing more to undo"


def test_a_page_brought_back_by_undo_is_claimed_as_the_page_on_screen(small_digits):
    s, _ = make(small_digits, test_fraction=0.25, claim_lease=1)
    grid = Grid(s, size=12, grouped=False)  # more than the single view's image and the next ones
    grid.open()
    for tile in grid.tiles:
        tile.chosen = "0"
    page = [t.path for t in grid.tiles]
    grid.commit()  # the labels end the page's claims
    grid.undo()
    assert [t.path for t in grid.tiles] == page
    renewed: list[set[str]] = []
    real = s.store.claim

    def recording(paths, **kw):
        renewed.append(set(paths))
        return real(paths, **kw)

    s.store.claim = recording
    # The heartbeat (a third of the 1 s lease) renews the whole page, not only the images after the current.
    wait_for(lambda: any(set(page) <= paths for paths in renewed), "the page renewed")
    with Store(s.workdir) as teammate:
        assert teammate.claim(page, lease_s=60) == [], "no teammate is given an image on this page"
    s.close()


def test_the_single_views_undo_after_a_page_brings_back_every_image_of_it(session):
    """A page is one undo step wherever the undo comes from: the mirror and the trainer follow all of it."""
    s, factory = session
    predict(s, factory)
    grid = Grid(s)
    grid.open()
    stored = grid.commit()
    assert len(stored) > 1
    assert s.undo() == stored[0]
    assert all(s.label_of(p) is None for p in stored) and s.progress()["labelled"] == 0
    assert factory.last.labels() == {}
    check_order(s)


def test_a_test_image_gets_only_the_label_the_person_gives_it(session):
    s, factory = session
    predict(s, factory)
    grid = Grid(s, grouped=False)
    grid.open()
    test_tile = next(t for t in grid.tiles if t.test)
    grid.commit()
    assert s.label_of(test_tile.path) is None, "never the model's label"
    assert test_tile.path in [t.path for t in grid.tiles], "it stays on the next page, unlabelled"
    grid.point(grid.shown.index(next(t for t in grid.tiles if t.path == test_tile.path)))
    grid.set(truth(test_tile.path))
    grid.commit()
    assert s.store.record(test_tile.path).source == "person" and s.is_test(test_tile.path)


def test_nothing_to_store_stores_nothing_and_keeps_the_page(session):
    s, _ = session
    grid = Grid(s)
    grid.open()
    page = [t.path for t in grid.tiles]
    assert grid.commit() == [] and s.store.labels() == {}
    assert [t.path for t in grid.tiles] == page


def test_a_tile_labelled_by_another_session_keeps_that_label(session):
    s, factory = session
    predict(s, factory, wrong=set(s.pool.paths))  # every prediction wrong
    grid = Grid(s, grouped=False)
    grid.open()
    other = s.another_store()
    try:
        taken = next(t for t in grid.tiles if not t.test)
        other.label(taken.path, truth(taken.path))
        s.refresh()
        assert grid.gets(taken) is None
        grid.commit()
        assert s.store.get(taken.path) == truth(taken.path), "the prediction never overwrote it"
    finally:
        other.close()


def test_an_undo_over_another_annotators_change_says_so_and_keeps_it(small_digits):
    s, factory = make(small_digits, grid_size=4, test_fraction=0)
    try:
        predict(s, factory)
        grid = Grid(s)
        grid.open()
        stored = grid.commit()
        other = s.another_store()
        try:
            other.label(stored[0], "2")  # the same annotator in another session changes one image
        finally:
            other.close()
        with pytest.raises(UndoConflict):
            grid.undo()
        assert s.label_of(stored[0]) == "2" and s.store.get(stored[0]) == "2"
        assert all(s.label_of(p) is None for p in stored[1:]), "the others were undone"
        check_order(s)
    finally:
        s.close()


def test_grid_size_is_a_validated_setting():
    from oal_widget.config import Config

    assert Config().grid_size == 24
    for bad in (0, 49, 2.5, True, "24"):
        with pytest.raises(ValueError, match="grid_size"):
            Config(grid_size=bad)


def test_two_sessions_grid_pages_share_no_image(small_digits):
    """A grid page is claimed like the image on screen: two panels (or two people) on one project never
    get the same tile, in the order or in surest-first pages."""
    a, fa = make(small_digits, grid_size=8)
    b, fb = make(small_digits, grid_size=8)
    try:
        pa, pb = Grid(a), Grid(b)
        pa.open()
        assert len(pa.ahead()) == 8  # the view decodes the next page ahead: that claims nothing
        pb.open()
        tiles_a, tiles_b = {t.path for t in pa.tiles}, {t.path for t in pb.tiles}
        assert len(tiles_a) == len(tiles_b) == 8, "the second page looks past the images the first holds"
        assert not tiles_a & tiles_b, (
            "the same seed gives the same order: the second page passes over the first"
        )
        assert a.current not in tiles_b and b.current not in tiles_a
        predict(a, fa)
        predict(b, fb)
        sa, sb = Grid(a, surest=True), Grid(b, surest=True)
        sa.open()
        sb.open()
        surest_a, surest_b = {t.path for t in sa.tiles}, {t.path for t in sb.tiles}
        assert len(surest_a) == len(surest_b) == 8
        assert not surest_a & surest_b and not surest_a & tiles_b and not surest_b & tiles_a
        assert pa.refresh()  # the page takes the predictions
        stored = pa.commit()
        assert stored and not set(stored) & {t.path for t in pb.tiles}
    finally:
        a.close()
        b.close()


# --- more like this ----------------------------------------------------------------------------------
def index_by_digit(s: Session):
    """An index in which an image's nearest are the other images of its digit (one-hot features)."""
    import numpy as np

    from oal_widget.al.neighbours import Neighbours

    paths = list(s.pool.paths)
    X = np.array([[float(truth(p) == name) for name in LABELS] for p in paths])
    X += np.random.default_rng(0).normal(size=X.shape) * 0.01
    return Neighbours(paths, X, "test features")


def test_more_like_this_pages_hold_its_nearest_images_still_to_label_never_a_test_image(session):
    s, factory = session
    grid = Grid(s)
    assert s.more_like(s.current, 3) == [] and not s.more_like_ready  # not indexed yet
    factory.last.publish(Update(status="waiting", neighbours=index_by_digit(s)))
    assert s.more_like_ready
    anchor = next(p for p in s.pool.paths if truth(p) == "2" and not s.is_test(p))
    twos = [p for p in s.pool.paths if truth(p) == "2" and p != anchor]
    assert any(s.is_test(p) for p in twos)  # the fixture has test images among them
    s.label("2")  # label whatever is current: it must not come back in the page
    labelled = set(s.store.labels())
    assert grid.more_like(anchor)
    page = [t.path for t in grid.tiles]
    assert page and all(truth(p) == "2" for p in page)
    assert not any(s.is_test(p) or p in labelled or p == anchor for p in page)
    expected = [p for p in twos if not s.is_test(p) and p not in labelled]
    assert set(page) == set(expected[: grid.size])
    for _ in page:
        grid.set("2")
    stored = grid.commit()  # the next page: the next nearest still to label, never the same again
    assert set(stored) == set(page)
    following = [t.path for t in grid.tiles]  # the 2s ran out: the next most similar, whatever they are
    assert following and not set(following) & (set(stored) | labelled | {anchor})
    assert not any(s.is_test(p) for p in following)
    grid.order(surest=False)  # back to the order: the like anchor is gone
    assert grid.like is None


def test_more_like_this_on_a_touched_page_keeps_the_choices(session):
    s, factory = session
    factory.last.publish(Update(status="waiting", neighbours=index_by_digit(s)))
    grid = Grid(s)
    grid.open()
    grid.set("1")
    before = [t.path for t in grid.tiles]
    assert not grid.more_like(s.pool.paths[0])
    assert [t.path for t in grid.tiles] == before and grid.like == s.pool.paths[0]
