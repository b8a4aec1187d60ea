"""A grid page: the next images of the order as tiles, each showing the label it will get; one commit
stores the whole page.

Headless (``ui/grid.py`` draws it). A tile gets the person's own label when they set one (source
``person``), else the model's prediction as shown (``accepted``, with ``model_labels`` = the training
labels the model had when it predicted), else nothing. A test image never shows a prediction and gets
nothing until the person sets it: its label grades the model. ``commit`` stores every tile that shows a
label in ONE transaction (one undo step), the trainer hears of each, the order moves on and the next
page is built; ``undo`` takes the last step back and, when that was this grid's last page, shows the
page again as it was (the person's choices included) so one tile can be fixed and the page stored again.

The page keeps the predictions it showed: a newer query only replaces them while the person has not
touched the page yet, so what is stored is what was on screen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Tiles per row: the cursor moves up and down by this many.
COLUMNS = 8


@dataclass
class Tile:
    path: str
    test: bool
    #: (label, confidence) on the tile; always None for a test image.
    prediction: tuple[str, float] | None = None
    #: The person's own label for it.
    chosen: str | None = None
    #: The person took the label off: the tile gets nothing this page.
    cleared: bool = False
    #: Training labels the model had when it made ``prediction`` (an accepted label records it).
    at: int | None = None
    #: The label of the near-duplicate just labelled, proposed for this one (source ``duplicate``).
    proposed: str | None = None


class Grid:
    """Args: the ``Session``; ``size`` (default the ``grid_size`` setting); ``columns``; ``grouped``:
    tiles shown grouped by predicted class (the one that does not belong stands out); ``surest``: pages
    of the unlabelled training images the model is surest of, instead of the next ones in the order."""

    def __init__(
        self, session, size: int | None = None, columns: int = COLUMNS, grouped: bool = True, surest=False
    ):
        self.session = session
        self.size = size or session.config.grid_size
        self.columns = max(1, min(columns, self.size))
        self.grouped = grouped
        #: The active-learning order puts first what the model is least sure of, where its predictions are
        #: worst; a person who wants every image labelled gains most from pages of its surest predictions.
        self.surest = surest
        #: "More like this": pages of the images still to label nearest to this one (None: not that).
        self.like: str | None = None
        #: (image, its label): a page of its near-duplicates with that label proposed; Enter stores them,
        #: a label key or Delete changes one, nothing is stored without Enter (None: not that).
        self.proposal: tuple[str, str] | None = None
        #: The page in the order's order (``shown`` is the display order).
        self.tiles: list[Tile] = []
        self.cursor = 0  # an index into ``shown``
        self.moved = False  # the person moved the cursor on this page: its layout stays
        self.predicted_at: int | None = None
        self._last: tuple | None = None  # the last page stored: (tiles, paths, predicted_at)

    # --- the page -------------------------------------------------------------------------------------
    def open(self) -> None:
        """The next ``size`` images still unlabelled in the order become the page (``surest``: those the
        model is surest of, then the next in the order if there are too few predictions)."""
        s = self.session
        self.predicted_at = s.predicted_at
        self.tiles = [self._tile(path) for path in self._paths(self.size)]
        self.cursor, self.moved = 0, False

    def _candidates(self, n: int) -> list[str]:
        """Images for a page, best first (``surest``: the surest predictions, then the order)."""
        s = self.session
        if self.proposal is not None:
            return s.near_duplicates(self.proposal[0])[:n]
        if self.like is not None:  # only its neighbours: a page of the order would hide where they end
            return s.more_like(self.like, n)
        return list(dict.fromkeys((s.surest(n) if self.surest else []) + s.page(n)))

    def _paths(self, n: int) -> list[str]:
        """The page's images, claimed for this session: those another session holds are passed over, and
        more are looked at until the page is full or nothing is left."""
        want, looked = 2 * n, -1
        while True:
            candidates = self._candidates(want)
            got = self.session.reserve(candidates, n)
            if len(got) >= n or len(candidates) <= looked:
                return got
            want, looked = want * 4, len(candidates)

    def order(self, surest: bool | None = None) -> bool:
        """Pages of the surest predictions, or of the next images in the order (``None`` toggles). An
        untouched page is built again at once (True); a touched one stays, the next page follows."""
        self.surest = (not self.surest) if surest is None else surest
        self.like = self.proposal = None
        if self.touched:
            return False
        self.open()
        return True

    def more_like(self, path: str | None) -> bool:
        """Pages of the images most like ``path`` (None: back to the order). An untouched page is built
        again at once (True); a touched one stays, the neighbours' page follows it."""
        self.like, self.surest, self.proposal = path, False, None
        if self.touched:
            return False
        self.open()
        return True

    def _tile(self, path: str) -> Tile:
        test = self.session.is_test(path)
        predicted, at = self.session.prediction_with_at(path)
        proposed = self.proposal[1] if self.proposal is not None and not test else None
        return Tile(path, test, None if test else predicted, at=at, proposed=proposed)

    @property
    def touched(self) -> bool:
        return any(t.chosen is not None or t.cleared for t in self.tiles)

    def refresh(self) -> bool:
        """Take a newer query's predictions while the person has neither touched the page nor moved its
        cursor; True if any changed. New predictions regroup the tiles, so the cursor follows its tile:
        a key pressed as the page is redrawn labels the image it was on."""
        if self.touched or self.moved or not self.tiles:
            return False
        fresh = [self._tile(t.path) for t in self.tiles]
        if [t.prediction for t in fresh] == [t.prediction for t in self.tiles]:
            return False
        under = self.under_cursor
        self.tiles, self.predicted_at = fresh, self.session.predicted_at
        if under is not None:
            self.cursor = [t.path for t in self.shown].index(under.path)
        return True

    def sync(self) -> bool:
        """Tiles whose image joined the test split since the page opened (a near-duplicate of a test
        image, found here or by a teammate), or that a teammate's label made a blind second opinion, ask
        for the person's own label: their prediction and proposal go. A test image still to label whose
        near-duplicate has a training label since leaves the page (its label would grade nothing). True
        when any changed."""
        s = self.session
        under = self.under_cursor
        changed = False
        tiles = []
        for t in self.tiles:
            if s.label_of(t.path) is None and s.shadowed(t.path):
                changed = True
                continue
            test = t.test or s.is_test(t.path)
            if (test and not t.test) or (s.is_second_opinion(t.path) and (t.prediction or t.proposed)):
                t = replace(t, test=test, prediction=None, proposed=None)
                changed = True
            tiles.append(t)
        self.tiles = tiles
        if changed:  # a tile without a prediction moves in the grouped display; one may have left
            shown = [t.path for t in self.shown]
            if under is not None and under.path in shown:
                self.cursor = shown.index(under.path)
            else:
                self.cursor = min(self.cursor, max(0, len(shown) - 1))
        return changed

    @property
    def shown(self) -> list[Tile]:
        """The tiles in display order: grouped by predicted class in label order, most confident first,
        the tiles without a prediction last; else the order's order."""
        if not self.grouped:
            return list(self.tiles)
        rank = {name: i for i, name in enumerate(self.session.label_names)}

        def key(tile: Tile):
            if tile.prediction is None:
                return (len(rank) + 1, 0.0)
            name, confidence = tile.prediction
            return (rank.get(name, len(rank)), -confidence)

        return sorted(self.tiles, key=key)  # stable: ties keep the order's order

    def gets(self, tile: Tile) -> tuple[str, str] | None:
        """(label, source) the tile will be stored with, or None."""
        s = self.session
        if tile.chosen is not None:
            return tile.chosen, "person"
        if tile.cleared or tile.test or (tile.prediction is None and tile.proposed is None):
            return None
        if s.is_test(tile.path) or s.is_second_opinion(tile.path):  # since the page opened (``sync``)
            return None  # a test label or a blind second opinion is the person's own, never the model's
        if s.label_of(tile.path) is not None or not s.is_readable(tile.path):
            return None  # labelled elsewhere meanwhile (another panel), or it cannot be shown
        if tile.proposed is not None:
            return tile.proposed, "duplicate"
        return (tile.prediction[0], "accepted") if tile.prediction is not None else None

    def summary(self) -> dict[str, int]:
        """Tiles by what they will get: accepted, person, nothing (and of those, test images)."""
        out = {
            "tiles": len(self.tiles),
            "accepted": 0,
            "person": 0,
            "duplicate": 0,
            "nothing": 0,
            "test_unset": 0,
        }
        for tile in self.tiles:
            got = self.gets(tile)
            out[got[1] if got else "nothing"] += 1
            out["test_unset"] += got is None and tile.test
        return out

    def ahead(self) -> list[str]:
        """The images of the page after this one (to decode ahead), assuming this one gets stored."""
        mine = {t.path for t in self.tiles}  # looked at only: claimed when that page opens
        return [p for p in self._candidates(2 * self.size) if p not in mine][: self.size]

    # --- the cursor -----------------------------------------------------------------------------------
    @property
    def under_cursor(self) -> Tile | None:
        shown = self.shown
        return shown[self.cursor] if 0 <= self.cursor < len(shown) else None

    def move(self, dx: int = 0, dy: int = 0) -> None:
        """Move the cursor ``dx`` tiles on (rows wrap) and ``dy`` rows down; it stays on the page."""
        if self.tiles:
            self.cursor = max(0, min(len(self.tiles) - 1, self.cursor + dx + dy * self.columns))
            self.moved = True

    def point(self, index: int) -> None:
        """The cursor goes to the ``index``-th tile shown (a click)."""
        if 0 <= index < len(self.tiles):
            self.cursor, self.moved = index, True

    # --- the person's choices -------------------------------------------------------------------------
    def set(self, name: str) -> None:
        """The tile under the cursor gets ``name`` (the person's own label); the cursor moves on."""
        if name not in self.session.label_names:
            raise ValueError(f"label {name!r} is not one of the labels {self.session.label_names!r}")
        tile = self.under_cursor
        if tile is None:
            return
        tile.chosen, tile.cleared = name, False
        self.move(1)

    def clear(self) -> None:
        """The tile under the cursor gets nothing this page; again: it shows the prediction again."""
        tile = self.under_cursor
        if tile is None:
            return
        if self.gets(tile) is not None:
            tile.chosen, tile.cleared = None, True
        else:
            tile.cleared = False

    def group(self, on: bool | None = None) -> None:
        """Group the tiles by predicted class (``None`` toggles); the cursor stays on its tile."""
        tile = self.under_cursor
        self.grouped = (not self.grouped) if on is None else on
        if tile is not None:
            self.cursor = self.shown.index(tile)

    # --- storing ---------------------------------------------------------------------------------------
    def commit(self) -> list[str]:
        """Store every tile that shows a label in ONE transaction, then show the next page. Returns the
        paths stored ([] when no tile shows a label: nothing is stored, the page stays)."""
        items = []
        for tile in self.tiles:
            got = self.gets(tile)
            if got is not None:
                items.append((tile.path, *got, tile.at if got[1] == "accepted" else None))
        if not items:
            return []
        stored = self.session.actions.label_page(items, model_labels=self.predicted_at)
        self._last = ([replace(t) for t in self.tiles], frozenset(stored), self.predicted_at)
        self.open()
        return stored

    def undo(self) -> list[str]:
        """Undo this session's last step; when it was this grid's last page, that page comes back as it
        was. Returns the paths restored ([]: nothing to undo). ``UndoConflict`` names images another
        annotator changed since (they keep that label)."""
        restored = self.session.actions.undo_step()
        last, self._last = self._last, None
        if not restored:
            return []
        if last is not None and frozenset(restored) == last[1]:
            tiles = [t for t in last[0] if self.session.label_of(t.path) is None]
            # Claimed again as the page (a label ended their claims): kept while it is on screen.
            ours = set(self.session.reserve([t.path for t in tiles], len(tiles)))
            self.tiles = [t for t in tiles if t.path in ours]
            self.predicted_at, self.cursor, self.moved = last[2], 0, False
        else:
            self.open()
        return restored
