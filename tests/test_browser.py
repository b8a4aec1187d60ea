"""End to end: the quickstart notebook in a real JupyterLab 4 (and Notebook 7) driven by a real Chromium.

Run All through the menu, real key presses with the pointer over the panel, labels checked in the
SQLite store, undo, real (small) training until an evaluation redraws the plot, Stop -> model.keras.
Keys meant for the panel must never change the notebook (JupyterLab binds 1, 2, Enter... in command
mode), so the cells are compared before and after.

Notebook 7 runs the same test: its shortcuts see keys before ipyevents does, so the panel keeps a
focused text input (the key sink) that no command-mode shortcut matches (see oal_widget/ui/panel.py).

The server (fresh config, 127.0.0.1, a port the OS picks) and Chromium are started by
tests/jupyter_e2e.py, shared with bench/key_to_image.py (key-to-image latency in the same browser).

Env: E2E_CHROMIUM (default /usr/bin/chromium), E2E_ARTIFACTS (default <repo>/artifacts: screenshots,
timings, server logs; on failure also the console log, page HTML, keys pressed and the store's labels),
E2E_APPS ("lab,notebook"), E2E_ROUNDS and E2E_LABELS (how much labelling; see N_ROUNDS).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_e2e import (  # pytest puts tests/ on sys.path (no __init__.py); bench/ uses it too
    APPS,
    ARTIFACTS,
    MODULES,
    NOTEBOOK,
    TIMEOUT_MS,
    kernel_execute,
    notebook_state,
    open_notebook,
    open_page,
    overflowing,
    run_all_cells,
    served,
    stderr_outputs,
    tiles_state,
    wait_kernel_idle,
    wait_src_changed,
    wait_until,
)

pytestmark = pytest.mark.browser

EVAL_TIMEOUT_MS = 120_000  # TensorFlow import (~7 s idle, much more when loaded) + training + evaluation
# The quickstart's labels are the digits in key order: key "1" gives label "1", key "0" label "0".
LABEL_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]
# Rounds of labels given after the undo/skip checks, each followed by waiting for an evaluation.
# docs/panel.png is artifacts/panel-lab.png of E2E_APPS=lab E2E_ROUNDS=8 E2E_LABELS=10 (a real curve).
N_ROUNDS = int(os.environ.get("E2E_ROUNDS", "1"))
N_LABELS = int(os.environ.get("E2E_LABELS", "15"))


# --------------------------------------------------------------------------------------------------
# server + browser (tests/jupyter_e2e.py starts and stops them)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(params=APPS)
def jupyter(request, tmp_path):
    """A Jupyter server (Lab 4 or Notebook 7) on 127.0.0.1 with fresh config/data/runtime dirs."""
    app = request.param
    pytest.importorskip(MODULES[app])
    with served(app, tmp_path) as (server, root, url):
        yield {
            "app": app,
            "page_url": url,
            "root": root,
            "workdir": root / "images" / ".oal",
            "t_launch": server["t_launch"],
            "t_server_ready": server["t_server_ready"],
            "server_log": server["log_path"],
        }


# --------------------------------------------------------------------------------------------------
# page helpers (the ones both front ends share live in tests/jupyter_e2e.py)
# --------------------------------------------------------------------------------------------------


def store_labels(workdir: Path) -> dict[str, str]:
    """path -> label, read from the panel's SQLite store (the only source of truth)."""
    from oal_widget.data.store import open_existing

    store = open_existing(workdir)  # never creates a store where the panel made none
    try:
        return store.labels()
    finally:
        store.close()


def shown_path(filename_text: str, labels_or_paths) -> str | None:
    """Which image path the `.oal-filename` text names (it may show the relative path or the basename)."""
    hits = [p for p in labels_or_paths if p in filename_text or Path(p).name in filename_text]
    return hits[0] if len(hits) == 1 else None


# --------------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------------
def test_quickstart_in_browser(jupyter, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    app, workdir = jupyter["app"], jupyter["workdir"]
    all_paths = sorted(
        p.relative_to(jupyter["root"] / "images").as_posix()
        for p in (jupyter["root"] / "images").rglob("*.png")
    )
    original = nbformat.read(NOTEBOOK, as_version=4)
    original_cells = [[c.cell_type, c.source] for c in original.cells]
    n_markdown = sum(t == "markdown" for t, _ in original_cells)
    t = {"app": app, "server_ready": round(jupyter["t_server_ready"], 1)}

    def mark(name):
        t[name] = round(time.monotonic() - jupyter["t_launch"], 1)

    ctx = browser.new_context(viewport={"width": 1280, "height": 1400})
    page, console = open_page(ctx)
    actions: list[str] = []
    try:
        open_notebook(page, jupyter["page_url"])
        mark("kernel_idle")

        run_all_cells(page)
        panel = page.locator(".oal-panel")
        expect(panel).to_be_visible()
        image_src = wait_src_changed(page, ".oal-image img", None)
        wait_kernel_idle(page)  # every cell ran: the panel's cell returned at once, the others too
        mark("panel_shown")
        # The package's server extension, as installed: kernel websockets without Nagle's delay.
        assert "oal_widget: kernel websockets send without delay" in jupyter["server_log"].read_text()
        before = notebook_state(page)
        assert before["cells"] == original_cells
        page.screenshot(path=str(ARTIFACTS / f"{app}-1-panel.png"))

        # ipyevents listens only while the pointer is over its widget: point at the image, never a button.
        point_at_image = page.locator(".oal-image img").hover
        point_at_image()
        expect(
            page.locator(".oal-panel.ipyevents-watched, .oal-panel .ipyevents-watched").first
        ).to_be_attached()
        # ... and the key sink has the focus (a round trip to the kernel): in Notebook 7 no shortcut
        # matches a focused text input, so "1".."6" make no headings and "0" is not held for "0, 0".
        keysink = page.locator(".oal-keysink input")
        expect(keysink).to_be_focused()

        filename = page.locator(".oal-filename")
        error = page.locator(".oal-error")
        labelled: dict[str, str] = {}  # what the store must hold: path -> label

        def current_path() -> str:
            text = filename.inner_text()
            path = shown_path(text, all_paths)
            assert path, f"`.oal-filename` text {text!r} names no single image of {len(all_paths)}"
            return path

        def press_and_wait_next(key: str) -> str:
            """Press ``key``; wait until another image is named AND drawn. Returns the path pressed on."""
            nonlocal image_src
            text = filename.inner_text()
            path = current_path()
            page.keyboard.press(key)
            expect(filename).not_to_have_text(text)
            image_src = wait_src_changed(page, ".oal-image img", image_src)
            actions.append(f"{key!r} on {path} -> {filename.inner_text()}")
            return path

        def label_current() -> None:
            # The folder is the true digit and the labels are the digits, so key == folder name: the
            # model really learns, and the picture in docs/ shows a real curve.
            key = current_path().split("/")[0]
            assert key in LABEL_KEYS, key
            labelled[press_and_wait_next(key)] = key

        def store_is(want: dict[str, str], when: str) -> None:
            # Each label is committed before the next image shows; the bound only covers reading a WAL
            # database from another process.
            want = dict(want)
            wait_until(lambda: store_labels(workdir) == want, 10, f"the store to hold {want} {when}")

        def assert_notebook_unchanged(when: str) -> None:
            # Keys meant for the panel never reach the notebook's shortcuts (1..6 make headings, Enter
            # edits, 0,0 restarts): same cells, types and sources, same mode, same DOM cells.
            now = notebook_state(page)
            assert now["cells"] == original_cells, f"a key press changed the notebook's cells {when}"
            assert now["mode"] == before["mode"], f"a key press switched the notebook's mode {when}"
            assert (now["dom_cells"], now["dom_markdown"]) == (len(original_cells), n_markdown), (when, now)

        # Enter accepts the model's prediction: there is none before the first label, so the panel
        # says so and stays on this image (and the notebook must not enter edit mode: checked below).
        first = current_path()
        page.keyboard.press("Enter")
        expect(error).to_contain_text("prediction")
        assert current_path() == first

        for _ in range(3):
            label_current()
        store_is(labelled, "after 3 key presses")
        assert_notebook_unchanged("after Enter and 3 labels")
        mark("three_labels")

        # Undo: the last label leaves the store and its image is current again.
        last = list(labelled)[-1]
        page.keyboard.press("Backspace")
        expect(filename).to_contain_text(last)
        del labelled[last]
        store_is(labelled, "after Backspace (undo)")

        # Skip: another image, nothing stored.
        press_and_wait_next("ArrowRight")
        store_is(labelled, "after ArrowRight (skip)")
        # A click in the panel (Notebook 7 would focus the cell) gives the focus back to the key sink:
        # the labels below would otherwise also turn the markdown cell into headings.
        page.locator(".oal-image img").click()
        expect(keysink).to_be_focused()
        mark("undo_skip_checked")

        # Keep labelling until the trainer has evaluated and the plot was redrawn (it is redrawn only
        # when there are new metrics). Labels come at a human pace: each waits for the next image.
        # The first redraw must be a real curve, not the placeholder drawn at start-up (both change
        # the src): the panel marks a plot with metrics with the class oal-plot-has-metrics.
        plot = "img.oal-plot"
        for round_ in range(N_ROUNDS):
            plot_src = page.locator(plot).get_attribute("src")
            for _ in range(N_LABELS):
                label_current()
            page.screenshot(path=str(ARTIFACTS / f"{app}-2-labelled.png"))
            if round_ == 0:
                wait_src_changed(page, "img.oal-plot.oal-plot-has-metrics", None, timeout=EVAL_TIMEOUT_MS)
            else:
                wait_src_changed(page, plot, plot_src, timeout=EVAL_TIMEOUT_MS)
        mark("evaluated")
        point_at_image()  # keep the "keys live" look for the picture
        panel.screenshot(path=str(ARTIFACTS / f"panel-{app}.png"))
        page.screenshot(path=str(ARTIFACTS / f"{app}-3-evaluated.png"))
        store_is(labelled, f"after {len(labelled)} labels")

        # Once the next image is in a slot, the page brings it on top by itself on a label key, before
        # the key reaches the kernel (ui/slot_switch.py); the kernel takes it in, finds the image on top
        # and answers: the lines about the image, transparent meanwhile, show again on ITS answer.
        kernel_execute(page, "_s = annotator.labelling.slots\n_n = _s.page_switches + _s.late + _s.refused")
        expect(page.locator(".oal-slot-switch[data-armed]")).to_be_attached()
        page.evaluate(
            "document.querySelectorAll('.oal-slot-switch').forEach((e) => delete e.dataset.unveiledBy)"
        )
        label_current()
        on_page = page.locator(".oal-slot-switch").get_attribute("data-last-key")
        assert "switched to slot" in on_page, on_page
        # Taken in, refused (an arm from before a re-rank: put right) or, its message overtaken by the
        # key's, answered at once: the kernel heard of it.
        kernel_execute(
            page,
            "assert _s.page_switches + _s.late + _s.refused == _n + 1, "
            f"({on_page!r}, _n, _s.page_switches, _s.late, _s.refused)",
        )
        store_is(labelled, "after a key the page switched on")
        expect(page.locator(".oal-slot-switch[data-unveiled-by='kernel']")).to_be_attached()
        expect(page.locator(".oal-switching")).to_have_count(0)
        expect(filename).to_have_css("opacity", "1")

        assert_notebook_unchanged(f"after {len(labelled)} labels")
        # TensorFlow has loaded and trained in the kernel: none of its start-up lines under the panel,
        # and nothing in the panel scrolls or clips its text.
        assert stderr_outputs(page) == [], "stderr under the panel"
        assert overflowing(page) == [], "elements that scroll or clip inside the panel"

        # Key "0" labels ONE image, also when the next key is another one. (Notebook 7 binds the chord
        # "0, 0": Lumino holds the first "0" and replays it to the document when the next key is not
        # "0"; ipyevents then gets it twice. That next key triggers any replay, so no waiting needed.)
        zero_on = press_and_wait_next("0")
        labelled[zero_on] = "0"
        press_and_wait_next("ArrowRight")
        store_is(labelled, "after one press of '0' then ArrowRight")
        assert_notebook_unchanged("after the '0' check")

        # More like this (Shift+M): a grid page of the images nearest to the one on screen in the trainer's
        # own feature space. The trainer indexes the pool while idle (the panel says so until then: a unit
        # test's); once it has, one press opens the page. The status names the image the page is like.
        def indexed() -> bool:
            try:
                kernel_execute(page, "assert annotator.session.more_like_ready")
            except RuntimeError:
                return False
            return True

        wait_until(indexed, 120, "the trainer to index the pool for more like this")
        anchor = current_path()
        page.keyboard.press("Shift+M")
        expect(page.locator(".oal-grid")).to_be_visible()
        status = page.locator(".oal-grid-status")
        expect(status).to_contain_text("most like")
        like = status.locator("code").first.inner_text()
        assert like == anchor, f"the page is like {like}, the image on screen was {anchor}"
        tiles = wait_until(
            lambda: (s := tiles_state(page)) and all(t["loaded"] and t["path"] for t in s) and s,
            30,
            "every thumbnail of the page drawn",
        )
        near = [t["path"] for t in tiles]
        assert like not in near and not set(near) & set(labelled), (like, near)
        # The page is the session's nearest images to it (how good a neighbour is: bench/more_like.py).
        kernel_execute(
            page,
            f"_near = annotator.session.more_like({like!r}, len({near!r}))\n"
            f"assert set(_near) == set({near!r}), (_near, {near!r})",
        )
        page.locator(".oal-panel").screenshot(path=str(ARTIFACTS / f"more-like-{app}.png"))
        page.keyboard.press("Escape")
        expect(page.locator(".oal-image img")).to_be_visible()
        assert_notebook_unchanged("after more like this")

        # The pointer leaves: the key sink lets go of the focus, keys belong to the notebook again.
        page.mouse.move(2, 2)
        expect(keysink).not_to_be_focused()

        # Stop: the end screen, the model and the metrics on disk.
        page.locator(".oal-stop").click()
        expect(page.locator(".oal-done")).to_be_visible()
        mark("stopped")
        page.screenshot(path=str(ARTIFACTS / f"{app}-4-done.png"))
        assert overflowing(page) == [], "elements that scroll or clip on the end screen"
        wait_until(lambda: (workdir / "model.keras").is_file(), 30, f"{workdir / 'model.keras'} to be saved")
        rows = wait_until(lambda: _metric_rows(workdir / "metrics.csv"), 30, "metrics.csv with an evaluation")
        assert 0.0 <= float(rows[-1]["accuracy"]) <= 1.0, rows[-1]
        assert store_labels(workdir) == labelled, "stopping changed the labels"
        mark("total")
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"failure-{app}.png"))
        (ARTIFACTS / f"failure-{app}-console.txt").write_text("\n".join(console))
        (ARTIFACTS / f"failure-{app}.html").write_text(page.content())
        (ARTIFACTS / f"failure-{app}-keys.txt").write_text("\n".join(actions))
        if (workdir / "annotations.sqlite").is_file():
            stored = store_labels(workdir)
            (ARTIFACTS / f"failure-{app}-store.json").write_text(json.dumps(stored, indent=1))
        raise
    finally:
        ctx.close()
        with open(ARTIFACTS / "timings.jsonl", "a") as f:
            f.write(json.dumps(t) + "\n")
        print(json.dumps(t))


def _metric_rows(path: Path) -> list[dict]:
    import csv

    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
