"""The label editor: shown when a folder has no labels yet. Add names in key order, reorder, start.
Images already sorted into sub-folders: the folders' names are proposed.

The panel's key event watches keys from the start (so that they are live at once after "start
labelling", with the pointer already over the panel), and ipyevents takes them from the text box: while
the editor shows, the panel hands them to ``key``, which types the name into the box.
"""

from __future__ import annotations

import ipywidgets as widgets

from . import keys as keys_module

#: More sub-folders than this are not classes (dates, batches): nothing is proposed.
MAX_PROPOSED = 40


class LabelEditor:
    """Args: ``keymap``, ``on_start(labels)``, ``on_error(exception)``, the panel's ``error`` line,
    ``proposed``: the names to start with (``folder_names``)."""

    def __init__(self, keymap, on_start, on_error, error: widgets.Label, proposed=()):
        self._keys = keys_module.by_action(keymap)
        self._on_start, self._on_error, self._error = on_start, on_error, error
        self.labels: list[str] = list(proposed)
        w = widgets
        # continuous_update=False: the value arrives on Enter (or leaving the box), which adds it.
        self.new_label = w.Text(
            placeholder="a label, e.g. cat", continuous_update=False, layout=w.Layout(width="240px")
        )
        self.new_label.add_class("oal-new-label")
        # The value the browser sends on Enter or leaving the box (ipyevents was not listening) is added;
        # what ``key`` types is not (it sets the value character by character).
        self._typing = False
        self.new_label.observe(self._on_value, names="value")
        self.add_button = add = w.Button(description="add", layout=w.Layout(width="auto"))
        add.add_class("oal-add-label")
        add.on_click(lambda _b: self._run(self.add))
        self.rows = w.VBox()
        self.start = w.Button(description="start labelling", button_style="success", disabled=True)
        self.start.add_class("oal-start")
        self.start.on_click(lambda _b: self._run(lambda: self._on_start(list(self.labels))))
        note = (
            f"Proposed from the images' {len(self.labels)} sub-folders: reorder, remove or add, then start."
            if self.labels
            else ""
        )
        self.box = w.VBox(
            [
                w.HTML("<b>Which labels do the images get?</b> Add them in key order: the first is key 1."),
                w.HTML(note),
                w.HBox([self.new_label, add]),
                self.rows,
                self.start,
            ]
        )
        self.box.add_class("oal-label-editor")
        self.render()

    def _on_value(self, change) -> None:
        if not self._typing and change["new"].strip():
            self._run(self.add)

    def _run(self, fn) -> None:
        try:
            self._error.value = ""
            fn()
        except Exception as e:
            self._on_error(e)

    def key(self, key: str) -> None:
        """A key pressed over the panel: a character is typed into the box, Backspace deletes one, Enter
        adds the name (or, with the box empty, starts labelling)."""
        value = self.new_label.value
        if key == "Enter":
            if value.strip():
                self._run(self.add)
            elif not self.start.disabled:
                self.start.click()
            return
        if key == "Backspace":
            value = value[:-1]
        elif len(key) == 1:
            value += key
        self._typing = True
        try:
            self.new_label.value = value
        finally:
            self._typing = False

    def add(self) -> None:
        name = self.new_label.value.strip()
        if not name:
            return  # e.g. Add clicked after leaving the box already added the name
        if name in self.labels:
            self._error.value = f"label {name!r} is already in the list"
            return
        self.labels.append(name)
        self.new_label.value = ""
        self.render()

    def move(self, index: int, delta: int) -> None:
        j = index + delta
        if 0 <= j < len(self.labels):
            self.labels[index], self.labels[j] = self.labels[j], self.labels[index]
            self.render()

    def remove(self, index: int) -> None:
        del self.labels[index]
        self.render()

    def render(self) -> None:
        rows = []
        n = len(self.labels)
        for i, name in enumerate(self.labels):
            key = self._keys.get(("label", i))
            text = widgets.Label(f"{key} · {name}" if key else f"{name} (no key: / then type it)")
            text.add_class("oal-editor-label")
            up = widgets.Button(description="up", layout=widgets.Layout(width="auto"), disabled=i == 0)
            down = widgets.Button(
                description="down", layout=widgets.Layout(width="auto"), disabled=i == n - 1
            )
            remove = widgets.Button(description="remove", layout=widgets.Layout(width="auto"))
            remove.add_class("oal-remove-label")
            up.on_click(lambda _b, i=i: self._run(lambda: self.move(i, -1)))
            down.on_click(lambda _b, i=i: self._run(lambda: self.move(i, +1)))
            remove.on_click(lambda _b, i=i: self._run(lambda: self.remove(i)))
            rows.append(widgets.HBox([text, up, down, remove]))
        self.rows.children = rows
        self.start.disabled = n < 2
        self.start.description = "start labelling" if n >= 2 else "start labelling (add at least 2 labels)"


def folder_names(paths) -> list[str]:
    """The top-level folders' names when every image is in one and there are at least two; else []."""
    names = {path.split("/")[0] for path in paths if "/" in path}
    if not 2 <= len(names) <= MAX_PROPOSED or any("/" not in path for path in paths):
        return []
    return sorted(names)
