"""The README's settings table, generated from ``config.py`` so that the two cannot drift.

``python -m oal_widget.docs`` rewrites the table in README.md; a test checks it is current.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

from . import config

START, END = "<!-- settings-table: start -->", "<!-- settings-table: end -->"


def setting_docs() -> dict[str, str]:
    """Field name -> the ``#:`` comment above it in ``Config``."""
    docs, pending = {}, []
    for line in inspect.getsource(config.Config).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+)\s*:", stripped)
        if match and pending:
            docs[match.group(1)] = " ".join(pending)
        pending = []
    return docs


def settings_table() -> str:
    docs = setting_docs()
    defaults = config.Config()
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for field in dataclasses.fields(config.Config):
        default = getattr(defaults, field.name)
        shown = repr(default).replace("|", "\\|")
        rows.append(f"| `{field.name}` | `{shown}` | {docs.get(field.name, '')} |")
    return "\n".join(
        [
            START,
            "## Settings",
            "",
            "Every setting is a keyword of `Annotator(...)` (and of `Config`); a wrong value raises a "
            "`ValueError` that names the setting and what it accepts.",
            "",
            *rows,
            END,
        ]
    )


def update_readme(readme: Path) -> bool:
    """Rewrite the table between the markers; True when the file changed."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(START), text.index(END) + len(END)
    new = text[:start] + settings_table() + text[end:]
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    changed = update_readme(Path(__file__).resolve().parents[1] / "README.md")
    print("README.md settings table " + ("updated" if changed else "already current"))
