"""Keys: the keymap (browser ``KeyboardEvent.key`` -> action), its checks, and reading ipyevents' dicts.

An action is a name from ``ACTIONS`` or ``("label", index)``. A held key (``repeat``) and keys with
ctrl/meta/alt (the browser's and the notebook's own shortcuts) are never actions.
"""

from __future__ import annotations

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
