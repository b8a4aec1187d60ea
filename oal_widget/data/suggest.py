"""What to say of an images folder that does not exist: where it was looked for, and the folder
beside it with the closest name ("did you mean 'photos'?")."""

from __future__ import annotations

import difflib
import os
from pathlib import Path


def missing_folder(given: Path, resolved: Path) -> str:
    return (
        f"images folder {str(given)!r} does not exist{did_you_mean(resolved)} (looked for "
        f"{str(resolved)!r}; relative paths start at {os.getcwd()!r}): pass the path of the folder "
        "that holds your images"
    )


def did_you_mean(missing: Path) -> str:
    """``": did you mean 'photos'?"`` naming the folder beside ``missing`` closest to its name, or ""."""
    try:
        folders = [p.name for p in missing.parent.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:  # the parent is missing too, or unreadable
        return ""
    close = difflib.get_close_matches(missing.name, folders, n=1, cutoff=0.6)
    return f": did you mean {close[0]!r}?" if close else ""
