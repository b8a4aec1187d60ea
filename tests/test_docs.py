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
