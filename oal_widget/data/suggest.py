"""A close name for a folder that does not exist: "did you mean 'photos'?"."""

from __future__ import annotations

import difflib
from pathlib import Path


def did_you_mean(missing: Path) -> str:
    """``": did you mean 'photos'?"`` naming the folder beside ``missing`` closest to its name, or ""."""
    try:
        folders = [p.name for p in missing.parent.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:  # the parent is missing too, or unreadable
        return ""
    close = difflib.get_close_matches(missing.name, folders, n=1, cutoff=0.6)
    return f": did you mean {close[0]!r}?" if close else ""
