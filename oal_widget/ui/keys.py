"""Keys and actions: the keymap (browser ``KeyboardEvent.key`` -> action), its checks, reading
ipyevents' dicts, and what each action does to the session (``perform``). No widgets here.

An action is a name from ``ACTIONS`` or ``("label", index)``. A held key (``repeat``) and keys with
ctrl/meta/alt (the browser's and the notebook's own shortcuts) are never actions.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

#: Key -> action: an action name or ("label", index).
DEFAULT_KEYS: dict[str, object] = {
    **{str(i): ("label", i - 1) for i in range(1, 10)},
    "0": ("label", 9),
    "Backspace": "undo",
    "ArrowRight": "skip",
    "ArrowLeft": "back",
    "Enter": "accept",
    "p": "pause",
    "?": "help",
}
#: Action names a key may map to, and what they do (shown in the help).
ACTIONS: dict[str, str] = {
    "undo": "undo the last label (that image comes back)",
    "skip": "skip: show this image again at the end",
    "back": "back to the previous image (label it again to change its label)",
    "accept": "accept the model's prediction as the label (not on test images)",
    "pause": "pause / resume training",
    "help": "show / hide this help",
    "retry": "rebuild the model after an error",
    "stop": "stop and save",
}
_MODIFIERS = ("ctrlKey", "metaKey", "altKey")
_SHOWN = {"ArrowLeft": "←", "ArrowRight": "→", "Backspace": "⌫", "Enter": "⏎"}


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
    """The key of an ipyevents keydown dict, or None when it must not act (held, modified, other)."""
    if event.get("type", event.get("event")) != "keydown":
        return None
    if event.get("repeat") or any(event.get(m) for m in _MODIFIERS):
        return None  # a held key must not label a run of images; ctrl/meta/alt are the browser's
    return event.get("key")


def by_action(keymap: Mapping[str, object]) -> dict:
    """action -> the first key mapped to it."""
    out: dict = {}
    for key, action in keymap.items():
        out.setdefault(action, key)
    return out


def with_key(text: str, key: str | None) -> str:
    """A button's text with its key, e.g. ``undo (⌫)``."""
    return f"{text} ({_SHOWN.get(key, key)})" if key else text


def help_html(keymap: Mapping[str, object], names) -> str:
    """The help table: every key of the keymap with what it does (labels by name)."""
    rows = []
    for key, action in keymap.items():
        if isinstance(action, tuple):
            if action[1] >= len(names):
                continue
            what = f"label: {names[action[1]]}"
        else:
            what = ACTIONS[action]
        rows.append(f"<tr><td><kbd>{html.escape(key)}</kbd></td><td>{html.escape(what)}</td></tr>")
    return (
        "<div><b>Keys</b> (keys work while the pointer is over the panel; the border turns green "
        "and the corner says <i>keys live</i>)<table>" + "".join(rows) + "</table>"
        "Labels after the tenth have buttons only. "
        "Every label is saved before the next image shows.</div>"
    )


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
                return "a test image needs your own label: press a number key"
            return "no prediction for this image yet: press a number key"
    elif action == "pause":
        session.resume() if session.paused else session.pause()
    elif action == "retry":
        if not session.retry():
            return "nothing to retry: the model has no error"
    return ""
