"""The quickstart notebook runs top to bottom in a real kernel (nbclient, no browser).

It runs on a copy in tmp_path (<tmp>/notebooks/quickstart.ipynb + <tmp>/images/) so its relative
``../images`` holds and the repo's images/.oal is never written. A final injected cell stops the
session, so no training thread keeps the kernel busy, and reports what the kernel saw.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# Appended to the notebook in the test only: stop the session (bounded), then report as JSON.
FINAL_CELL = """
import json as _json, sys as _sys, threading as _threading
from oal_widget.training.trainer import Trainer as _Trainer
annotator.stop()
print(_json.dumps({
    "executable": _sys.executable,
    "workdir": str(annotator.workdir),
    "n_labels": len(annotator.labels),
    "trainers_alive": [t.name for t in _threading.enumerate() if isinstance(t, _Trainer) and t.is_alive()],
}))
"""


def make_workspace(root: Path) -> Path:
    """<root>/notebooks/quickstart.ipynb + <root>/images/ (no .oal); returns the notebook's path."""
    (root / "notebooks").mkdir(parents=True)
    shutil.copytree(REPO / "images", root / "images", ignore=shutil.ignore_patterns(".oal"))
    return Path(shutil.copy(NOTEBOOK, root / "notebooks" / NOTEBOOK.name))


def test_quickstart_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the quickstart has no code cell"
    assert all(not c.outputs and c.execution_count is None for c in code), (
        "commit the notebook without outputs"
    )
    assert nb.metadata.kernelspec.name == "python3"
    # Run All must leave the panel running: stopping is shown to the user, not executed.
    assert not any("annotator.stop()" in c.source for c in code)


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """Fresh Jupyter dirs, so the kernelspec found is the venv's python3 (which runs sys.executable)."""
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter_data"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter_config"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter_runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


def test_quickstart_runs_headless(tmp_path, kernel_env):
    from nbclient import NotebookClient

    nb_path = make_workspace(tmp_path)
    nb = nbformat.read(nb_path, as_version=4)
    n_original = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(FINAL_CELL))
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,  # per cell; stop() is bounded but TensorFlow may still be importing on 2 busy cores
        startup_timeout=60,
        resources={"metadata": {"path": str(nb_path.parent)}},  # the kernel starts in notebooks/, as in Lab
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors

    # The Annotator cell displays one widget view, and that widget is the panel.
    views = [
        o.data[WIDGET_VIEW]["model_id"]
        for c in nb.cells[:n_original]
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "execute_result" and WIDGET_VIEW in o.get("data", {})
    ]
    assert len(views) == 1, f"expected one widget view in the outputs, found {views}"
    state = nb.metadata.widgets[WIDGET_STATE]["state"]
    assert "oal-panel" in state[views[0]]["state"]["_dom_classes"]

    report = json.loads(nb.cells[-1].outputs[-1].text)
    assert Path(report["executable"]).resolve() == Path(sys.executable).resolve(), (
        "kernel is not the venv's python"
    )
    workdir = tmp_path / "images" / ".oal"
    assert Path(report["workdir"]).resolve() == workdir.resolve()
    assert report["n_labels"] == 0
    assert report["trainers_alive"] == [], "the training thread outlived annotator.stop()"
    assert (workdir / "annotations.sqlite").is_file()

    # The export cell wrote the CSV next to the notebook: a header, no labels yet.
    with open(tmp_path / "notebooks" / "labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    from oal_widget.reports.exports import CSV_COLUMNS

    assert rows == [list(CSV_COLUMNS)]
    assert not (tmp_path / "images" / "labels.csv").exists()
