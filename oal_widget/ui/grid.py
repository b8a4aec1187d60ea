"""The grid view: a page of thumbnails (``session.grid.Grid``), each tile saying the label it will get.

A thin view: the page, the cursor and what each tile gets live in the headless ``Grid``; this draws
them. The tile widgets are made once (``grid_size`` of them) and reused page after page; each has an
ipyevents Event watching ``click`` only (a click puts the cursor there; keys still come through the
panel's one key Event). Thumbnails are decoded by the session's prefetch thread and set on the panel's
UI thread, never on the key path; the next page is decoded ahead while this one shows.
"""

from __future__ import annotations

import html

import ipyevents
import ipywidgets as widgets

from ..data.pool import ImageError
from . import keys as keys_module
from .label_buttons import LabelButtons, action_button

#: Longest side of a thumbnail, in pixels.
THUMB_SIDE = 96
#: Shown until a thumbnail is decoded: a 1x1 transparent PNG (never a broken-image icon).
BLANK_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


class GridView:
    """Args: ``keymap`` (merged), ``run(action)`` for the buttons, ``on_tile(index)`` for a click on
    the ``index``-th tile shown, ``post(fn)`` to run on the panel's UI thread, the panel's ``lock``."""

    def __init__(self, keymap, run, on_tile, post, lock):
        self._keys = keys_module.by_action(keymap)
        self._run, self._on_tile, self._post, self._lock = run, on_tile, post, lock
        w = widgets
        self.status = w.HTML()
        self.status.add_class("oal-grid-status")
        self.commit = self._button("store page", "accept", "oal-grid-commit", "success")
        self.undo = self._button("undo page", "undo", "oal-grid-undo")
        self.clear = self._button("no label", "clear", "oal-grid-clear")
        self.group = self._button("grouped by class", "group", "oal-grid-group")
        self.surest = self._button("next in order", "surest", "oal-grid-surest")
        self.like = self._button("more like this", "like", "oal-grid-like")
        self.close = self._button("single view", "close", "oal-grid-close")
        self.labels = LabelButtons(keymap, run, what="label the tile under the cursor")
        self.tiles_box = w.GridBox(layout=w.Layout(grid_gap="6px"))
        self.tiles_box.add_class("oal-grid")
        self.tiles: list[widgets.VBox] = []
        self._images: list[widgets.Image] = []
        self._captions: list[widgets.HTML] = []
        self._events: list = []  # each tile's click Event: kept, else it would be collected
        self._showing: list[str | None] = []  # the path each tile widget shows (images are set once)
        self.buttons = [self.commit, self.undo, self.clear, self.group, self.surest, self.like, self.close]
        buttons = w.HBox(self.buttons, layout=w.Layout(flex_flow="row wrap"))
        self.box = w.VBox([self.status, buttons, self.tiles_box, self.labels.box])
        self.box.add_class("oal-grid-view")

    def _button(self, text, action, cls, style="") -> widgets.Button:
        hint = keys_module.IN_GRID.get(action)
        return action_button(
            text, action, self._run, key=self._keys.get(action), tooltip=hint, cls=cls, style=style
        )

    def _ensure(self, n: int, columns: int) -> None:
        """``n`` tile widgets in ``columns`` columns (made once, reused for every page)."""
        # Columns share the width (never wider than the output area); a thumbnail shrinks to fit.
        self.tiles_box.layout.grid_template_columns = f"repeat({columns}, minmax(0, {THUMB_SIDE + 12}px))"
        side = THUMB_SIDE
        while len(self.tiles) < n:
            i = len(self.tiles)
            image = widgets.Image(
                value=BLANK_PNG,
                format="png",
                layout=widgets.Layout(
                    width="100%", max_width=f"{side}px", height=f"{side}px", object_fit="contain"
                ),
            )
            caption = widgets.HTML()
            caption.add_class("oal-tile-caption")
            tile = widgets.VBox([image, caption], layout=widgets.Layout(padding="3px", align_items="center"))
            tile.add_class("oal-tile")
            event = ipyevents.Event(source=tile, watched_events=["click"], prevent_default_action=False)
            event.on_dom_event(lambda _e, i=i: self._on_tile(i))
            self.tiles.append(tile)
            self._images.append(image)
            self._captions.append(caption)
            self._events.append(event)
            self._showing.append(None)
        self.tiles_box.children = self.tiles[:n]

    # --- showing the page (lock held) -------------------------------------------------------------------
    def show(self, grid, session) -> None:
        """The page, the cursor and the status; thumbnails not decoded yet are filled on the UI thread."""
        shown = grid.shown
        self._ensure(len(shown), grid.columns)
        missing = []
        for i, tile in enumerate(shown):
            if self._showing[i] != tile.path:
                self._showing[i] = tile.path
                self._images[i].value = BLANK_PNG
                missing.append(tile.path)
            self._draw(i, tile, grid, session)
        self.group.description = keys_module.with_key(
            "grouped by class" if grid.grouped else "not grouped", self._keys.get("group")
        )
        pages = "surest first" if grid.surest else "like one image" if grid.like else "next in order"
        self.surest.description = keys_module.with_key(f"pages: {pages}", self._keys.get("surest"))
        self.status.value = status_html(grid)
        if missing:
            session.thumbnails.prefetch(missing, THUMB_SIDE)
            self._post(lambda: self._fill(session))
        ahead = grid.ahead()
        if ahead:
            session.thumbnails.prefetch(ahead, THUMB_SIDE)

    def draw_cursor(self, grid, session) -> None:
        """Only the captions and the cursor (a key that changed no tile's image)."""
        for i, tile in enumerate(grid.shown):
            self._draw(i, tile, grid, session)
        self.status.value = status_html(grid)

    def _draw(self, i: int, tile, grid, session) -> None:
        got = grid.gets(tile)
        caption, state = tile_caption(tile, got, session.label_of(tile.path))
        classes = ["oal-tile", f"oal-tile-{state}"]
        if i == grid.cursor:
            classes.append("oal-tile-cursor")
        if tile.prediction is not None and tile.prediction[0] in session.label_names:
            classes.append(f"oal-class-{session.label_names.index(tile.prediction[0]) % 10}")
        self.tiles[i]._dom_classes = tuple(classes)  # one message, not one per class
        # The file name shows when the pointer rests on the caption.
        self._captions[i].value = f'<div title="{html.escape(tile.path, quote=True)}">{caption}</div>'

    def _fill(self, session) -> None:
        """UI thread: wait for the thumbnails outside the lock, set them under it (if still shown)."""
        with self._lock:
            wanted = [p for p in self._showing if p is not None]
        found: dict[str, bytes | str] = {}  # path -> PNG bytes, or why it cannot be read
        for path in wanted:
            try:
                found[path] = session.thumbnails.png(path, THUMB_SIDE)
            except ImageError as e:
                found[path] = e.reason
        with self._lock:
            for i, shown in enumerate(self._showing):
                got = found.get(shown) if shown is not None else None
                if isinstance(got, bytes) and self._images[i].value != got:
                    self._images[i].value = got
                elif isinstance(got, str):
                    self._captions[i].value = f"<small>cannot be read: {html.escape(got)}</small>"

    def disable(self) -> None:
        for button in [*self.buttons, *self.labels.buttons]:
            button.disabled = True


def tile_caption(tile, got, labelled: str | None) -> tuple[str, str]:
    """(caption HTML, state) of a tile: what it will get and why."""
    if got is not None:
        name, source = got
        if source == "person":
            return f"<b>{html.escape(name)}</b> · yours", "person"
        if source == "duplicate":
            return f"<b>{html.escape(name)}</b> · near-duplicate", "accepted"
        confidence = tile.prediction[1]
        return f"{html.escape(name)} · {confidence:.0%}", "accepted"
    if labelled is not None:
        return f"<small>labelled {html.escape(labelled)} elsewhere</small>", "empty"
    if tile.test:
        return "<small>test: your label</small>", "test"
    if tile.cleared:
        return "<small>no label</small>", "empty"
    return "<small>no prediction</small>", "empty"


def status_html(grid) -> str:
    counts = grid.summary()
    like = f" like <code>{html.escape(grid.like)}</code>" if grid.like is not None else ""
    if not counts["tiles"]:
        return f"<b>Grid</b>: nothing left to label{like}"
    parts = [f"{counts['accepted']} take the model's label", f"{counts['person']} yours"]
    if grid.proposal is not None:
        label = html.escape(grid.proposal[1])
        parts.insert(
            0, f"{counts['duplicate']} near-duplicates of the image you labelled take its label {label}"
        )
    if counts["nothing"]:
        test = counts["test_unset"]
        why = f" ({test} test: they need your label)" if test else ""
        parts.append(f"{counts['nothing']} get none{why}")
    at = "" if grid.predicted_at is None else f" · predictions by the model at {grid.predicted_at} labels"
    if grid.like is not None:
        at += f" · the images most like <code>{html.escape(grid.like)}</code> first (no test images)"
    if grid.surest:
        at += " · surest first (no test images: the single view and pages in order ask for those)"
    stored = counts["accepted"] + counts["person"] + counts["duplicate"]
    return (
        f"<b>Grid</b>: {counts['tiles']} images · " + " · ".join(parts) + at
        + f" · Enter stores {stored} in one step" + warning_html(grid.session, counts["accepted"])
    )  # fmt: skip


#: Below this estimated accuracy the grid warns that Enter stores the model's mistakes too.
TRUSTED_ACCURACY = 0.9


def warning_html(session, accepted: int) -> str:
    """A warning while the model is not good enough for its predictions to be stored unchecked."""
    if not accepted:
        return ""
    metrics = session.latest.metrics
    accuracy = metrics[-1].get("accuracy") if metrics else None
    if accuracy is not None and accuracy >= TRUSTED_ACCURACY:
        return ""
    how = (
        "not evaluated yet"
        if accuracy is None
        else f"right on about {accuracy:.0%} of all images (less on those it is unsure of)"
    )
    return (
        f"<br><span class='oal-grid-warning'>The model is {how}: check every tile before Enter, "
        "a blind Enter stores its wrong predictions as labels.</span>"
    )
