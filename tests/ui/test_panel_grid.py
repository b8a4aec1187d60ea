"""The grid view in the panel, driven as ipyevents drives it: key dicts into the panel's one key handler,
click messages into a tile's Event, button clicks. Fake trainer (no TensorFlow), real store and images."""

from __future__ import annotations

import ipyevents
import numpy as np
import pytest
from fake_trainer import Factory
from helpers import settle, wait_for
from test_panel import classes, key, walk

from oal_widget import Annotator
from oal_widget.messages import Labelled, Update
from oal_widget.ui.grid import BLANK_PNG, THUMB_SIDE

LABELS = ["0", "1", "2"]


def truth(path: str) -> str:
    return path.split("/", 1)[0]


@pytest.fixture
def panel(small_digits):
    factory = Factory()
    annotator = Annotator(
        small_digits,
        LABELS,
        trainer_factory=factory,
        input_shape=(16, 16, 1),
        grid_size=6,
        test_fraction=0.25,
    )
    yield annotator, factory
    annotator.session.close()


def predict(annotator, factory, wrong=(), n_labels=5) -> None:
    """The trainer's query: every image predicted (its true digit, or digit + 1 for ``wrong``)."""
    predictions = {}
    for path in annotator.session.pool.paths:
        name = truth(path)
        if path in wrong:
            name = LABELS[(LABELS.index(name) + 1) % 3]
        predictions[path] = (name, 0.87)
    factory.last.publish(Update(status="training", n_labels=n_labels, predictions=predictions))
    settle(annotator)


def tiles(annotator):
    view = annotator.modes.grid_view
    return list(zip(view.tiles_box.children, view._captions, view._images, strict=False))


def cursor_index(annotator) -> int:
    marked = [i for i, (tile, _, _) in enumerate(tiles(annotator)) if "oal-tile-cursor" in tile._dom_classes]
    assert len(marked) == 1, marked
    return marked[0]


# --- opening and leaving ------------------------------------------------------------------------------
def test_g_shows_a_page_of_thumbnails_and_g_or_escape_goes_back_with_the_same_key_event(panel):
    annotator, factory = panel
    event = annotator.event
    annotator._on_key(key("g"))
    assert annotator.modes.mode == "grid"
    assert {"oal-grid", "oal-tile", "oal-grid-status"} <= classes(annotator)
    assert "oal-image" not in classes(annotator), "one view at a time"
    assert annotator.event is event and event.watched_events == ["keydown"], "the same key Event, watching"
    settle(annotator)  # thumbnails are set on the UI thread
    page = annotator.modes.grid.shown
    assert len(tiles(annotator)) == 6 == len(page)
    for tile, (_, _, image) in zip(page, tiles(annotator), strict=True):
        assert bytes(image.value) == annotator.session.thumbnails.png(tile.path, THUMB_SIDE) != BLANK_PNG
    annotator._on_key(key("Escape"))
    assert annotator.modes.mode == "single" and "oal-image" in classes(annotator)
    annotator._on_key(key("g"))
    annotator._on_key(key("g"))
    assert annotator.modes.mode == "single"
    annotator.labelling.grid_button.click()  # the pointer too
    assert annotator.modes.mode == "grid"
    annotator.modes.grid_view.close.click()
    assert annotator.modes.mode == "single"


def test_every_tile_watches_clicks_only_and_a_click_puts_the_cursor_there(panel):
    annotator, _ = panel
    annotator._on_key(key("g"))
    events = annotator.modes.grid_view._events
    assert all(isinstance(e, ipyevents.Event) and e.watched_events == ["click"] for e in events)
    assert all(e.prevent_default_action is False for e in events)
    events[4]._handle_mouse_msg(None, {"type": "click", "event": "click"}, [])
    assert annotator.modes.grid.cursor == 4 == cursor_index(annotator)
    assert annotator.labels == {}, "a click labels nothing"


# --- keys ---------------------------------------------------------------------------------------------
def test_keys_move_the_cursor_set_a_tile_store_the_page_and_undo_it(panel):
    annotator, factory = panel
    s = annotator.session
    predict(annotator, factory, n_labels=5)
    annotator._on_key(key("g"))
    assert cursor_index(annotator) == 0
    annotator._on_key(key("ArrowRight"))
    annotator._on_key(key("ArrowRight"))
    annotator._on_key(key("ArrowLeft"))
    assert cursor_index(annotator) == 1
    annotator._on_key(key("ArrowDown"))  # one row of six: stays on the last tile
    assert cursor_index(annotator) == 5
    annotator._on_key(key("ArrowUp"))
    annotator._on_key(key("ArrowRight"))
    assert cursor_index(annotator) == 1
    chosen = annotator.modes.grid.under_cursor
    annotator._on_key(key("3"))  # label "2"
    assert cursor_index(annotator) == 2, "the cursor moves on"
    assert "2</b> · yours" in tiles(annotator)[1][1].value
    page = [t.path for t in annotator.modes.grid.tiles]
    gets = {t.path: annotator.modes.grid.gets(t) for t in annotator.modes.grid.tiles}
    assert "Enter stores" in annotator.modes.grid_view.status.value

    annotator._on_key(key("Enter"))

    records = {r.path: (r.label, r.source, r.model_labels) for r in s.store.records()}
    want = {p: (g[0], g[1], 5 if g[1] == "accepted" else None) for p, g in gets.items() if g is not None}
    assert records == want and records[chosen.path] == ("2", "person", None)
    sent = {(c.path, c.label, c.source) for c in factory.last.commands if isinstance(c, Labelled)}
    assert sent == {(p, v[0], v[1]) for p, v in want.items()}
    assert {t.path for t in annotator.modes.grid.tiles}.isdisjoint(want), "the next page shows"
    assert annotator._error.value == ""

    annotator._on_key(key("Backspace"))

    assert s.store.labels() == {} and factory.last.labels() == {}
    assert [t.path for t in annotator.modes.grid.tiles] == page, "the page comes back as it was"
    assert annotator.modes.grid.tiles[page.index(chosen.path)].chosen == "2"


def test_delete_takes_a_tiles_label_off_and_G_groups_the_tiles(panel):
    annotator, factory = panel
    predict(annotator, factory)
    annotator._on_key(key("g"))
    grid = annotator.modes.grid
    first = next(i for i, t in enumerate(grid.shown) if not t.test)
    cleared = grid.shown[first]
    grid.point(first)
    annotator._on_key(key("Delete"))
    assert grid.gets(cleared) is None and "no label" in tiles(annotator)[first][1].value
    assert grid.grouped and "grouped" in annotator.modes.grid_view.group.description
    annotator._on_key(key("G", shiftKey=True))
    assert not grid.grouped and "not grouped" in annotator.modes.grid_view.group.description
    assert grid.under_cursor is cleared, "the cursor stays on its tile"
    annotator._on_key(key("Enter"))
    assert annotator.session.label_of(cleared.path) is None, "a tile without a label is not stored"
    assert annotator.labels, "the others were"


def test_a_test_tile_shows_no_prediction_and_enter_leaves_it_unlabelled(panel):
    annotator, factory = panel
    predict(annotator, factory)
    annotator._on_key(key("g"))
    grid = annotator.modes.grid
    test_index = next(i for i, t in enumerate(grid.shown) if t.test)
    test_path = grid.shown[test_index].path
    assert "test: your label" in tiles(annotator)[test_index][1].value
    assert "oal-tile-test" in tiles(annotator)[test_index][0]._dom_classes
    annotator._on_key(key("Enter"))
    assert annotator.session.label_of(test_path) is None
    assert test_path in [t.path for t in grid.tiles], "it waits on the next page for the person's label"


def test_S_gives_pages_of_the_surest_predictions_without_test_images(panel):
    annotator, factory = panel
    s = annotator.session
    predictions = {p: (truth(p), 0.5 + i / 100) for i, p in enumerate(s.pool.paths)}
    factory.last.publish(Update(status="training", n_labels=5, predictions=predictions))
    settle(annotator)
    annotator._on_key(key("g"))
    annotator._on_key(key("S", shiftKey=True))
    grid, view = annotator.modes.grid, annotator.modes.grid_view
    surest = sorted((p for p in s.pool.paths if not s.is_test(p)), key=lambda p: -predictions[p][1])[:6]
    assert grid.surest and {t.path for t in grid.tiles} == set(surest)
    assert "surest first" in view.surest.description and "surest first" in view.status.value
    view.surest.click()  # the pointer too: back to the order
    assert not grid.surest and [t.path for t in grid.tiles] == s.order()[:6]


def test_enter_with_nothing_to_store_says_so(panel):
    annotator, _ = panel
    annotator._on_key(key("g"))
    annotator._on_key(key("Enter"))
    assert "nothing to store" in annotator._error.value and annotator.labels == {}


def test_the_pointer_does_it_all(panel):
    annotator, factory = panel
    predict(annotator, factory)
    annotator.labelling.grid_button.click()
    view = annotator.modes.grid_view
    view._events[2]._handle_mouse_msg(None, {"type": "click", "event": "click"}, [])
    tile = annotator.modes.grid.under_cursor
    view.labels.buttons[1].click()  # label "1" on the tile under the cursor
    assert annotator.modes.grid.gets(tile) == ("1", "person")
    view.commit.click()
    assert annotator.session.store.record(tile.path).source == "person"
    view.undo.click()
    assert annotator.labels == {}
    view.group.click()
    assert not annotator.modes.grid.grouped


def test_a_query_while_the_page_is_untouched_shows_its_predictions(panel):
    annotator, factory = panel
    annotator._on_key(key("g"))
    grid = annotator.modes.grid
    assert all(grid.gets(t) is None for t in grid.tiles)
    predict(annotator, factory)  # on the trainer's side; applied on the panel's UI thread
    assert any(grid.gets(t) for t in grid.tiles)
    assert any("87%" in caption.value for _, caption, _ in tiles(annotator))


def test_the_grid_is_one_view_the_walk_finds(panel):
    annotator, _ = panel
    annotator._on_key(key("g"))
    buttons = [w for w in walk(annotator) if "oal-label-button" in getattr(w, "_dom_classes", ())]
    assert len(buttons) == 3, "the grid's label buttons, once"


# --- provenance -----------------------------------------------------------------------------------------
def test_every_label_records_its_source_and_the_insight_panel_counts_them(panel):
    annotator, factory = panel
    s = annotator.session
    predict(annotator, factory)
    while s.is_test(s.current):
        annotator._on_key(key("ArrowRight"))
    own = s.current
    annotator._on_key(key("1"))  # the person's own label in the single view
    while s.is_test(s.current):
        annotator._on_key(key("ArrowRight"))
    accepted = s.current
    annotator._on_key(key("Enter"))  # the prediction on screen, accepted
    annotator._on_key(key("g"))
    annotator._on_key(key("Enter"))  # a page: its predictions accepted
    factory.last.first_sight = {own: np.array([0.1, 0.1, 0.8])}
    annotator._on_key(key("r"))
    annotator._on_key(key("3"))  # the review queue's fix
    records = {r.path: r.source for r in s.store.records()}
    assert records[own] == "review" and records[accepted] == "accepted"
    counts = s.counts_by_source()
    assert counts == {"person": 0, "accepted": len(records) - 1, "review": 1, "imported": 0, "duplicate": 0}
    sent = {(c.path, c.source) for c in factory.last.commands if isinstance(c, Labelled)}
    assert (own, "person") in sent and (own, "review") in sent and (accepted, "accepted") in sent
    annotator.insight.insight_button.click()
    wait_for(lambda: "labels by source" in annotator.insight.sources.value, "the counts by source")
    assert f"accepted {len(records) - 1}" in annotator.insight.sources.value


# --- more like this ----------------------------------------------------------------------------------
def publish_index(annotator, factory) -> None:
    """An index in which an image's nearest are the other images of its digit."""
    from oal_widget.al.neighbours import Neighbours

    paths = list(annotator.session.pool.paths)
    X = np.array([[float(truth(p) == name) for name in LABELS] for p in paths])
    X += np.random.default_rng(1).normal(size=X.shape) * 0.01
    factory.last.publish(Update(status="waiting", neighbours=Neighbours(paths, X, "test features")))
    settle(annotator)


def test_more_like_this_from_the_single_view_the_grid_and_the_review_queue(panel):
    a, factory = panel
    s = a.session
    a._on_key(key("M", shiftKey=True))  # not indexed yet: said, nothing else changes
    assert a.modes.mode == "single" and "still reading every image" in a._error.value
    publish_index(a, factory)
    anchor = s.current
    a._on_key(key("M", shiftKey=True))
    grid = a.modes.grid
    assert a.modes.mode == "grid" and grid.like == anchor and a._error.value == ""
    page = [t.path for t in grid.tiles]
    assert page and all(truth(p) == truth(anchor) for p in page[:3])
    assert not any(s.is_test(p) for p in page)
    assert "most like" in a.modes.grid_view.status.value
    a._on_key(key("ArrowRight"))  # in the grid: more like the tile under the cursor
    under = grid.under_cursor.path
    a._on_key(key("M", shiftKey=True))
    assert grid.like == under
    a._on_key(key("g"))  # the grid key again: the single view; again: pages of the order
    a._on_key(key("g"))
    assert a.modes.mode == "grid" and grid.like is None
    a._on_key(key("Escape"))
    labelled = s.current
    s.label(truth(labelled))
    p = np.full(3, 0.1)
    p[(LABELS.index(truth(labelled)) + 1) % 3] = 0.8  # the model thought otherwise: worth a review
    factory.last.first_sight = {labelled: p}
    a._on_key(key("r"))
    reviewed = a.modes.review.current
    assert reviewed is not None
    a.modes.review_view.like.click()  # the button does what the key does
    assert a.modes.mode == "grid" and grid.like == reviewed.path


# --- near-duplicates ---------------------------------------------------------------------------------
def test_labelling_one_image_proposes_its_near_duplicates_stored_only_on_enter(small_digits, monkeypatch):
    from oal_widget.data.duplicates import DuplicateGroups
    from oal_widget.session import duplicates

    def by_digit(paths):  # the stand-in search: each digit's images are one group
        return [tuple(sorted(p for p in paths if truth(p) == d)) for d in LABELS]

    monkeypatch.setattr(
        duplicates,
        "find_groups",
        lambda pool, progress=None, cancel=None: DuplicateGroups(
            groups=by_digit(pool.paths), kinds=("near",) * 3
        ),
    )
    a = Annotator(small_digits, LABELS, trainer_factory=Factory(), input_shape=(16, 16, 1), test_fraction=0)
    s = a.session
    assert s.duplicates.join(10) and s.duplicates.error is None
    first = s.current
    dups = [p for g in by_digit(s.pool.paths) if first in g for p in g if p != first]
    assert len(dups) >= 2
    a._on_key(key(str(LABELS.index(truth(first)) + 1)))
    if a.modes.mode != "grid":
        pytest.fail(f"no page of near-duplicates after labelling {first}: {a._error.value!r}")
    assert a.modes.grid.proposal[0] == first
    label = a.modes.grid.proposal[1]
    assert {t.path for t in a.modes.grid.tiles} == set(dups)
    assert "near-duplicate" in a._error.value and set(s.store.labels()) == {first}  # nothing stored yet
    assert "near-duplicate" in a.modes.grid_view.status.value
    a._on_key(key("Enter"))
    records = {r.path: (r.label, r.source) for r in s.store.records()}
    assert all(records[p] == (label, "duplicate") for p in dups)
    assert a.modes.mode == "single" and s.current not in dups
