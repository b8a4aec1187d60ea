"""Type to find a label: ``/`` starts it, every key typed narrows the label list, Enter picks.

For label sets too large for a key each. The keys arrive through the panel's one ipyevents Event like
every other key (no text box: in JupyterLab and Notebook 7 alike, a key the panel takes never reaches
the notebook), so this is a small state machine over key names. No widgets here.
"""

from __future__ import annotations


class LabelFilter:
    def __init__(self):
        self.active = False
        self.text = ""
        self.selected = 0  # an index into ``matches()``
        self._names: list[str] = []

    def start(self, names) -> None:
        self.active, self.text, self.selected, self._names = True, "", 0, list(names)

    def stop(self) -> None:
        self.active, self.text, self.selected = False, "", 0

    def matches(self) -> list[int]:
        """Indices of the labels whose name holds the text typed (any case): names starting with it
        first, then the others, each in label order. All labels before anything is typed."""
        typed = self.text.casefold()
        starts = [i for i, n in enumerate(self._names) if n.casefold().startswith(typed)]
        inside = [i for i, n in enumerate(self._names) if typed in n.casefold() and i not in starts]
        return starts + inside

    @property
    def choice(self) -> int | None:
        """The label Enter would pick now, or None when nothing matches."""
        found = self.matches()
        return found[min(self.selected, len(found) - 1)] if found else None

    def key(self, key: str | None) -> tuple[str, int] | str | None:
        """Take one key. Returns ``("label", index)`` when Enter picked one (the filter ends), ``"cancel"``
        for Escape (it ends), None when the key only edited the filter."""
        if key is None:
            return None
        if key == "Escape":
            self.stop()
            return "cancel"
        if key == "Enter":
            choice = self.choice
            if choice is None:
                return None  # nothing matches: keep typing (or Backspace)
            self.stop()
            return ("label", choice)
        if key == "Backspace":
            self.text, self.selected = self.text[:-1], 0
        elif key in ("ArrowDown", "ArrowRight"):
            self.selected = (self.selected + 1) % max(1, len(self.matches()))
        elif key in ("ArrowUp", "ArrowLeft"):
            self.selected = (self.selected - 1) % max(1, len(self.matches()))
        elif len(key) == 1 and key.isprintable():
            self.text, self.selected = self.text + key, 0
        return None

    def describe(self) -> str:
        """One line for the panel: what was typed, what matches, what Enter picks."""
        found = self.matches()
        if not found:
            return f"find a label: “{self.text}” matches none · Backspace to correct, Escape to cancel"
        shown = ", ".join(self._names[i] for i in found[:8]) + (" …" if len(found) > 8 else "")
        return (
            f"find a label: “{self.text}” · {len(found)} match: {shown} · Enter picks "
            f"“{self._names[found[0] if self.choice is None else self.choice]}” · arrows choose · "
            "Escape cancels"
        )
