"""The ways of labelling beside the single view: the grid (``g``) and the review queue (``r``), and the
label filter (``/``) that works in all three. Composed into the panel, which calls these with its lock
held (keys and buttons on the kernel's main thread, trainer updates on its UI thread).

The same keys mean what the view on screen says they mean (``actions.in_grid``, ``actions.in_review``;
the single view's are ``keys.perform``); they arrive through the panel's one ipyevents Event whatever
the view, so they work in JupyterLab and Notebook 7 alike.
"""

from __future__ import annotations

from ..session.grid import Grid
from ..session.review import ReviewQueue
from . import actions, keys
from .grid import GridView
from .label_filter import LabelFilter
from .labelling import label
from .review import ReviewView

MODES = ("single", "grid", "review")


class Modes:
    """Args: the ``Session``, ``keymap``, ``run(action)`` for buttons, ``on_tile(index)``, the panel's
    ``UiThread`` (its ``post`` and ``lock``), and the single view's ``LabelButtons`` (the filter narrows
    them too)."""

    def __init__(self, session, keymap, run, on_tile, ui, single_labels):
        self.session = session
        self.mode = "single"
        self.grid = Grid(session)
        self.grid_view = GridView(keymap, run, on_tile, ui.post, ui.lock)
        self.review = ReviewQueue(session)
        self.review_view = ReviewView(keymap, run)
        self.filter = LabelFilter()
        self.filter_line = label("oal-filter")
        self.filter_line.layout.display = "none"
        self._single_labels = single_labels

    def set_labels(self, names) -> None:
        self.grid_view.labels.set_labels(names)
        self.review_view.labels.set_labels(names)

    @property
    def keys_label(self) -> bool:
        """Label keys label the image on screen (the single view, no label's name being typed)."""
        return self.mode == "single" and not self.filter.active

    def box(self, single_box):
        return {"grid": self.grid_view.box, "review": self.review_view.box}.get(self.mode, single_box)

    # --- switching ------------------------------------------------------------------------------------
    def switch(self, action: str) -> str:
        """``grid`` / ``review``: open it (again: back to the single view); ``close``: the single view.
        Returns the mode now."""
        target = {"like": "grid", "propose": "grid"}.get(action, action)
        target = "single" if action == "close" or target == self.mode and target == action else target
        self.stop_filter()
        if self.mode == "grid" and target != "grid":
            self.session.close_page()  # its images not shown next go back to the team
        self.mode = target
        if target == "grid":
            if action == "grid":  # the grid key shows the order; "more like this" and proposals set theirs
                self.grid.like = self.grid.proposal = None
            self.grid.open()
        elif target == "review":
            self.review.open()
        return target

    def more_like(self) -> str:
        """ "More like this": grid pages of the images most like the one on screen (in the grid: the tile
        under the cursor). Returns what to tell the person ("" when it went as asked)."""
        if self.mode == "grid":
            tile = self.grid.under_cursor
            anchor = tile.path if tile is not None else None
        elif self.mode == "review":
            item = self.review.current
            anchor = item.path if item is not None else None
        else:
            anchor = self.session.current
        if anchor is None:
            return "more like this: no image on screen"
        if not self.session.more_like_ready:
            return "more like this: the trainer is still reading every image (the status line says how far)"
        if self.mode == "grid":
            if not self.grid.more_like(anchor):
                return "the next page shows the images like it (this one keeps your choices)"
        else:
            self.grid.like = anchor
            self.switch("like")
        return "" if self.grid.tiles else "more like this: no image still to label is like it"

    def offer_duplicates(self, path: str | None) -> str:
        """After ``path`` was labelled in the single view: its near-duplicates still to label come as a grid
        page with its label proposed (one Enter stores them). What to tell the person."""
        label = self.session.label_of(path)
        if label is None or not self.session.near_duplicates(path):
            return ""
        self.grid.proposal = (path, label)
        self.switch("propose")
        n = len(self.grid.tiles)
        return (
            f"{n} near-duplicate(s) of the image you labelled: Enter gives them {label!r}, Escape leaves them"
        )

    # --- actions --------------------------------------------------------------------------------------
    def do(self, action, shown=None) -> str:
        """An action in the view on screen; what to tell the person. ``shown``: the single view's
        prediction on screen (the only one Enter accepts there). A label given in the single view brings
        that image's near-duplicates (``offer_duplicates``)."""
        if self.mode == "single":
            on = self.session.current
            said = keys.perform(self.session, action, shown)
            return said or (self.offer_duplicates(on) if isinstance(action, tuple) else "")
        if self.mode == "grid":
            said = actions.in_grid(self.grid, action)
            if self.grid.proposal is not None and not self.grid.tiles:  # the near-duplicates are stored
                self.switch("close")
            return said
        return actions.in_review(self.review, action)

    def tile(self, index: int) -> None:
        """A click on a tile: the cursor goes there."""
        if self.mode == "grid":
            self.grid.point(index)
            self.grid_view.draw_cursor(self.grid, self.session)

    def show(self) -> None:
        """Draw the grid or the review view from the headless state."""
        if self.mode == "grid":
            self.grid.sync()  # images that joined the test split since the page opened
            self.grid_view.show(self.grid, self.session)
        elif self.mode == "review":
            self.review.sync()  # labels another session changed since the queue opened
            self.review_view.show(self.review, self.session)

    def refresh(self) -> None:
        """After a trainer update: the grid takes newer predictions while its page is untouched."""
        if self.mode == "grid" and self.grid.refresh():
            self.grid_view.show(self.grid, self.session)
        elif self.mode == "grid":
            self.grid_view.draw_cursor(self.grid, self.session)

    # --- the label filter -----------------------------------------------------------------------------
    def start_filter(self) -> None:
        self.filter.start(self.session.label_names)
        self._draw_filter()

    def stop_filter(self) -> None:
        if self.filter.active:
            self.filter.stop()
        self._draw_filter()

    def filter_key(self, key):
        """A key while the filter runs: ``("label", i)`` when Enter picked one, else None."""
        picked = self.filter.key(key)
        self._draw_filter()
        return picked if isinstance(picked, tuple) else None

    def _draw_filter(self) -> None:
        f = self.filter
        self.filter_line.value = f.describe() if f.active else ""
        self.filter_line.layout.display = None if f.active else "none"
        for buttons in (self._single_labels, self.grid_view.labels, self.review_view.labels):
            buttons.narrow(f.matches() if f.active else None, f.choice if f.active else None)

    def disable(self) -> None:
        self.grid_view.disable()
        for button in self.review_view.buttons + self.review_view.labels.buttons:
            button.disabled = True
