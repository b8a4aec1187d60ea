"""End to end: the grid view in a real JupyterLab 4 (and Notebook 7) driven by a real Chromium.

Real key presses with the pointer over the panel: ``g`` opens the grid, the arrow keys and a click move
the cursor, a digit sets a tile, Enter stores the page (checked in the SQLite store: one label per tile
that showed one, ``accepted`` for the predictions, ``person`` for the tile set, no test image given the
model's label), Backspace takes the whole page back, Escape returns to the single view; the notebook's
cells never change. The screenshot of the grid is ``artifacts/grid-<app>.png``.

No TensorFlow in the kernel (a minute of import on a loaded box): the trainer is the tests' fake, and
the predictions it publishes come from a nearest-centroid classifier fitted in the kernel on ten images
per class (real predictions of a simple model, right on about 87% of the sample digits, confidences
from 50% to 98%). The single view's keys with real training are ``tests/test_browser.py``'s.

Env: E2E_CHROMIUM, E2E_ARTIFACTS, E2E_APPS as in ``tests/test_browser.py``.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from jupyter_e2e import (
    APPS,
    ARTIFACTS,
    MODULES,
    REPO,
    TIMEOUT_MS,
    kernel_execute,
    notebook_state,
    open_notebook,
    open_page,
    run_all_cells,
    served,
    store_records,
    tiles_state,
    wait_kernel_idle,
    wait_src_changed,
    wait_until,
    write_notebook,
)

pytestmark = pytest.mark.browser

GRID = 24
LABELS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]  # key "1" gives label "1", as the quickstart's
PANEL_CELL = f"""\
import sys
sys.path.insert(0, {str(REPO / "tests")!r})  # the tests' fake trainer: no TensorFlow in this kernel
from fake_trainer import Factory
from oal_widget import Annotator

factory = Factory()
annotator = Annotator("../images", labels={LABELS!r}, input_shape=(32, 32, 1), grid_size={GRID},
                      trainer_factory=factory)
annotator"""
#: Run in the kernel: fit the stand-in model, publish its predictions as a trainer's query does.
PREDICT = """\
import numpy as np
from PIL import Image
from oal_widget.messages import Update

_paths = annotator.session.pool.paths
_X = np.stack([np.asarray(Image.open("../images/" + p).convert("L"), float).ravel() / 255 for p in _paths])
_y = np.array([p.split("/")[0] for p in _paths])
_names = annotator.session.label_names
_d = ((_X[:, None, :] - np.stack([_X[_y == c][:10].mean(0) for c in _names])[None]) ** 2).sum(-1)
_p = np.exp(-(_d - _d.min(1, keepdims=True)) / (0.3 * np.median(_d.min(1))))
_p /= _p.sum(1, keepdims=True)
factory.last.publish(Update(status="training", n_labels=40, predictions={
    path: (_names[int(k)], float(_p[i, k])) for i, (path, k) in enumerate(zip(_paths, _p.argmax(1)))}))
"""


@pytest.fixture(params=APPS)
def jupyter(request, tmp_path):
    app = request.param
    pytest.importorskip(MODULES[app])
    notebook = write_notebook(tmp_path / "grid.ipynb", PANEL_CELL)
    with served(app, tmp_path, "grid-", notebook) as (_, root, url):
        yield {"app": app, "url": url, "root": root}


def test_grid_in_browser(jupyter, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    app, workdir = jupyter["app"], jupyter["root"] / "images" / ".oal"
    ctx = browser.new_context(viewport={"width": 1280, "height": 1300})
    page, console = open_page(ctx)
    t0 = time.monotonic()
    try:
        open_notebook(page, jupyter["url"])
        run_all_cells(page)
        expect(page.locator(".oal-panel")).to_be_visible()
        wait_src_changed(page, ".oal-image img", None)
        wait_kernel_idle(page)
        cells = notebook_state(page)["cells"]
        kernel_execute(page, PREDICT)
        expect(page.locator(".oal-prediction")).to_contain_text("model says")

        page.locator(".oal-image img").hover()  # ipyevents listens while the pointer is over the panel
        expect(page.locator(".oal-keysink input")).to_be_focused()
        page.keyboard.press("g")
        expect(page.locator(".oal-grid")).to_be_visible()
        expect(page.locator(".oal-grid .oal-tile")).to_have_count(GRID)
        tiles = wait_until(
            lambda: (s := tiles_state(page)) and all(t["loaded"] and t["path"] for t in s) and s,
            30,
            "every thumbnail drawn",
        )
        assert "oal-tile-cursor" in tiles[0]["classes"]
        page_paths = [t["path"] for t in tiles]

        # The arrows move the cursor; a click puts it on the tile clicked.
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        expect(page.locator(".oal-grid .oal-tile").nth(2)).to_have_class(re.compile(r"\boal-tile-cursor\b"))
        wrong = [
            i for i, t in enumerate(tiles) if t["text"].split(" ·")[0] not in (t["path"].split("/")[0], "")
        ]
        fix = next((i for i in wrong if "test" not in tiles[i]["text"]), 5)
        page.locator(".oal-grid .oal-tile img").nth(fix).click()
        expect(page.locator(".oal-grid .oal-tile").nth(fix)).to_have_class(re.compile(r"\boal-tile-cursor\b"))
        expect(page.locator(".oal-keysink input")).to_be_focused()  # the click gave the keys back
        truth = tiles[fix]["path"].split("/")[0]
        page.keyboard.press(truth)  # the digit key sets the tile under the cursor; the cursor moves on
        expect(page.locator(".oal-grid .oal-tile").nth(fix)).to_contain_text("yours")
        status = page.locator(".oal-grid-status").inner_text()
        n_stored = int(re.search(r"Enter stores (\d+)", status).group(1))
        page.locator(".oal-panel").screenshot(path=str(ARTIFACTS / f"grid-{app}.png"))

        page.keyboard.press("Enter")
        records = wait_until(lambda: len(store_records(workdir)) == n_stored and store_records(workdir), 15,
                             f"{n_stored} labels in the store")  # fmt: skip
        assert set(records) <= set(page_paths)
        assert records[tiles[fix]["path"]] == (truth, "person", "train")
        assert {source for path, (_, source, _) in records.items() if path != tiles[fix]["path"]} == {
            "accepted"
        }
        assert all(split == "train" for _, _, split in records.values()), (
            "no test image took the model's label"
        )
        expect(page.locator(".oal-grid .oal-tile").first).not_to_have_text(tiles[0]["text"])  # the next page

        page.keyboard.press("Backspace")
        wait_until(lambda: store_records(workdir) == {}, 15, "the page undone in the store")
        wait_until(lambda: [t["path"] for t in tiles_state(page)] == page_paths, 15, "the same page back")
        expect(page.locator(".oal-grid .oal-tile").nth(fix)).to_contain_text("yours")

        page.keyboard.press("Escape")
        expect(page.locator(".oal-image img")).to_be_visible()
        expect(page.locator(".oal-grid")).to_have_count(0)
        assert notebook_state(page)["cells"] == cells, "a key meant for the panel changed the notebook"
        print(json.dumps({"app": app, "grid_test_s": round(time.monotonic() - t0, 1)}))
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"failure-grid-{app}.png"))
        (ARTIFACTS / f"failure-grid-{app}-console.txt").write_text("\n".join(console))
        (ARTIFACTS / f"failure-grid-{app}.html").write_text(page.content())
        raise
    finally:
        ctx.close()
