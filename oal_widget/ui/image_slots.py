"""The single view's image as a stack of ``Image`` widgets in one grid cell: the next images are sent to
the browser ahead of time, so a key only moves a CSS class.

Sending a PNG on the key path costs the websocket transfer, the page's blob URL and Chromium's decode,
which under load is most of the key-to-image time. Here each ``Image`` sits in a frame (a ``Box``); the
visible slot's frame has the class ``oal-image`` (on top, with an opaque background); the others lie
beneath it, fully drawn, so Chromium has decoded them (Chromium decodes an image when it paints it,
and a ``display: none`` or ``visibility: hidden`` one is not painted). The classes move on the
frames, never on the images: ipywidgets' ``ImageView`` makes a new blob URL (a new decode) on ANY
change of its model. The UI thread fills the hidden slots with the upcoming images (``fill``) shortly
after each key, off the key path.

On a key (``show``, lock held, after the session saved the label) the slot is switched to only when it
holds exactly the bytes the session would show for the new current image: compared on the key path,
so an order change (re-rank, undo, back, skip, grid, review, more like this) or a slot filled before
it can never put a stale image on screen; otherwise the visible slot gets the bytes.

A switch is three small messages, so that the right image is on top at every moment and never two
elements have ``oal-image`` (a test's locator stays unique): the new frame gets ``oal-image-rising``
(on top of the visible one at once), the old one loses ``oal-image``, then the new one gets
``oal-image`` in place of ``oal-image-rising`` (beneath the next switch's rising frame).

Most keys never wait for that: the page itself brings the next image on top when a label key is
pressed (``slot_switch.py``), in the slot armed here (``arm``: the one that holds the image following
the current one); the kernel hears of it before the key (a message), takes it in if it is its latest
arm, then finds the current image on top already, and answers after the key (``answer``).
"""

from __future__ import annotations

import threading

import ipywidgets as widgets

from .slot_switch import SlotSwitch
from .style import image_layout

#: Arms whose state a page's switch is checked against (tokens go up by one or two per key).
ARMS_KEPT = 8
#: Slots: the visible image and the next ones (the session decodes three ahead).
SLOTS = 4
#: The hidden slots are filled this long after a key (or a trainer update), at most FILL_LATEST_S
#: after the first: the PNG's transfer and the page's decode of it stay out of the key's own frame
#: (an A/B on the 2-core box: decode p90 15 ms against 29 ms filled at once). Keys faster than this
#: find their image in no slot and get its bytes.
FILL_AFTER_S = 0.1
FILL_LATEST_S = 0.2
#: How long a fill waits for each upcoming image's decode under way (on the UI thread, off the key path).
FILL_WAIT_S = 0.5
SLOT = "oal-slot"
VISIBLE = "oal-image"
RISING = "oal-image-rising"


class ImageSlots:
    """``box``: the widget to place; ``image``: the visible slot's image; ``show`` on the key path,
    ``fill`` and ``arm`` on either, all with the panel's ``lock`` held (a switch the page made is
    taken in under it too)."""

    def __init__(self, side: str, lock: threading.RLock | None = None):
        self._lock = lock or threading.RLock()
        self.slots = [widgets.Image(format="png", layout=image_layout(side)) for _ in range(SLOTS)]
        self.frames = [widgets.Box([image]) for image in self.slots]
        for frame in self.frames:
            frame._dom_classes = (SLOT,)
        self.shown = 0
        self.frames[0]._dom_classes = (SLOT, VISIBLE)
        #: The file whose PNG each slot holds (None: empty or unknown).
        self.paths: list[str | None] = [None] * SLOTS
        self.switch = SlotSwitch()
        self.switch.on_msg(self._on_page_message)
        self.box = widgets.Box([*self.frames, self.switch])
        self.box.add_class("oal-slots")
        #: The latest arm, ``(from, to, following, keys)`` with its token (None: nothing armed), and the
        #: page's latest switch (its seq), taken in or refused: answered after its key.
        self._armed: tuple | None = None
        self._token = 0
        #: The states of the latest arms by token: a page's switch on an arm since replaced by one that
        #: puts the same image on top (a new token after every key, or Enter now armed too) still holds.
        self._arms: dict[int, tuple | None] = {}
        self._asked = 0
        self._last_key: float | None = None  # the page's timeStamp of the latest key answered
        #: Keys shown by the page's own switch (and page switches refused) / a class switch / sending the
        #: bytes (read by the tests).
        self.page_switches = 0
        self.refused = 0
        self.late = 0
        self.switches = 0
        self.sends = 0

    @property
    def image(self) -> widgets.Image:
        return self.slots[self.shown]

    def ahead(self) -> int:
        """How many images can be filled in beside the visible one."""
        return SLOTS - 1

    # --- the key path ---------------------------------------------------------------------------------
    def show(self, path: str, png: bytes) -> None:
        """Show ``png`` (the image of ``path``): nothing when it is on top already (the page switched to
        it on the key), a class switch when a hidden slot holds these very bytes, else the bytes are set
        on the visible slot."""
        if self.paths[self.shown] == path and bytes(self.slots[self.shown].value) == png:
            return
        j = self._holding(path, png)
        if j is None:
            visible = self.slots[self.shown]
            if visible.value != png:
                self.sends += 1
            visible.value = png
            self.paths[self.shown] = path
            return
        old, new = self.frames[self.shown], self.frames[j]
        new._dom_classes = (SLOT, RISING)
        old._dom_classes = (SLOT,)
        new._dom_classes = (SLOT, VISIBLE)
        self.shown = j
        self.switch.shown = j
        self.switches += 1

    # --- the page's switch ---------------------------------------------------------------------------------
    def arm(self, following: str | None, keys: list[str], fresh: bool = False) -> None:
        """Let the page bring ``following`` (the image after the current one) on top by itself on one of
        ``keys``, when a hidden slot holds it; otherwise (or with no keys) it waits for the kernel. A new
        token when anything changed, or ``fresh`` (after a key: the page spent its token on it)."""
        j = None
        if following is not None and keys:
            j = next((k for k, held in enumerate(self.paths) if k != self.shown and held == following), None)
        state = None if j is None else (self.shown, j, following, tuple(keys))
        if state != self._armed or fresh:
            self._armed = state
            self._token += 1
            self._arms = {t: a for t, a in self._arms.items() if t > self._token - ARMS_KEPT}
            self._arms[self._token] = state
            nothing = {"from": -1, "to": -1, "keys": []}
            where = nothing if j is None else {"from": self.shown, "to": j, "keys": list(keys)}
            self.switch.armed = {"token": self._token, **where}

    def answer(self, key_time: float | None = None) -> None:
        """After a key (``key_time``: its event's timeStamp), once the view describes the image on top:
        the page's switches so far are answered (it puts the kernel's slot on top and shows the lines
        about the image again)."""
        if isinstance(key_time, (int, float)):
            self._last_key = max(key_time, self._last_key or key_time)
        if self._asked > self.switch.settled:
            self.switch.settled = self._asked

    def _on_page_message(self, _widget, content, _buffers) -> None:
        """The page put a slot on top (its key's event follows). Taken in only when the arm it used put
        the same image on top as the latest arm (from the same slot, to the same slot, the same image
        following): the frames' classes, as the kernel keeps them, follow the page's. A refused one is
        put right by the answer after its key; one whose key came first is answered at once."""
        switched = content.get("switched") if isinstance(content, dict) else None
        if not isinstance(switched, dict):
            return
        seq, token, to, ts = (switched.get(k) for k in ("seq", "token", "to", "ts"))
        with self._lock:
            self._asked = max(self._asked, int(seq or 0))
            if isinstance(ts, (int, float)) and self._last_key is not None and ts <= self._last_key:
                self.late += 1
                self.answer()
                return
            used = self._arms.get(token) if isinstance(token, int) else None
            now = self._armed
            if now is None or used is None or used[:3] != now[:3] or now[:2] != (self.shown, to):
                self.refused += 1
                return
            j: int = now[1]
            self._armed = None  # one switch per arm
            self.frames[self.shown]._dom_classes = (SLOT,)
            self.frames[j]._dom_classes = (SLOT, VISIBLE)
            self.shown = j
            self.switch.shown = j
            self.page_switches += 1

    def clear(self) -> None:
        """Nothing to show."""
        self.arm(None, [])
        self.slots[self.shown].value = b""
        self.paths[self.shown] = None

    def _holding(self, path: str, png: bytes) -> int | None:
        for j, (held, image) in enumerate(zip(self.paths, self.slots, strict=True)):
            if j != self.shown and held == path and bytes(image.value) == png:
                return j
        return None

    # --- ahead of the keys (UI thread) -------------------------------------------------------------------
    def fill(self, upcoming: list[tuple[str, bytes]]) -> None:
        """Put the upcoming ``(path, png)`` (soonest first) into hidden slots: a slot already holding one
        keeps it; the others are reused, the image shown longest ago first."""
        wanted = dict(upcoming[: self.ahead()])
        on_screen = self.paths[self.shown]
        if on_screen is not None:  # a key came between reading the order and now
            wanted.pop(on_screen, None)
        kept: dict[str, int] = {}  # path -> the one slot that keeps it
        for j in self._hidden_oldest_first():
            held = self.paths[j]
            if held in wanted and held not in kept and bytes(self.slots[j].value) == wanted[held]:
                kept[held] = j
        free = [j for j in self._hidden_oldest_first() if j not in kept.values()]
        missing = [(path, png) for path, png in wanted.items() if path not in kept]
        for j, (path, png) in zip(free, missing, strict=False):
            if self._armed is not None and self._armed[1] == j:
                self.arm(None, [])  # no one's next while it changes: the caller arms again
            self.slots[j].value = png
            self.paths[j] = path

    def _hidden_oldest_first(self) -> list[int]:
        """The hidden slots in turn after the visible one: the slot just left comes last (kept for back)."""
        n = len(self.slots)
        return [(self.shown + k) % n for k in range(1, n)]
