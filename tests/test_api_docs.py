"""The README's API section is generated from the code: it must be current, and complete."""

import inspect
from pathlib import Path

from oal_widget import config, docs
from oal_widget.al import registry
from oal_widget.ui import panel

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_api_section_is_current():
    assert docs.api_section() in README.read_text(encoding="utf-8"), (
        "README.md's API section is stale: run `.venv/bin/python -m oal_widget.docs`"
    )


def test_every_annotator_argument_and_public_method_is_documented():
    documented = docs.arg_docs(panel.Annotator)
    params = [p for p in inspect.signature(panel.Annotator.__init__).parameters if p != "self"]
    missing = [p for p in params if not (documented.get(p) or documented.get(f"**{p}"))]
    assert not missing, f"add these arguments to Annotator's Args docstring: {missing}"
    section = docs.api_section()
    for name in ("stop", "final_fit", "export", "diagnose", "forecast", "labels", "history", "model"):
        assert f"`.{name}" in section
        assert inspect.getdoc(getattr(panel.Annotator, name)), f"Annotator.{name} needs a docstring"


def test_every_key_strategy_and_policy_is_in_the_section_with_a_description():
    section = docs.api_section()
    for key in panel.DEFAULT_KEYS:
        assert f"| `{key}` |" in section
    for name in config.STRATEGY_NAMES:
        assert docs._first_line(registry.get_strategy(name)), f"strategy {name!r} needs a docstring"
        assert f"| `{name}` |" in section
    for name in config.POLICY_NAMES:
        assert f"| `{name}` |" in section


def test_workdir_files_are_the_ones_the_code_writes():
    """Every file name is a constant of workdir.py, and the code that writes files uses them."""
    from oal_widget import workdir
    from oal_widget.data import store
    from oal_widget.training import checkpoint, final_fit

    names = [name for name, _ in docs.workdir_files()]
    assert store.FILENAME == workdir.STORE_FILE
    assert {workdir.STORE_FILE, workdir.MODEL_FILE, workdir.METRICS_FILE} <= set(names)
    assert f"{workdir.FINAL_DIR}/{workdir.MODEL_CARD_FILE}" in names
    for module in (checkpoint, final_fit):
        source = inspect.getsource(module)
        assert '"model.keras"' not in source and '"metrics.csv"' not in source and '"final"' not in source


def test_arg_docs_reads_google_style_args():
    def f(a, b=1, **kw):
        """Summary.

        Args:
            a: first
                continued.
            b: second.
            **kw: the rest.

        Returns:
            nothing: not an argument.
        """

    assert docs.arg_docs(f) == {"a": "first continued.", "b": "second.", "**kw": "the rest."}
