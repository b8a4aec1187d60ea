"""End to end on photos: nothing in the panel scrolls or clips its text, in every view, in a real
JupyterLab 4 and Notebook 7 driven by a real Chromium.

The folder is what a newcomer brings: RGB photos of every aspect ratio (scikit-image's sample photos,
cropped and resized to landscape, portrait and panorama sizes, a few of 3000x2000), JPEG and PNG, and
a class of tiny grey images. Real keys label a few images; the trainer is the tests' fake (no
TensorFlow: a minute of import on a loaded box), and the kernel publishes what a real one would (a
query's predictions, evaluations with their band, first-sight probabilities, a diagnosis, a final fit).
Each view is checked (single, help, grid, review, model insight, final fit, end screen): no element
inside the panel is wider inside than its box (``scrollWidth <= clientWidth``) nor taller where it
hides its overflow, and no stderr output shows in the notebook. Screenshots: ``artifacts/photos-*``.

Env: E2E_CHROMIUM, E2E_ARTIFACTS, E2E_APPS as in ``tests/test_browser.py``; E2E_WIDTH (the browser's).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

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
    overflowing,
    run_all_cells,
    served,
    stderr_outputs,
    store_records,
    wait_kernel_idle,
    wait_src_changed,
    wait_until,
    write_notebook,
)

pytestmark = pytest.mark.browser

#: Class -> scikit-image sample (all ship inside the package: nothing is downloaded).
SOURCES = {"astronaut": "astronaut", "coffee": "coffee", "cat": "chelsea", "rocket": "rocket"}
GREY = "grey"  # tiny grey images, from skimage.data.camera
LABELS = sorted([*SOURCES, GREY])  # the label editor proposes the class folders' names, sorted
#: (width, height) of the photos of each class: landscape, portrait, panorama, square, one large.
SIZES = [(640, 427), (300, 450), (1400, 420), (240, 240), (900, 600), (360, 640), (3000, 2000)]
PANEL_CELL = f"""\
import sys
sys.path.insert(0, {str(REPO / "tests")!r})  # the tests' fake trainer: no TensorFlow in this kernel
from fake_trainer import Factory
from oal_widget import Annotator

factory = Factory()
annotator = Annotator("../images", input_shape=(32, 32, 3), grid_size=12, trainer_factory=factory)
annotator"""
#: Run in the kernel after a few labels: what a real trainer publishes after a query and evaluations.
#: Browser widths: JupyterLab with its file browser open leaves a narrow notebook (the text goes under
#: the image); Notebook 7 a wide one. E2E_WIDTH sets both.
WIDTHS = {"lab": 900, "notebook": 1280}
STAGE = """\
import numpy as np
from oal_widget.messages import Update

_s = annotator.session
_names = _s.label_names
_rng = np.random.default_rng(0)
_trainer = factory.last

def _probs(path, right):
    k = _names.index(path.split("/")[0]) if right else int(_rng.integers(len(_names)))
    p = _rng.dirichlet(np.ones(len(_names)) * 0.6)
    p[k] += 1.2
    return p / p.sum()

_predictions = {}
for _i, _p in enumerate(_s.pool.paths):
    _q = _probs(_p, _i % 3 != 0)
    _predictions[_p] = (_names[int(_q.argmax())], float(_q.max()))
_labelled = dict(_s.labels())
_trainer.first_sight = {p: _probs(p, i % 2 == 0) for i, p in enumerate(_labelled)}
_rows = tuple(
    dict(n_labels=n, accuracy=a, accuracy_low=a - 0.2, accuracy_high=min(1, a + 0.12), loss=1.6 - a,
         n_test=2, n_eval=4, seconds=0.1)
    for n, a in ((2, 0.31), (4, 0.45), (len(_labelled), 0.52))
)
_wrong = [p for p in _s.pool.paths if _predictions[p][0] != p.split("/")[0]][:8]
_trainer.diagnose = lambda n: dict(
    label_names=_names, accuracy=0.5, n_test=4,
    confusion=[[int(i == j) for j in range(len(_names))] for i in range(len(_names))],
    per_class_accuracy={n: 0.5 for n in _names},
    most_wrong=[dict(path=p, label=p.split("/")[0], predicted=_predictions[p][0],
                     confidence=_predictions[p][1]) for p in _wrong][:n],
)
_card_dir = _s.workdir / "final"

def _final_fit(epochs, out=None, progress=None, cancel=None, labels=None):
    _card_dir.mkdir(exist_ok=True)
    for step in range(1, 4):
        progress(step, 3)
    return {"metrics": {"accuracy": 0.5, "n_test": 4},
            "files": {"model": str(_card_dir / "model.keras"), "card": str(_card_dir / "model_card.json")}}

_trainer.final_fit = _final_fit
_trainer.publish(Update(status="training", n_labels=len(_labelled), metrics=_rows, predictions=_predictions))
"""


def make_photos(root: Path) -> Path:
    """5 classes x 7 images: photos cropped to ``SIZES`` (JPEG and PNG) and tiny grey images."""
    import numpy as np
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, source in SOURCES.items():
        photo = Image.fromarray(getattr(skimage.data, source)()).convert("RGB")
        (root / name).mkdir(parents=True)
        for i, (w, h) in enumerate(SIZES):
            # A crop of the photo's aspect ratio, at a random place, scaled to the size.
            side = min(photo.width / w, photo.height / h) * rng.uniform(0.7, 1.0)
            cw, ch = int(w * side), int(h * side)
            x, y = rng.integers(0, photo.width - cw + 1), rng.integers(0, photo.height - ch + 1)
            image = photo.crop((x, y, x + cw, y + ch)).resize((w, h))
            image.save(root / name / f"{name}_{i}.{'png' if i % 3 == 2 else 'jpg'}")
    camera = Image.fromarray(skimage.data.camera())
    (root / GREY).mkdir()
    for i, (w, h) in enumerate([(12, 12), (16, 40), (40, 16), (8, 8), (20, 20), (24, 10), (10, 30)]):
        camera.resize((w, h)).save(root / GREY / f"grey_{i}.png")
    return root


@pytest.fixture(params=APPS)
def jupyter(request, tmp_path):
    app = request.param
    pytest.importorskip(MODULES[app])
    pytest.importorskip("skimage")
    notebook = write_notebook(tmp_path / "photos.ipynb", PANEL_CELL)
    photos = make_photos(tmp_path / "photos")
    with served(app, tmp_path, "photos-", notebook, photos) as (_, root, url):
        yield {"app": app, "url": url, "root": root}


def test_every_view_fits_on_photos(jupyter, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    app, workdir = jupyter["app"], jupyter["root"] / "images" / ".oal"
    width = int(os.environ.get("E2E_WIDTH", WIDTHS[app]))
    ctx = browser.new_context(viewport={"width": width, "height": 1800})
    page, console = open_page(ctx)
    problems: dict[str, list[str]] = {}
    t0 = time.monotonic()

    def check(view: str) -> None:
        """Record what overflows in this view, and take its screenshot."""
        page.wait_for_timeout(300)  # the layout settles after the last widget message
        bad, stderr = overflowing(page), stderr_outputs(page)
        if bad or stderr:
            problems[view] = bad + [f"stderr: {t[:200]}" for t in stderr]
        page.locator(".oal-panel").screenshot(path=str(ARTIFACTS / f"photos-{app}-{view}.png"))

    try:
        open_notebook(page, jupyter["url"])
        run_all_cells(page)
        # No labels given: the label editor proposes the class folders' names; keys are live at once
        # after "start labelling", with the pointer still where it clicked (it entered the panel before).
        expect(page.locator(".oal-label-editor")).to_be_visible()
        expect(page.locator(".oal-editor-label")).to_have_text(
            [f"{i + 1} · {n}" for i, n in enumerate(LABELS)]
        )
        check("editor")
        # Keys over the editor type into the name box (ipyevents takes them, the kernel types them);
        # "m", "y" are Notebook 7 shortcuts (markdown, code): the notebook must not change.
        cells = notebook_state(page)["cells"]
        name_box = page.locator(".oal-new-label input")
        name_box.hover()
        expect(page.locator(".oal-keysink input")).to_be_focused()  # Notebook 7: no shortcut matches
        for k in "my":
            page.keyboard.press(k)
        expect(name_box).to_have_value("my")
        page.keyboard.press("Backspace")
        page.keyboard.press("Backspace")
        expect(name_box).to_have_value("")
        assert notebook_state(page)["cells"] == cells, "a key over the label editor changed the notebook"
        page.locator(".oal-start").click()
        src = wait_src_changed(page, ".oal-image img", None)
        wait_kernel_idle(page)
        expect(page.locator(".oal-keysink input")).to_be_focused()
        filename = page.locator(".oal-filename")
        for i in range(6):  # real keys: the label of the folder, each waits for the next image
            text = filename.inner_text()
            page.keyboard.press(str(LABELS.index(text.strip().split("/")[0]) + 1))
            expect(filename).not_to_have_text(text)  # the name first: it comes after the image
            src = wait_src_changed(page, ".oal-image img", src)
            if i == 0:  # the first key came with the pointer where it clicked "start"
                page.locator(".oal-image img").hover()
        records = wait_until(
            lambda: len(store_records(workdir)) == 6 and store_records(workdir), 15, "6 labels"
        )
        assert {p: label for p, (label, _, _) in records.items()} == {p: p.split("/")[0] for p in records}
        kernel_execute(page, STAGE)
        expect(page.locator(".oal-prediction")).not_to_have_text(re.compile("no prediction for this image"))
        for _ in range(5):  # a test image shows no prediction: skip to one that does
            if "model says" in page.locator(".oal-prediction").inner_text():
                break
            text = filename.inner_text()
            page.keyboard.press("ArrowRight")
            expect(filename).not_to_have_text(text)
            src = wait_src_changed(page, ".oal-image img", src)
        expect(page.locator(".oal-prediction")).to_contain_text("model says")
        expect(page.locator("img.oal-plot.oal-plot-has-metrics")).to_be_visible()
        check("single")

        page.keyboard.press("?")
        help_box = page.locator(".oal-help")
        expect(help_box).to_be_visible()
        check("help")
        down = page.evaluate(
            "() => document.querySelector('.oal-help').getBoundingClientRect().top"
            " - document.querySelector('.oal-panel').getBoundingClientRect().top"
        )
        if down > 100:  # where the person is looking: at the top of the panel, not below the plots
            problems.setdefault("help", []).append(f"the help opens {down:.0f} px down the panel")
        page.keyboard.press("?")
        expect(help_box).to_be_hidden()

        page.keyboard.press("g")
        expect(page.locator(".oal-grid .oal-tile")).to_have_count(12)
        wait_until(
            lambda: page.evaluate(
                "() => [...document.querySelectorAll('.oal-grid .oal-tile img')]"
                ".every(i => i.complete && i.naturalWidth > 1)"
            ),
            30,
            "every thumbnail drawn",
        )
        check("grid")
        page.keyboard.press("Escape")

        page.keyboard.press("r")
        expect(page.locator(".oal-review")).to_be_visible()
        expect(page.locator(".oal-review-position")).to_contain_text(" of ")
        check("review")
        page.keyboard.press("Escape")
        expect(page.locator(".oal-image img")).to_be_visible()

        page.locator(".oal-insight-button").click()
        expect(page.locator(".oal-confusion-table")).to_be_visible()
        expect(page.locator(".oal-most-wrong img").first).to_be_visible()
        check("insight")

        page.locator(".oal-final-fit").click()
        expect(page.locator(".oal-final-status")).to_contain_text("model_card.json")
        check("final-fit")

        page.locator(".oal-stop").click()
        expect(page.locator(".oal-done")).to_be_visible()
        check("done")
        assert not problems, "overflowing elements or stderr, by view:\n" + json.dumps(problems, indent=1)
        print(json.dumps({"app": app, "photos_test_s": round(time.monotonic() - t0, 1)}))
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"failure-photos-{app}.png"))
        (ARTIFACTS / f"failure-photos-{app}-console.txt").write_text("\n".join(console))
        (ARTIFACTS / f"failure-photos-{app}.html").write_text(page.content())
        raise
    finally:
        ctx.close()
