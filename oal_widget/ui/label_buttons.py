"""Buttons that show their key: a row of label buttons (the single view, the grid and the review queue
each have one; while the label filter runs only the matching ones show, the one Enter picks marked), and
``action_button`` for every other action."""

from __future__ import annotations

import ipywidgets as widgets

from . import keys as keys_module


def action_button(text, action, run, *, key=None, tooltip=None, cls=None, style="") -> widgets.Button:
    """A button that runs ``action`` (``run(action)``), its ``key`` in its text; the tooltip says what the
    action does (``keys.ACTIONS`` unless ``tooltip``)."""
    button = widgets.Button(
        description=keys_module.with_key(text, key),
        tooltip=tooltip or keys_module.ACTIONS[action],
        button_style=style,
        layout=widgets.Layout(width="auto"),
    )
    if cls:
        button.add_class(cls)
    button.on_click(lambda _b: run(action))
    return button


class LabelButtons:
    """Args: ``keymap`` (merged), ``run(action)``, ``what``: the tooltip's verb ("label this image")."""

    def __init__(self, keymap, run, what: str = "label this image"):
        self._keymap, self._run, self._what = keymap, run, what
        self.buttons: list[widgets.Button] = []
        self.box = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))

    def set_labels(self, names) -> None:
        buttons = []
        for i, (name, key) in enumerate(zip(names, keys_module.label_keys(self._keymap, names), strict=True)):
            button = widgets.Button(
                description=f"{key} · {name}" if key else name,
                tooltip=f"{self._what} {name!r}" + (f" (key {key})" if key else " (/ then type its name)"),
                layout=widgets.Layout(width="auto"),
            )
            button.add_class("oal-label-button")
            button.on_click(lambda _b, i=i: self._run(("label", i)))
            buttons.append(button)
        self.buttons = buttons
        self.box.children = buttons

    def narrow(self, matches: list[int] | None, choice: int | None = None) -> None:
        """Show only the buttons of ``matches`` (None: all), ``choice`` marked."""
        keep = None if matches is None else set(matches)
        for i, button in enumerate(self.buttons):
            button.layout.display = None if keep is None or i in keep else "none"
            button.button_style = "info" if i == choice else ""

    def disable(self) -> None:
        for button in self.buttons:
            button.disabled = True
