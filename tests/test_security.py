"""No open door: no network socket, no file read outside the images folder, no code run from a
saved model, no HTML injected through a label or a file name.

The first test runs a whole session (real panel, real trainer, real TensorFlow, tiny) in a child
process whose every ``socket.*``, ``open`` and folder-listing event is recorded by an audit hook
installed before anything is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from fake_trainer import Factory
from helpers import settle
from PIL import Image

from oal_widget import Annotator
from oal_widget.data.pool import SYMLINK_OUTSIDE
from oal_widget.messages import Update

TESTS = Path(__file__).parent

SESSION = r"""
import json, os, sys, time

secret = os.path.realpath(sys.argv[3])
events = {"socket": [], "secret": []}
busy = []


def hook(event, args):
    if event.startswith("socket."):
        frames, frame = [], sys._getframe(1)
        while frame is not None and len(frames) < 40:
            frames.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")
            frame = frame.f_back
        events["socket"].append([event, repr(args)[:200], frames])
    elif event in ("open", "os.scandir", "os.listdir") and args and not busy:
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            busy.append(1)  # realpath below must not call this hook again
            try:
                text = os.fsdecode(path)
                if os.path.realpath(text).startswith(secret + os.sep):
                    events["secret"].append([event, text])
            finally:
                busy.pop()


sys.addaudithook(hook)  # before ANY import: the package, TensorFlow, ipywidgets

images, workdir, marker = sys.argv[1], sys.argv[2], sys.argv[4]
import keras  # noqa: E402

# A model.keras planted in the workdir whose Lambda layer runs code when deserialised unsafely.
inp = keras.Input((16, 16, 1))
x = keras.layers.Flatten()(inp)
x = keras.layers.Lambda(eval(f"lambda t: (open({marker!r}, 'w').close(), t)[1]"))(x)
evil = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
evil.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
os.makedirs(workdir, exist_ok=True)
evil.save(os.path.join(workdir, "model.keras"))
if os.path.exists(marker):
    os.unlink(marker)  # saving may have traced the lambda: only what happens from here counts

from oal_widget import Annotator, reload_model  # noqa: E402

panel = Annotator(images, ["0", "1", "2"], workdir=workdir, input_shape=(16, 16, 1), train_steps=2,
                  batch_size=16, eval_every=4, query_every=4, test_fraction=0.25)
s = panel.session
messages = []
deadline = time.monotonic() + 120
while s.model is None and s.trainer_status != "error" and time.monotonic() < deadline:
    time.sleep(0.05)
while not s.trainer.updates.empty():  # every update so far (nobody else reads this queue)
    messages.append(s.trainer.updates.get_nowait().message)
for _ in range(16):
    if s.current is None:
        break
    key = str(int(s.current.split("/")[0]) + 1)
    panel._on_key({"type": "keydown", "event": "keydown", "key": key, "repeat": False})
# An evaluation and a query ran (the latest update alone may be an evaluation, which carries no
# predictions: the last query's stand until the next one).
while (not s.history or not s.surest(10**6)) and time.monotonic() < deadline:
    time.sleep(0.05)
n_history, n_predictions = len(s.history), len(s.surest(10**6))
saved = panel.stop(timeout=120)  # a loaded box may need long to save: not what is tested
reloaded = reload_model(saved["model"])
sockets = []
for fd in os.listdir("/proc/self/fd"):  # sockets opened below Python (C/C++) too
    try:
        if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
            sockets.append(fd)
    except OSError:
        pass
print("RESULT " + json.dumps({
    "events": events, "fd_sockets": sockets, "marker": os.path.exists(marker), "messages": messages,
    "history": n_history, "predictions": n_predictions, "saved": saved,
    "reloaded_outputs": int(reloaded.output_shape[-1]),
    "skipped": {item.path: item.reason for item in s.skipped}, "paths": s.pool.paths,
}))
"""


def test_a_session_opens_no_socket_reads_nothing_outside_and_runs_no_saved_code(small_digits, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    Image.new("L", (16, 16), 0).save(secret / "secret.png")
    os.symlink(secret / "secret.png", small_digits / "escape.png")  # a file link out of the folder
    os.symlink(secret, small_digits / "linked_folder")  # a folder link out of it
    os.symlink("../../secret/secret.png", small_digits / "0" / "relative_escape.png")
    marker = tmp_path / "code_ran"
    workdir = tmp_path / "wd"
    out = subprocess.run(
        [sys.executable, "-c", SESSION, str(small_digits), str(workdir), str(secret), str(marker)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(TESTS), PYTHONFAULTHANDLER="1"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])

    # No socket from Python but one probe: importing Keras imports urllib3, whose import checks for
    # IPv6 by binding a socket to ('::1', 0) (loopback, port 0) and closing it. Nothing connects,
    # listens or sends; the tool's own code never makes a socket.
    for event, args, frames in result["events"]["socket"]:
        probe = any(f.endswith("urllib3/util/connection.py:_has_ipv6") for f in frames)
        assert probe, f"a socket from outside urllib3's import-time IPv6 probe: {event} {args} {frames[:8]}"
        assert event in ("socket.__new__", "socket.bind"), (event, args)
        assert event != "socket.bind" or "('::1', 0)" in args, args
        assert not any("/oal_widget/" in f for f in frames), frames
    assert result["fd_sockets"] == []  # nor from C/C++ (TensorFlow): no socket file descriptor at all
    # Nothing under the secret folder was opened or listed, though two links point there.
    assert result["events"]["secret"] == []
    assert result["skipped"]["escape.png"] == SYMLINK_OUTSIDE
    assert result["skipped"]["0/relative_escape.png"] == SYMLINK_OUTSIDE
    assert not any(p.startswith("linked_folder") for p in result["paths"])
    # The planted model was refused by safe mode (its code never ran); a new model was trained and saved.
    assert result["marker"] is False
    refused = [m for m in result["messages"] if "could not continue from" in m]
    assert refused and "Lambda" in refused[0], result["messages"]
    assert result["history"] >= 1 and result["predictions"] > 0
    assert Path(result["saved"]["model"]).is_file() and result["reloaded_outputs"] == 3


# --- HTML escaping ------------------------------------------------------------------------------
NASTY = "<img src=x onerror=alert(1)>"


def walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def html_values(panel) -> list[str]:
    import ipywidgets as widgets

    roots = [panel, panel._main, panel._done, panel.editor.box, panel._help, panel._skipped.html]
    roots += [panel.insight.box]
    return [w.value for root in roots for w in walk(root) if isinstance(w, (widgets.HTML, widgets.HTMLMath))]


def assert_no_raw_html(panel) -> None:
    for value in html_values(panel):
        assert "<img" not in value, value  # escaped as &lt;img wherever it is shown


def test_label_and_file_names_are_escaped_in_every_html_widget(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for i in range(6):
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(root / f"{NASTY} {i}.png")
    (root / f"{NASTY} broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    labels = [NASTY, "a & b", "</table><script>alert(2)</script>"]
    factory = Factory()
    panel = Annotator(root, labels, trainer_factory=factory, input_shape=(16, 16, 1), test_fraction=0.4)
    s = panel.session
    try:
        panel._on_key({"type": "keydown", "event": "keydown", "key": "?", "repeat": False})  # help
        for i in range(3):
            panel._on_key({"type": "keydown", "event": "keydown", "key": str(i + 1), "repeat": False})
        for _ in range(8):  # skip through the rest: the broken file comes on screen and is set aside
            panel._on_key({"type": "keydown", "event": "keydown", "key": "ArrowRight", "repeat": False})
        assert any("broken" in item.path for item in s.skipped)
        assert "&lt;img" in panel._skipped.html.value
        factory.last.publish(
            Update(status="error", message=f"label {NASTY!r} for {s.current} is not one of {labels}")
        )
        settle(panel)
        assert NASTY in panel._error.value  # a Label: shown as plain text, never parsed as HTML
        if True:  # the model-insight view (confusion matrix, most wrong images)
            from oal_widget.reports import diagnostics

            paths = [p for p in s.pool.paths if "broken" not in p][:3]
            probs = np.array([[0.1, 0.1, 0.8], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
            panel.insight.show(diagnostics.diagnose(paths, probs, [0, 1, 2], labels))
        assert_no_raw_html(panel)
        assert any("&lt;img" in v for v in html_values(panel))  # the names are there, escaped
        panel.stop()
        assert_no_raw_html(panel)
        assert "&lt;img" in panel._done.value or NASTY not in panel._done.value
    finally:
        s.close()


# --- no file outside the images folder, even after the scan ----------------------------------------
def test_a_folder_swapped_for_a_link_out_after_the_scan_is_not_read(tmp_path):
    import pytest

    from oal_widget.data.pool import ImageError, ImagePool, display_png

    root, secret = tmp_path / "images", tmp_path / "secret"
    for folder in (root / "sub", secret):
        folder.mkdir(parents=True)
        Image.new("L", (16, 16), 255).save(folder / "a.png")
    Image.new("L", (16, 16), 0).save(root / "b.png")
    pool = ImagePool(root, (16, 16, 1))
    assert pool.paths == ["b.png", "sub/a.png"]
    (root / "sub").rename(root / "sub_old")
    os.symlink(secret, root / "sub")  # sub/a.png now resolves to secret/a.png
    with pytest.raises(ImageError, match="outside the images folder"):
        pool.array("sub/a.png")
    with pytest.raises(ImageError, match="outside the images folder"):
        display_png(root, "sub/a.png")
    assert [s.path for s in pool.skipped] == ["sub/a.png"]
    assert pool.array("b.png").max() == 0.0  # the others still load
