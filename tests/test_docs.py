"""The README's settings table is generated from Config: it must be current and complete."""

from pathlib import Path

from oal_widget.config import field_names
from oal_widget.docs import setting_docs, settings_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented_in_config():
    docs = setting_docs()
    missing = [name for name in field_names() if not docs.get(name)]
    assert not missing, f"add a '#:' comment above these Config fields: {missing}"


def test_readme_settings_table_is_current():
    assert settings_table() in README.read_text(encoding="utf-8"), (
        "README.md's settings table is stale: run `.venv/bin/python -m oal_widget.docs`"
    )


def test_every_test_the_readme_names_exists():
    """The README cites tests as proof (``tests/x.py::test_y``); a renamed or moved test must update it."""
    import re

    text = README.read_text(encoding="utf-8")
    cited = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)(\*)?`", text)
    assert len(cited) >= 10, "the README's table of fixed bugs cites its tests"
    root = README.parent
    missing = []
    for path, name, star in cited:
        source = (root / path).read_text(encoding="utf-8") if (root / path).exists() else ""
        pattern = rf"^def {name}" + ("" if star else r"\(")
        if not re.search(pattern, source, re.MULTILINE):
            missing.append(f"{path}::{name}{star}")
    assert not missing, f"README.md cites tests that do not exist: {missing}"
