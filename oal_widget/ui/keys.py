"""Keys and actions: the keymap (browser ``KeyboardEvent.key`` -> action), its checks, reading
ipyevents' dicts, and what each action does to the session (``perform``). No widgets here.

An action is a name from ``ACTIONS`` or ``("label", index)``. A held key (``repeat``) and keys with
ctrl/meta/alt (the browser's and the notebook's own shortcuts) are never actions.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

#: Letters that label the 11th label on (the digits label the first ten): the letters the panel's own
#: keys do not use (p, g, r), so 33 labels have a key each; any number of labels can be typed (``/``).
LABEL_LETTERS = "abcdefhijklmnoqstuvwxyz"
#: Key -> action: an action name or ("label", index).
DEFAULT_KEYS: dict[str, object] = {
    **{str(i): ("label", i - 1) for i in range(1, 10)},
    "0": ("label", 9),
    **{letter: ("label", 10 + i) for i, letter in enumerate(LABEL_LETTERS)},
    "Backspace": "undo",
    "ArrowRight": "skip",
    "ArrowLeft": "back",
    "ArrowUp": "up",
    "ArrowDown": "down",
    "Enter": "accept",
    "Delete": "clear",
    "p": "pause",
    "g": "grid",
    "G": "group",
    "S": "surest",
    "M": "like",
    "r": "review",
    "/": "filter",
    "Escape": "close",
    "?": "help",
}
#: Action names a key may map to, and what they do (shown in the help).
ACTIONS: dict[str, str] = {
    "undo": "undo the last label (that image comes back); in the grid: the last page stored",
    "skip": "skip: show this image again at the end; in the grid: cursor right",
    "back": "back to the previous image (label it again to change its label); in the grid: cursor left",
    "up": "in the grid: cursor up a row",
    "down": "in the grid: cursor down a row",
    "accept": "accept the model's prediction as the label (not on test images); in the grid: store the page",
    "clear": "in the grid: the tile under the cursor gets no label (again: it shows its prediction again)",
    "pause": "pause / resume training",
    "grid": "grid view: the next images as tiles, each with the label it will get (again: single view)",
    "group": "in the grid: group the tiles by predicted class, or not",
    "surest": "in the grid: pages of the model's surest predictions, or of the next images in the order",
    "like": "more like this: a grid page of the images still to label most like the one on screen (in the "
    "grid: the tile under the cursor)",
    "review": "review queue: the labels most likely to be wrong, worst first (again: leave it)",
    "filter": "type a label's name: typing narrows the labels, arrows choose, Enter picks, Escape cancels",
    "close": "back to the single view (from the grid or the review queue)",
    "help": "show / hide this help",
    "retry": "rebuild the model after an error",
    "stop": "stop and save",
}
_MODIFIERS = ("ctrlKey", "metaKey", "altKey")
_SHOWN = {
    "ArrowLeft": "←",
    "ArrowRight": "→",
    "ArrowUp": "↑",
    "ArrowDown": "↓",
    "Backspace": "⌫",
    "Enter": "⏎",
    "Delete": "Del",
    "Escape": "Esc",
}


def merge_keymap(keymap: Mapping | None) -> dict[str, object]:
    """``DEFAULT_KEYS`` with ``keymap`` merged over it; ``ValueError`` names a bad key or action."""
    merged = dict(DEFAULT_KEYS)
    if keymap is None:
        return merged
    if not isinstance(keymap, Mapping):
        raise ValueError(
            f"keymap={keymap!r} is invalid: expected a dict like {{'a': ('label', 0), 'x': 'skip'}}"
        )
    for key, action in keymap.items():
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"keymap key {key!r} is invalid: expected the browser's KeyboardEvent.key, e.g. 'a', 'Enter'"
            )
        if action is None:
            merged.pop(key, None)
            continue
        merged[key] = _check_action(key, action)
    return merged


def _check_action(key: str, action) -> object:
    if isinstance(action, str) and action in ACTIONS:
        return action
    if (
        isinstance(action, (tuple, list))
        and len(action) == 2
        and action[0] == "label"
        and isinstance(action[1], int)
        and not isinstance(action[1], bool)
        and action[1] >= 0
    ):
        return ("label", action[1])
    raise ValueError(
        f"keymap[{key!r}]={action!r} is invalid: expected one of {sorted(ACTIONS)}, "
        "('label', index) with index 0 for the first label, or None to remove the key"
    )


def pressed(event: Mapping) -> str | None:
    """The key of an ipyevents keydown dict, or None when it must not act (held, modified, other).
    A capital letter without Shift is Caps Lock: it counts as the small letter."""
    if event.get("type", event.get("event")) != "keydown":
        return None
    if event.get("repeat") or any(event.get(m) for m in _MODIFIERS):
        return None  # a held key must not label a run of images; ctrl/meta/alt are the browser's
    key = event.get("key")
    if isinstance(key, str) and len(key) == 1 and key.isupper() and not event.get("shiftKey"):
        return key.lower()
    return key


def by_action(keymap: Mapping[str, object]) -> dict:
    """action -> the first key mapped to it."""
    out: dict = {}
    for key, action in keymap.items():
        out.setdefault(action, key)
    return out


def with_key(text: str, key: str | None) -> str:
    """A button's text with its key, e.g. ``undo (⌫)``."""
    return f"{text} ({_SHOWN.get(key, key)})" if key else text


def shown_key(key: str | None) -> str:
    return _SHOWN.get(key, key) if key else ""


def label_keys(keymap: Mapping[str, object], names) -> list[str | None]:
    """The key of each label (None: no key; ``/`` and typing its name picks it)."""
    keys = by_action(keymap)
    return [keys.get(("label", i)) for i in range(len(names))]


#: What the keys do in the grid and in the review queue (action -> text), for the help.
IN_GRID = {
    "accept": "store the page: every tile that shows a label, in one step",
    "undo": "undo the last page stored (it comes back as it was)",
    "back": "cursor left",
    "skip": "cursor right",
    "up": "cursor up",
    "down": "cursor down",
    "clear": "no label for the tile under the cursor (again: its prediction back)",
    "group": "group the tiles by predicted class, or not",
    "surest": "pages of the model's surest predictions (fastest to accept), or the next in the order",
    "like": "more like the tile under the cursor: pages of its nearest images still to label",
    "close": "back to the single view",
}
IN_REVIEW = {
    "accept": "the label is right: keep it, next image",
    "skip": "next image, undecided",
    "back": "previous image",
    "undo": "take back the last decision (a fix is undone)",
    "like": "more like this image: a grid page of its nearest images still to label",
    "close": "leave the review queue",
}


def help_html(keymap: Mapping[str, object], names) -> str:
    """The help: every key with what it does, every label with its key, the grid's and the review's keys."""
    keys = by_action(keymap)
    rows = []
    for key, action in keymap.items():
        if isinstance(action, tuple):
            continue
        rows.append(_row(key, ACTIONS[str(action)]))
    label_rows = []
    for name, label_key in zip(names, label_keys(keymap, names), strict=True):
        label_rows.append(
            _row(label_key, f"label: {name}" if label_key else f"label: {name} (/ then type it)")
        )

    def section(title: str, what: Mapping[str, str], extra: str) -> str:
        rows = "".join(_row(keys.get(a), text) for a, text in what.items() if keys.get(a))
        return f"<div><b>{title}</b></div><table>{rows}</table><p>{extra}</p>"

    return (
        "<div><b>Keys</b> (keys work while the pointer is over the panel; the border turns green "
        "and the corner says <i>keys live</i>)<table>" + "".join(rows) + "</table>"
        "<b>Labels</b><table>" + "".join(label_rows) + "</table>"
        + section("In the grid", IN_GRID, "A label key sets the tile under the cursor; the cursor moves on. "
                  "A click on a tile puts the cursor there. A test image gets only the label you give it.")
        + section("In the review queue", IN_REVIEW, "A label key fixes the label (recorded as a review).")
        + "<p>Every label is saved before the next image shows.</p></div>"
    )  # fmt: skip


def _row(key: str | None, what: str) -> str:
    shown = f"<kbd>{html.escape(key)}</kbd>" if key else ""
    return f"<tr><td>{shown}</td><td>{html.escape(what)}</td></tr>"


def perform(session, action, shown: tuple[str, str] | None) -> str:
    """Do a session action (a label, undo, skip, back, accept, pause, retry); returns what to tell the
    person ("" when it went as asked). ``shown``: the prediction on screen, the only one Enter accepts.
    A store that cannot commit (a server away) or an undo over another annotator's label is said too:
    nothing was acknowledged, the image stays on screen."""
    from ..data.store import StoreUnavailable, UndoConflict

    try:
        return _perform(session, action, shown)
    except (StoreUnavailable, UndoConflict) as e:
        return f"not saved: {e}" if isinstance(e, StoreUnavailable) else str(e)


def _perform(session, action, shown) -> str:
    if isinstance(action, tuple):
        index = action[1]
        if index < len(session.label_names) and session.current is not None:  # key 9 with 3 labels: nothing
            session.label(session.label_names[index])
    elif action == "undo":
        if session.undo() is None:
            return "nothing to undo in this session"
    elif action == "skip":
        session.skip()
    elif action == "back":
        if session.back() is None:
            return "no previous image"
    elif action == "accept":
        if shown is None or not session.accept_prediction(shown=shown):
            if session.is_test(session.current):
                return "a test image needs your own label: press a label key"
            return "no prediction for this image yet: press a label key"
    elif action == "pause":
        session.resume() if session.paused else session.pause()
    elif action == "retry":
        if not session.retry():
            return "nothing to retry: the model has no error"
    return ""
