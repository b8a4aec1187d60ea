"""The key sink: a tiny invisible text field the panel keeps focused while the pointer is over it.

In Notebook 7 no command-mode shortcut matches a focused text input, so keys meant for the panel never
change the notebook; ipyevents still gets them and its ``preventDefault()`` stops them being typed
(see ``panel.py``).
"""

from __future__ import annotations

import ipywidgets as widgets


class KeySink:
    def __init__(self):
        self.text = widgets.Text(layout=widgets.Layout(width="1px"))
        self.text.add_class("oal-keysink")

    def pointer(self, kind: str, labelling: bool) -> None:
        """A pointer event over the panel: focus while it is over it (``labelling``: not the end screen),
        let go when it leaves (keys go back to the notebook, as the "keys off" hint says)."""
        if kind == "mouseleave":
            self.text.blur()
        elif kind in ("mouseenter", "mouseup") and labelling:
            self.text.focus()
        if self.text.value:  # typed while ipyevents was not listening: nothing to keep
            self.text.value = ""
