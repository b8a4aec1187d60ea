"""The key sink: a tiny invisible text field the panel keeps focused while the pointer is over it.

In Notebook 7 no command-mode shortcut matches a focused text input, so keys meant for the panel never
change the notebook; ipyevents still gets them and its ``preventDefault()`` stops them being typed
(see ``panel.py``). Right after the label editor's "start labelling" the pointer is already over the
panel, and ipyevents listens only once the pointer ENTERS its source, i.e. when it next moves: until
then the focused sink takes the keys, and what is typed into it acts as those keys.
"""

from __future__ import annotations

import ipywidgets as widgets

from .keys import typed


class KeySink:
    """Args: ``on_key(event)``, the panel's key handler (it gets ipyevents-style dicts)."""

    def __init__(self, on_key):
        self._on_key = on_key
        self.text = widgets.Text(layout=widgets.Layout(width="1px"))
        self.text.add_class("oal-keysink")
        self.text.observe(self._typed, names="value")
        #: True from "start labelling" until the pointer moves (then ipyevents listens).
        self.taking_keys = False

    def take_keys(self, post) -> None:
        """Focus the sink and act on what is typed into it; ``post(fn, after=s)`` runs on the UI thread."""
        self.taking_keys = True
        for after in (0.3, 1.0):  # once the browser has made the new views
            post(self.text.focus, after=after)

    def pointer(self, kind: str, labelling: bool) -> None:
        """A pointer event over the panel: focus while it is over the labelling views, let go when it
        leaves (keys go back to the notebook, as the "keys off" hint says)."""
        if kind == "mouseleave":
            self.text.blur()
        elif kind in ("mouseenter", "mouseup") and labelling:
            self.text.focus()
        self.taking_keys = False  # the pointer moved: ipyevents listens from now on
        if self.text.value:  # typed while nothing listened, or already acted on: nothing to keep
            self.text.value = ""

    def _typed(self, change) -> None:
        if self.taking_keys:
            for char in typed(change["old"], change["new"]):
                self._on_key({"type": "keydown", "key": char, "shiftKey": char.isupper()})
