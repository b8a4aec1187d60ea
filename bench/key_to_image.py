"""Key to image, as the person sees it: in a real browser, from a key press to the NEXT image on screen.

One command (about 40 s per front end and run on 2 CPU cores; needs the dev extra and Chromium)::

    .venv/bin/python bench/key_to_image.py                         # JupyterLab, 60 keys at 4 per second
    .venv/bin/python bench/key_to_image.py --apps lab,notebook --runs 3   # + Notebook 7, 3 runs each
    .venv/bin/python bench/key_to_image.py --pause-training        # the same with training paused (`p`)
    .venv/bin/python bench/key_to_image.py --what-if tf-threads-1  # try a change without making it
    .venv/bin/python bench/key_to_image.py --code main=/tmp/snap,slots=.   # A/B, interleaved runs

It starts JupyterLab 4 (and/or Notebook 7) on 127.0.0.1 with a fresh config exactly as the browser
test does (``tests/jupyter_e2e.py``), opens a generated notebook that shows ``Annotator(...)`` on a
copy of the repo's ``images/`` (300 digits, 32x32 PNG; ``--images`` for another folder, ``--generate N``
for N generated digits per class) with real training: the default model (the small CNN of
``oal_widget.training.models``) with the quickstart's settings, ``input_shape=(32, 32, 1)``,
``eval_every=5``, ``query_every=5``, minus its early stopping (which could end the session mid-run);
``--settings`` replaces them (``'{}'``: the package's defaults). It gives ``--warmup`` labels at a
human pace (more, one a second, until the first evaluation), waits until the trainer says
"training" (TensorFlow imported, the model built and traced, an evaluation drawn), points at the
image, then presses ``--keys`` number keys at ``--rate`` per second (the right digit for the image
shown, as a person would; it does not wait for the image), while the model trains on every label.

Per key, in the page (recorders installed before the first key):

- t0: the keydown's ``event.timeStamp`` (a capture-phase listener on ``window``: it runs before
  ipyevents' listener on ``document``);
- t1: the next image has appeared: the image on top changed, whichever happened (``how``): its
  ``src`` changed (the PNG was sent: ipywidgets sets a new blob URL), or another image slot came on
  top (``switch``: its frame got the class ``oal-image-rising``, see ``oal_widget/ui/image_slots.py``;
  its PNG was sent ahead; ``page`` when it came on top before the key reached the kernel: the page's
  own switch, ``oal_widget/ui/slot_switch.py``); a ``MutationObserver`` on the panel sees either.
  Then its ``decode()``
  resolved (at once for a slot decoded while beneath; measured, not assumed), then the next
  ``requestAnimationFrame`` callback ran (``next_frame_ms``, one frame later, is in the CSV too).
  When the NEXT key's image replaced it before it could be decoded (``decode()`` rejects), the key
  is ``superseded``: t1 is when that newer image appeared (what the person saw).

Each key is matched to the image change it caused by the filename: the kernel log says which image
each key event (identified by its ``timeStamp``, which ipyevents forwards) made current, and the
key's change is the first one after t0 whose ``.oal-filename`` text names that image; with
``--no-kernel-log``, the n-th image change after the start is the n-th key's (both agree on every
run so far). A key with no image within ``--bound-ms`` is a failure: counted and listed, never dropped;
so is a key the page switched on to another image than the one the kernel then made current (``wrong
image first``: the kernel log records which image each page switch put on top).

The kernel log (code in the generated notebook only; the package is not changed) times the
ipyevents callback (the panel's key handler), notes when the image's new value is handed over
(ipywidgets sends a trait before calling its observers: the bytes, or the class of the slot switched
to) and when the IOPub thread really sends it,
and records the spans of the work that competes for the CPU and the GIL: the trainer's rounds,
evaluations and queries, the session's ``on_change`` callback and the matplotlib renders. The page
notes when each big websocket message arrives. Wall clock (kernel) and ``performance.timeOrigin +
timeStamp`` (page) compare on one machine, so each key splits into::

    latency = to_kernel   browser event -> handler start (page JS, websocket, server, ZMQ, kernel queue, GIL)
            + to_send     handler start -> image handed to the IOPub thread
            + to_dom      -> the image on top changed: iopub_wait (IOPub thread) + wire (ZMQ, the
                          Jupyter server, the websocket) + js (JupyterLab, ipywidgets); its message
                          is the PNG's, or (a switch) the small one with ``oal-image-rising``
            + decode      changed -> decode() resolved
            + paint       -> the next animation frame

Outputs: ``--out`` (default ``bench/results/key_to_image.csv``): one row per key (with its run and
load average), then summary rows (``i`` = p50, p90, p99, max of every timing column);
``<out>_summary.csv`` and the printed table (p50/p90/p99/max, n, failures, the breakdown, the load
average before and after, the code measured, machine and date) via ``bench/_report.py``.
``--artifacts`` gets screenshots, the server's log, the raw page and kernel logs (JSON), on failure the
console log, with ``--py-spy PATH`` a py-spy profile of the kernel during the keys, and with
``--trace`` Chromium's performance trace of the page during the keys (``key_to_image-<app>-<time>-
trace.json``, for Perfetto or chrome://tracing: what the page's main thread did while a message
waited). The server, its kernel and the browser are stopped on leaving, also on an error, Ctrl-C or
SIGTERM.

The server runs as installing the measured package would set it up (``tests/jupyter_e2e.py``'s
``installed_config``): with oal_widget's own server extension (``oal_widget/server_extension.py``:
kernel websockets without Nagle's delay) when the measured package has one, without it otherwise.

To measure a commit while others edit the working tree: ``git archive HEAD oal_widget | tar -x -C
/tmp/snap; git rev-parse --short HEAD > /tmp/snap/COMMIT`` then ``PYTHONPATH=/tmp/snap`` before the
command (the kernel inherits it; the table names the code it measured), or ``--code NAME=/tmp/snap``;
with two, ``--code main=/tmp/a,new=/tmp/b`` measures both in each run, one after the other on the same
front end (the order reversed every other run), as rows ``lab main`` and ``lab new``.

With 60 keys, p99 is the interpolation between the two slowest keys: read it with max and n, or
pool several runs (``--runs``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import report  # noqa: E402  (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))  # the shared JupyterLab / Chromium start-up (not a test module)
import jupyter_e2e as e2e  # noqa: E402

#: Keys of the labels in order (the panel's default keymap): label #1 is key "1", label #10 key "0".
LABEL_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]
#: The quickstart's settings minus early stopping (a threshold could end the session mid-run).
DEFAULT_SETTINGS = {"input_shape": [32, 32, 1], "eval_every": 5, "query_every": 5}
NOTEBOOK_NAME = "key_to_image.ipynb"
#: The single view's image: in a slot frame (ui/image_slots.py), or an ``img.oal-image`` before them.
IMAGE = ".oal-image > img, img.oal-image"
#: The measured protocol is number keys in the single view: a label whose image has near-duplicates
#: would open them as a grid page (``Modes.offer_duplicates``; the repo's digits have some), where the
#: next number key labels a tile, not the next image. Off unless ``--duplicate-pages``.
NO_DUPLICATE_PAGES = 'annotator.modes.offer_duplicates = lambda path: ""'

TARGET_P99_MS = 50.0
#: ``--trace``: what the page's main thread did (tasks, events, style, layout, paint) and the scheduler.
TRACE_CATEGORIES = [
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "toplevel",
    "blink",
    "v8.execute",
    "loading",
    "net",
    "disabled-by-default-network",
]

#: Named what-if experiments (``--what-if a,b``): code run in the kernel before (setup) or right after
#: (after) ``Annotator(...)``, to try a change to the package without making it.
WHAT_IF = {
    # TensorFlow's thread pools: one thread each instead of one per core (read when TF starts).
    "tf-threads-1": (
        "import os\nos.environ['TF_NUM_INTRAOP_THREADS'] = '1'\nos.environ['TF_NUM_INTEROP_THREADS'] = '1'",
        "",
    ),
    # The trainer's thread at nice 10 before it imports TensorFlow: TF's pool threads, created by it,
    # inherit the nice value (Linux: per thread), so the server and the browser come first.
    "nice-trainer": (
        "",
        "import os\nos.setpriority(os.PRIO_PROCESS, annotator.session.trainer.native_id, 10)",
    ),
    # Python's GIL switch interval 1 ms instead of 5 ms.
    "switch-1ms": ("import sys\nsys.setswitchinterval(0.001)", ""),
    # No training step starts within 100 ms after a key (the trainer waits between steps).
    "quiet-100ms": (
        "",
        """import time as _qt
_quiet = {"until": 0.0}
_q_trainer = annotator.session.trainer
_q_step = _q_trainer._step

def _quiet_step():
    while (d := _quiet["until"] - _qt.monotonic()) > 0:
        _qt.sleep(d)
    return _q_step()

_q_trainer._step = _quiet_step
annotator.event.on_dom_event(lambda ev: _quiet.__setitem__("until", _qt.monotonic() + 0.1))""",
    ),
}

# --------------------------------------------------------------------------------------------------
# the notebook: the panel, plus the kernel log (instrumentation here only, the package is untouched)
# --------------------------------------------------------------------------------------------------
INSTRUMENT = r'''
import json as _json, os as _os, threading as _threading, time as _time

import oal_widget as _oal

_SWITCH = b"oal-image-rising"  # in the message that puts an image slot on top (ui/image_slots.py)
_K2I = {"pid": _os.getpid(), "package": _os.path.dirname(_oal.__file__), "keys": [], "spans": [],
        "iopub": [], "probe": [], "installed": []}


def _k2i_span(name, fn):
    def timed(*args, **kwargs):
        t = _time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            _K2I["spans"].append((name, _threading.current_thread().name, t * 1e3, _time.time() * 1e3))
    return timed


def _k2i_wrap(obj, attr, name=None):
    """Time obj.attr (an instance or a module attribute); best effort: the package may be renamed."""
    try:
        fn = getattr(obj, attr)
        setattr(obj, attr, _k2i_span(name or attr, fn))
        _K2I["installed"].append(name or attr)
    except Exception as e:
        _K2I["installed"].append(f"{name or attr}: not installed ({type(e).__name__}: {e})")


def _k2i_get(obj, attr):
    try:
        return getattr(obj, attr)
    except Exception:
        return None


def _k2i_instrument(annotator, gil_probe=False):
    """Best effort throughout: what could not be installed is listed in _K2I["installed"]."""
    session = annotator.session
    sent = {}

    def on_key(ev):
        sent.clear()
        t_in = _time.time()
        before = _k2i_get(session, "current")
        for handler in handlers:
            handler(ev)
        t_out = _time.time()
        _K2I["keys"].append({
            "ts": ev.get("timeStamp"), "key": ev.get("key"), "type": ev.get("type"),
            "t_in": t_in * 1e3, "t_out": t_out * 1e3, "before": before, "after": _k2i_get(session, "current"),
            "t_image_sent": sent.get("oal-image"), "t_name_sent": sent.get("oal-filename"),
            "image_bytes": sent.get("bytes"), "how": sent.get("how"),
            "trainer": _k2i_get(session, "trainer_status"),
        })

    try:
        event = annotator.event  # the panel's ipyevents watcher: its callbacks run inside on_key
        handlers = list(event._dom_handlers.callbacks)
        event.reset_callbacks()
        event.on_dom_event(on_key)
        _K2I["installed"].append("key handler")
    except Exception as e:
        _K2I["installed"].append(f"key handler: not installed ({type(e).__name__}: {e})")

    # When the kernel's IOPub thread really sends (the main thread only queues): big messages only.
    try:
        iopub = get_ipython().kernel.iopub_thread
        really_send = iopub._really_send

        def timed_send(msg, *args, **kwargs):
            n = sum(len(part) for part in msg)
            if n > 1000:
                _K2I["iopub"].append((_time.time() * 1e3, n, "img"))
            elif any(_SWITCH in bytes(part) for part in msg):
                _K2I["iopub"].append((_time.time() * 1e3, n, "switch"))
            return really_send(msg, *args, **kwargs)

        iopub._really_send = timed_send
        _K2I["installed"].append("iopub send")
    except Exception as e:
        _K2I["installed"].append(f"iopub send: not installed ({type(e).__name__}: {e})")

    # When the image and the filename were handed to the kernel's IOPub thread: ipywidgets sends a
    # trait's new state BEFORE it calls the trait's observers. Found by their CSS class. The image: its
    # bytes set on the visible image, or (image slots) the class that puts a slot on top.
    def on_sent(cls, w):
        def observer(change):
            if cls == "oal-filename":
                sent.setdefault(cls, _time.time() * 1e3)
            elif change["name"] == "value" and "oal-image" in w._dom_classes:
                sent.setdefault("oal-image", _time.time() * 1e3)
                sent.setdefault("bytes", len(change["new"]))
                sent.setdefault("how", "send")
            elif change["name"] == "_dom_classes" and "oal-image-rising" in change["new"]:
                sent.setdefault("oal-image", _time.time() * 1e3)
                sent.setdefault("how", "switch")
        return observer

    def walk(w):
        yield w
        for child in getattr(w, "children", ()):
            yield from walk(child)

    for w in walk(annotator):
        classes = getattr(w, "_dom_classes", ())
        if "oal-filename" in classes:
            w.observe(on_sent("oal-filename", w), names="value")
            _K2I["installed"].append("oal-filename sent")
        elif "oal-slot" in classes:  # an image slot's frame: its class, its image's bytes
            w.observe(on_sent("oal-image", w), names="_dom_classes")
            for image in w.children:
                image.observe(on_sent("oal-image", w), names="value")
            _K2I["installed"].append("oal-image sent")
        elif "oal-image" in classes:
            w.observe(on_sent("oal-image", w), names="value")
            _K2I["installed"].append("oal-image sent")
    # The page's own switches (ui/slot_switch.py): which image the page put on top, and whether the
    # kernel took it in (this observer runs after the panel's), to check it was the key's image.
    _K2I["page"] = []
    try:
        slots = annotator.labelling.slots

        def on_page(_widget, content, _buffers):
            to = (content.get("switched") or {}).get("to")
            path = slots.paths[to] if isinstance(to, int) and 0 <= to < len(slots.paths) else None
            ts = (content.get("switched") or {}).get("ts")
            _K2I["page"].append((_time.time() * 1e3, to, path, slots.page_switches, ts))

        slots.switch.on_msg(on_page)
        _K2I["installed"].append("page switch")
    except Exception as e:
        _K2I["installed"].append(f"page switch: not installed ({type(e).__name__}: {e})")
    trainer = _k2i_get(session, "trainer")
    for attr in ("train_round", "evaluate", "query"):
        _k2i_wrap(trainer, attr)
    # Applying a trainer update to the panel: on the trainer's thread (session.on_change, up to
    # ac3b5ec) or on the panel's UI thread (Annotator._apply_updates, from c19105f).
    if hasattr(annotator, "_apply_updates"):
        _k2i_wrap(annotator, "_apply_updates", "apply_updates")
    else:
        _k2i_wrap(session, "on_change")
    from oal_widget.ui import plots
    for attr in ("metrics_png", "distribution_png"):
        _k2i_wrap(plots, attr)
    if gil_probe:  # how late a thread that sleeps 1 ms wakes up: the wait for the GIL, sampled
        def probe():
            while True:
                t = _time.perf_counter()
                _time.sleep(0.001)
                late = (_time.perf_counter() - t) * 1e3 - 1.0
                if late > 2.0:
                    _K2I["probe"].append((_time.time() * 1e3, late))
        _threading.Thread(target=probe, name="k2i-gil-probe", daemon=True).start()


def _k2i_dump(path):
    with open(path, "w") as f:
        _json.dump(_K2I, f)
'''


def make_notebook(
    path: Path,
    labels: list[str],
    settings: dict,
    kernel_log: bool,
    gil_probe: bool,
    setup: str = "",
    after: str = "",
) -> None:
    """The bench's notebook: [--kernel-setup], [the kernel log's code], the panel [+ --kernel-after]."""
    import nbformat

    args = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}" for k, v in settings.items())
    code = f'from oal_widget import Annotator\n\nannotator = Annotator("../images", labels={labels!r}'
    code += f", {args})" if args else ")"
    if kernel_log:
        code += f"\n_k2i_instrument(annotator, gil_probe={gil_probe!r})"
    if after:
        code += f"\n# --kernel-after\n{after}"
    code += "\nannotator"
    cells = [nbformat.v4.new_markdown_cell("# key to image (bench/key_to_image.py)")]
    if setup:
        cells.append(nbformat.v4.new_code_cell(f"# --kernel-setup\n{setup}"))
    if kernel_log:
        cells.append(nbformat.v4.new_code_cell(INSTRUMENT.strip()))
    cells.append(nbformat.v4.new_code_cell(code))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def labels_for(images: Path) -> list[str]:
    """The labels: the top-level folder names (digits in key order, so key "3" labels folder "3")."""
    folders = sorted(p.name for p in images.iterdir() if p.is_dir() and not p.name.startswith("."))
    if set(folders) <= set(LABEL_KEYS) and folders:
        return [k for k in LABEL_KEYS if k in folders]
    if not 2 <= len(folders) <= 10:
        raise SystemExit(f"{images}: expected 2..10 class sub-folders (their names become the labels)")
    return folders


# --------------------------------------------------------------------------------------------------
# the server's recorder: a server extension of the bench's own (the server's config dir is fresh)
# --------------------------------------------------------------------------------------------------
SERVER_EXT = r'''"""bench/key_to_image.py: when the server gets each key event and forwards each image."""

import json
import os
import re
import time

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection as _Conn

_LOG = open(os.environ["K2I_SERVER_LOG"], "a", buffering=1)
_TS = re.compile(rb'"timeStamp":\s*(-?[0-9.eE+]+)')
_incoming, _outgoing = _Conn.handle_incoming_message, _Conn.handle_outgoing_message


def handle_incoming_message(self, incoming_msg):
    t = time.time() * 1e3
    data = incoming_msg.encode() if isinstance(incoming_msg, str) else bytes(incoming_msg)
    try:
        return _incoming(self, incoming_msg)
    finally:
        if b'"keydown"' in data and (m := _TS.search(data)):
            _LOG.write(json.dumps(["in", t, time.time() * 1e3, float(m.group(1))]) + "\n")


def handle_outgoing_message(self, stream, outgoing_msg):
    t = time.time() * 1e3
    try:
        return _outgoing(self, stream, outgoing_msg)
    finally:
        n = sum(len(part) for part in outgoing_msg)
        if n > 1000:
            _LOG.write(json.dumps(["out", t, time.time() * 1e3, n, "img"]) + "\n")
        elif any(b"oal-image-rising" in bytes(part) for part in outgoing_msg):
            _LOG.write(json.dumps(["out", t, time.time() * 1e3, n, "switch"]) + "\n")


_Conn.handle_incoming_message = handle_incoming_message
_Conn.handle_outgoing_message = handle_outgoing_message


def _jupyter_server_extension_points():
    return [{"module": "k2i_server_ext"}]


def _load_jupyter_server_extension(serverapp):
    serverapp.log.info("k2i_server_ext: recording to %s", os.environ["K2I_SERVER_LOG"])
'''


def server_recorder(tmp: Path) -> tuple[dict, dict, Path]:
    """(env, config, log path) that make the server load SERVER_EXT."""
    ext = tmp / "k2i_ext"
    ext.mkdir(parents=True, exist_ok=True)
    (ext / "k2i_server_ext.py").write_text(SERVER_EXT)
    log = tmp / "k2i_server.jsonl"
    path = os.pathsep.join(filter(None, (str(ext), os.environ.get("PYTHONPATH"))))
    env = {"PYTHONPATH": path, "K2I_SERVER_LOG": str(log)}
    return env, {"ServerApp": {"jpserver_extensions": {"k2i_server_ext": True}}}, log


# --------------------------------------------------------------------------------------------------
# the page's recorders
# --------------------------------------------------------------------------------------------------
#: Before the page's own scripts: when each big message (> 1000 bytes: images, plots) arrives on the
#: kernel's websocket, before JupyterLab's handler sees it.
WS_RECORDER = r"""(() => {
    const Original = window.WebSocket;
    const arrivals = window.__k2i_ws = [];
    const longtasks = window.__k2i_longtasks = [];  // the page's main thread busy >= 50 ms at a time
    try {
        new PerformanceObserver((list) => {
            for (const e of list.getEntries()) longtasks.push([e.startTime, e.duration]);
        }).observe({type: 'longtask'});
    } catch (e) {}
    class Recording extends Original {
        constructor(...args) {
            super(...args);
            if (String(args[0]).includes('/channels')) {
                const text = new TextDecoder();
                this.addEventListener('message', (e) => {
                    const t = performance.now();
                    const n = typeof e.data === 'string' ? e.data.length : e.data.byteLength;
                    if (n > 1000) { arrivals.push([t, n, 'img']); return; }
                    const s = typeof e.data === 'string' ? e.data : text.decode(e.data);
                    // The message that puts an image slot on top (ui/image_slots.py).
                    if (s.includes('oal-image-rising')) arrivals.push([t, n, 'switch']);
                });
            }
        }
    }
    window.WebSocket = Recording;
})();"""
RECORDER = r"""() => {
    if (window.__k2i) return;
    const R = window.__k2i = {origin: performance.timeOrigin, keys: [], imgs: [], names: [], attached: 0};
    const nameNow = () => {
        const e = document.querySelector('.oal-filename');
        return e ? e.textContent : null;
    };
    // The image on top: the slot being switched to, else the visible one (image slots, see
    // ui/image_slots.py; a single img.oal-image before them).
    const top = () => (document.querySelector('.oal-image-rising > img')
                       || document.querySelector('.oal-image > img, img.oal-image'));
    let panel = null, label = null, shown = null, lastSrc = null;
    const onChange = () => {
        const t = performance.now();
        const el = top();
        if (!el) return;
        const src = el.getAttribute('src');
        if (el === shown && src === lastSrc) return;
        const how = el === shown ? 'src' : 'switch';
        shown = el; lastSrc = src;
        const rec = {t_mut: t, how: how, src: src, name_mut: nameNow(), t_load: null, t_dec: null,
                     t_raf: null, t_raf2: null, name_raf: null, err: null};
        R.imgs.push(rec);
        if (how === 'src') {
            el.addEventListener('load', () => {
                if (el.getAttribute('src') === src) rec.t_load = performance.now();
            }, {once: true});
        }
        // A slot sent ahead was decoded while beneath: its decode() resolves at once (measured).
        el.decode().then(() => {
            rec.t_dec = performance.now();
            requestAnimationFrame(() => {
                rec.t_raf = performance.now();
                rec.name_raf = nameNow();
                requestAnimationFrame(() => { rec.t_raf2 = performance.now(); });
            });
        }, (e) => {
            rec.err = String(e);
            fetch(src).then((r) => r.arrayBuffer()).then((b) => {  // what the page got, to compare
                const head = Array.from(new Uint8Array(b.slice(0, 8)), (x) => x.toString(16)).join(' ');
                rec.err += ` (${b.byteLength} bytes: ${head})`;
            }, () => {});
        });
    };
    const onName = () => { R.names.push({t: performance.now(), text: nameNow()}); };
    const imageObserver = new MutationObserver(onChange), nameObserver = new MutationObserver(onName);
    R.attach = () => {  // (again) when the panel's elements were re-rendered
        const p = document.querySelector('.oal-panel'), l = document.querySelector('.oal-filename');
        if (p && p !== panel) {
            imageObserver.disconnect(); panel = p;
            shown = top(); lastSrc = shown && shown.getAttribute('src');
            imageObserver.observe(p, {attributes: true, attributeFilter: ['src', 'class'], subtree: true});
            R.attached++;
        }
        if (l && l !== label) {
            nameObserver.disconnect(); label = l;
            nameObserver.observe(l, {childList: true, characterData: true, subtree: true});
        }
    };
    R.attach();
    window.addEventListener('keydown', (e) => {
        const i = top();
        R.keys.push({ts: e.timeStamp, now: performance.now(), key: e.key, shown: nameNow(),
                     src: i && i.getAttribute('src'), repeat: e.repeat});
        R.attach();
    }, {capture: true});
    R.reset = () => { R.keys = []; R.imgs = []; R.names = []; };
}"""


# --------------------------------------------------------------------------------------------------
# one front end
# --------------------------------------------------------------------------------------------------
def run_app(app: str, args, tmp: Path, playwright, code: str | None = None) -> dict:
    """Start the server and the browser, label, measure; the raw logs. Both are stopped on leaving.
    ``code``: a folder holding the ``oal_widget`` to measure (first on the kernel's PYTHONPATH)."""
    root = tmp / f"root-{app}"
    (root / "notebooks").mkdir(parents=True)
    if args.generate:
        from oal_widget.data.samples import write_digits

        write_digits(root / "images", per_class=args.generate, size=32, seed=args.seed)
    else:
        shutil.copytree(args.images, root / "images", ignore=shutil.ignore_patterns(".oal"))
    labels = labels_for(root / "images")
    n_images = sum(1 for p in (root / "images").rglob("*") if p.is_file())
    if n_images < args.warmup_max + args.keys + 5:
        raise SystemExit(f"{n_images} images are too few for up to {args.warmup_max} + {args.keys} labels")
    make_notebook(
        root / "notebooks" / NOTEBOOK_NAME,
        labels,
        args.settings,
        args.kernel_log,
        args.gil_probe,
        args.kernel_setup,
        args.kernel_after,
    )
    log_path = tmp / f"server-{app}.log"
    raw: dict = {"app": app, "labels": labels, "n_images": n_images}
    env, config, server_log = server_recorder(tmp / f"ext-{app}") if args.kernel_log else ({}, None, None)
    if code:
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, (code, env.get("PYTHONPATH"), os.environ.get("PYTHONPATH")))
        )
    try:
        with e2e.jupyter_server(
            app, tmp / f"jupyter-{app}", root, log_path, env=env, config=config
        ) as server:
            try:
                browser = e2e.launch_chromium(playwright)
                try:
                    _in_browser(browser, server, args, root, labels, raw, server_log)
                finally:
                    browser.close()
            finally:
                _stop(raw.pop("_profiler", None))
                pid = raw.get("pid")
                if pid:
                    raw["_kernel_pid"] = pid  # killed below if the server's shutdown left it running
    finally:
        pid = raw.pop("_kernel_pid", None)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        if log_path.exists():
            shutil.copy(log_path, args.artifacts / f"key_to_image-server-{app}.log")
    return raw


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _stop(profiler: subprocess.Popen | None) -> None:
    """py-spy writes its file on SIGINT."""
    if profiler is None or profiler.poll() is not None:
        return
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=60)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()


def _in_browser(browser, server: dict, args, root: Path, labels: list[str], raw: dict, server_log) -> None:
    from playwright.sync_api import expect

    app = server["app"]
    ctx = browser.new_context(viewport={"width": 1280, "height": 1400})
    ctx.add_init_script(WS_RECORDER)
    page, console = e2e.open_page(ctx)
    expect.set_options(timeout=e2e.TIMEOUT_MS)
    try:
        _measure(page, server, args, root, labels, raw, server_log)
    except BaseException:
        try:
            page.screenshot(path=str(args.artifacts / f"key_to_image-failure-{app}.png"))
            (args.artifacts / f"key_to_image-failure-{app}-console.txt").write_text("\n".join(console))
        except Exception:
            pass
        raise
    finally:
        ctx.close()


def _text(page, selector: str) -> str:
    return page.evaluate("(sel) => (document.querySelector(sel) || {}).textContent || ''", selector)


def _wait_text(page, selector: str, prefix: str, deadline: float, what: str) -> None:
    while not _text(page, selector).startswith(prefix):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {selector} says {_text(page, selector)!r}")
        time.sleep(0.1)


def _measure(page, server: dict, args, root: Path, labels: list[str], raw: dict, server_log=None) -> None:
    from playwright.sync_api import expect

    app = server["app"]
    t_start = time.monotonic()
    e2e.open_notebook(page, e2e.page_url(server, f"notebooks/{NOTEBOOK_NAME}"))
    e2e.run_all_cells(page)
    expect(page.locator(".oal-panel")).to_be_visible()
    src = e2e.wait_src_changed(page, IMAGE, None)
    e2e.wait_kernel_idle(page)
    raw["pid"] = _kernel_pid(page, root)
    page.evaluate(RECORDER)  # before any key
    page.locator(IMAGE).hover()  # ipyevents listens while the pointer is over the panel
    expect(page.locator(".oal-panel.ipyevents-watched, .oal-panel .ipyevents-watched").first).to_be_attached()
    expect(page.locator(".oal-keysink input")).to_be_focused()  # Notebook 7: no shortcut takes a key
    filename = page.locator(".oal-filename")

    def key_for(shown: str) -> str:
        """The right digit for the image shown, as a person would press (the model really learns)."""
        folder = shown.split("/")[0]
        return LABEL_KEYS[labels.index(folder)] if folder in labels else LABEL_KEYS[0]

    def label_and_wait() -> None:
        nonlocal src
        text = filename.inner_text()
        page.keyboard.press(key_for(text))
        expect(filename).not_to_have_text(text)
        src = e2e.wait_src_changed(page, IMAGE, src)
        raw["warmup_labels"] += 1

    # Warm-up at a human pace, each key waiting for its image: the trainer gets labels to train on.
    raw["warmup_labels"] = 0
    for _ in range(args.warmup):
        label_and_wait()
    # Really training: TensorFlow imported, the model built, rounds and an evaluation done (the plot
    # shows metrics), and the trainer says "training". An evaluation needs eval_every TRAINING labels
    # (half the images shown first are test images): one more label a second until there is one.
    deadline = time.monotonic() + args.startup_s
    has_metrics = "() => !!document.querySelector('img.oal-plot.oal-plot-has-metrics')"
    while args.wait_metrics and not page.evaluate(has_metrics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no evaluation after {args.startup_s} s: {_text(page, '.oal-status')!r}")
        if raw["warmup_labels"] < args.warmup_max and not _text(page, ".oal-status").startswith("importing"):
            label_and_wait()
        time.sleep(1.0)
    # The trainer idles ("waiting") after idle_rounds rounds without a new label: one more label wakes it.
    while not _text(page, ".oal-status").startswith("training"):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the trainer is not training: .oal-status says {_text(page, '.oal-status')!r}"
            )
        if _text(page, ".oal-status").startswith("waiting"):
            label_and_wait()
        time.sleep(0.2)
    if args.pause_training:
        page.keyboard.press("p")
        _wait_text(page, ".oal-status", "paused", deadline, "the trainer did not pause")
        time.sleep(1.0)  # a round under way ends
    raw["status_before"] = _text(page, ".oal-status")
    raw["t_ready_s"] = round(time.monotonic() - t_start, 1)
    page.screenshot(path=str(args.artifacts / f"key_to_image-{app}-1-ready.png"))

    if args.py_spy and raw["pid"]:
        prof = args.artifacts / f"key_to_image-{app}-py-spy.txt"
        cmd = [args.py_spy, "record", "-p", str(raw["pid"]), "-r", str(args.py_spy_rate), "-o", str(prof)]
        cmd += ["-f", "raw", "--threads", "--nonblocking"] + (["--gil"] if args.py_spy_gil else ["--idle"])
        raw["_profiler"] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        raw["py_spy"] = str(prof)
        time.sleep(1.0)  # py-spy attaches

    # The measured keys, at the rate, whether or not the previous image has appeared yet.
    raw["load_before"] = os.getloadavg()
    page.evaluate("() => window.__k2i.reset()")
    if args.trace:  # Chromium's performance trace of the page during the keys (chrome://tracing, Perfetto)
        page.context.browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
    interval = 1.0 / args.rate
    t0 = time.monotonic()
    for i in range(args.keys):
        delay = t0 + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        page.keyboard.press(key_for(_text(page, ".oal-filename")))
    page.wait_for_timeout(args.bound_ms + 500)  # the last key's image, within the bound
    raw["load_after"] = os.getloadavg()
    if args.trace:
        trace = args.artifacts / f"key_to_image-{app}-{time.strftime('%H%M%S')}-trace.json"
        trace.write_bytes(page.context.browser.stop_tracing())
        raw["trace"] = str(trace)
    raw["page"] = page.evaluate(
        "() => { const R = window.__k2i; return {origin: R.origin, keys: R.keys, imgs: R.imgs, "
        "names: R.names, attached: R.attached, ws: window.__k2i_ws || [], "
        "longtasks: window.__k2i_longtasks || []}; }"
    )
    raw["status_after"] = _text(page, ".oal-status")
    page.screenshot(path=str(args.artifacts / f"key_to_image-{app}-2-after.png"))
    _stop(raw.pop("_profiler", None))
    if args.kernel_log:
        dump = root / "k2i_kernel_log.json"
        e2e.kernel_execute(page, f"_k2i_dump({str(dump)!r})")
        raw["kernel"] = json.loads(dump.read_text())
        if server_log is not None and server_log.exists():
            raw["server"] = [json.loads(line) for line in server_log.read_text().splitlines() if line]


def _kernel_pid(page, root: Path) -> int | None:
    path = root / "k2i_kernel.pid"
    try:
        e2e.kernel_execute(page, f"import os as _os; open({str(path)!r}, 'w').write(str(_os.getpid()))")
        return int(path.read_text())
    except Exception:
        return None


# --------------------------------------------------------------------------------------------------
# matching keys to images, and the numbers
# --------------------------------------------------------------------------------------------------
def _image_name(img: dict, names: list[dict], bound_ms: float) -> str | None:
    """The filename shown with this image: the first change of the filename label after the image's.

    The kernel sends the image, then the filename, and the page applies them in that order (one
    websocket message each), so the label changes after the image, a few ms later (more when the
    page is busy); the text a frame later if it did not change at all."""
    for change in names:
        if img["t_mut"] - 0.5 <= change["t"] <= img["t_mut"] + bound_ms:
            return change["text"]
    return img.get("name_raf")


def match(raw: dict, bound_ms: float) -> list[dict]:
    """One row per measured key: t0, t1, the breakdown, the image it caused, or why none."""
    page = raw["page"]
    origin = page["origin"]
    keys = [k for k in page["keys"] if not k.get("repeat")]
    imgs = page["imgs"]
    names = page["names"]
    for img in imgs:
        img["name"] = _image_name(img, names, bound_ms)
    kernel = raw.get("kernel")
    by_ts = {}
    spans, probe, page_log = [], [], []
    iopub, ws, longtasks = [], page.get("ws", []), page.get("longtasks", [])
    server = raw.get("server") or []
    server_in = {round(r[3], 3): r for r in server if r[0] == "in"}  # by the key event's timeStamp
    server_out = [r for r in server if r[0] == "out"]
    if kernel:
        by_ts = {round(k["ts"], 3): k for k in kernel["keys"] if k.get("ts") is not None}
        spans, probe, iopub = kernel["spans"], kernel["probe"], kernel.get("iopub", [])
        page_log = kernel.get("page", [])
    used: set[int] = set()
    rows = []
    first_ts = keys[0]["ts"] if keys else 0.0
    next_img = 0
    for i, key in enumerate(keys):
        ts = key["ts"]
        row = {
            "app": raw["app"],
            "i": i,
            "key": key["key"],
            "t_press_s": round((ts - first_ts) / 1000, 3),
            "input_delay_ms": round(key["now"] - ts, 2),
            "shown": key["shown"],
            "in_flight": sum(1 for r in rows if r.get("_t1") is None or r["_t1"] > ts),
        }
        k = by_ts.get(round(ts, 3))
        want = None
        if kernel is not None:
            if k is None:
                row["status"] = "no kernel record (the key never reached the handler)"
                rows.append(row)
                continue
            row.update(labelled=k["before"], next=k["after"], trainer=k["trainer"])
            row["to_kernel_ms"] = round(k["t_in"] - (origin + ts), 2)
            received = server_in.get(round(ts, 3))
            if received is not None:  # to_kernel = to_server (page, websocket) + server_to_handler
                row["to_server_ms"] = round(received[1] - (origin + ts), 2)
                row["server_to_handler_ms"] = round(k["t_in"] - received[1], 2)
            row["handler_ms"] = round(k["t_out"] - k["t_in"], 2)
            want = k["after"]
            if want is None or want == k["before"]:
                row["status"] = "the handler showed no other image"
                rows.append(row)
                continue
        img_i = None
        for j in range(next_img if kernel is None else 0, len(imgs)):
            img = imgs[j]
            if j in used or img["t_mut"] < ts - 1:
                continue
            if want is None or img["name"] == want:
                img_i = j
                break
        if img_i is None:
            row["status"] = "no image change"
            rows.append(row)
            continue
        used.add(img_i)
        next_img = img_i + 1
        img = imgs[img_i]
        row["image"] = img["name"]
        row["how"] = img.get("how", "src")
        if k is not None and row["how"] == "switch" and origin + img["t_mut"] < k["t_in"]:
            row["how"] = "page"  # on top before the key reached the kernel: the page's own switch
            # The image the page put on top (the kernel's record of this key's page message, which may
            # come after the key's own): the key's?
            mine = [p for p in page_log if _page_record_of(p, ts, origin, keys, i)]
            if mine and mine[0][2] != want:
                row["status"] = f"wrong image first ({mine[0][2]}, then {want})"
                rows.append(row)
                continue
        if k is not None and k.get("t_image_sent") is not None:
            row["to_send_ms"] = round(k["t_image_sent"] - k["t_in"], 2)
            row["to_dom_ms"] = round(origin + img["t_mut"] - k["t_image_sent"], 2)
            split_to_dom(row, k, img, origin, iopub, ws, server_out)
        status = "ok"
        if img["t_raf"] is None:
            # Replaced by the next key's image before it was decoded (decode() rejects then): the
            # person saw the next one instead, so that is when this key's screen changed.
            later = imgs[img_i + 1] if img_i + 1 < len(imgs) else None
            if not (img["err"] and later and later["t_raf"] is not None and later["t_mut"] < ts + bound_ms):
                row["status"] = f"image never painted ({img['err'] or 'no frame'})"
                rows.append(row)
                continue
            status = "superseded"
            img = {**later, "t_mut": img["t_mut"]}
        if img["t_dec"] is not None:
            row["decode_ms"] = round(img["t_dec"] - img["t_mut"], 2)
        row["paint_ms"] = round(img["t_raf"] - img["t_dec"], 2)
        row["latency_ms"] = round(img["t_raf"] - ts, 2)
        row["_t1"] = img["t_raf"]
        if img["t_raf2"] is not None:
            row["next_frame_ms"] = round(img["t_raf2"] - ts, 2)
        row["status"] = status if row["latency_ms"] <= bound_ms else f"late (over {bound_ms:g} ms)"
        busy_page = sum(
            min(start + d, img["t_raf"]) - max(start, ts)
            for start, d in longtasks
            if start < img["t_raf"] and start + d > ts
        )
        row["page_longtask_ms"] = round(busy_page, 1)
        if kernel is not None:
            a, b = origin + ts, origin + img["t_raf"]
            busy = sorted({s[0] for s in spans if s[2] < b and s[3] > a})
            row["concurrent"] = "+".join(busy)
            late = [p[1] for p in probe if a <= p[0] <= b]
            row["gil_probe_max_ms"] = round(max(late), 2) if late else ""
        rows.append(row)
    for row in rows:
        row.pop("_t1", None)
    return rows


def _page_record_of(record, ts: float, origin: float, keys: list, i: int) -> bool:
    """Whether the kernel's record of a page switch is key ``i``'s: by the key's timeStamp when the record
    has it, else by arriving after the key and before the next one."""
    if len(record) > 4 and record[4] is not None:
        return abs(record[4] - ts) < 0.01
    later = keys[i + 1]["ts"] if i + 1 < len(keys) else float("inf")
    return origin + ts <= record[0] < origin + later


def split_to_dom(
    row: dict, k: dict, img: dict, origin: float, iopub: list, ws: list, server_out: list
) -> None:
    """to_dom = iopub_wait (until the kernel's IOPub thread sends) + wire (ZMQ, the server, the
    websocket) + js (JupyterLab and ipywidgets in the page, until the image changes). The image's
    message: with its bytes sent, the first big one at least as large as the PNG after it was handed
    over; with a slot switched to, the first one that puts a slot on top (tagged "switch")."""
    size, sent = k.get("image_bytes"), k["t_image_sent"]
    switch = k.get("how") == "switch"
    if not size and not switch:
        return

    def fits(n, tag) -> bool:
        return tag == "switch" if switch else tag == "img" and size <= n <= size + 4000

    # The IOPub thread may send before the observer runs (it ran while the main thread gave up the GIL).
    sends = [
        t for t, n, *tag in iopub if k["t_in"] <= t <= origin + img["t_mut"] and fits(n, (tag or ["img"])[0])
    ]
    if not sends:
        return
    t_iopub = sends[0]
    arrived = [
        t
        for t, n, *tag in ws
        if origin + t >= t_iopub - 1 and fits(n, (tag or ["img"])[0]) and t <= img["t_mut"]
    ]
    row["iopub_wait_ms"] = round(max(0.0, t_iopub - sent), 2)
    if arrived:
        row["wire_ms"] = round(origin + arrived[0] - t_iopub, 2)
        row["js_ms"] = round(img["t_mut"] - arrived[0], 2)
        # wire = zmq (kernel -> server) + server (to the websocket) + net (-> the page's message event)
        forwarded = [
            r
            for r in server_out
            if t_iopub - 1 <= r[1] <= origin + arrived[0] + 1 and fits(r[3], (r[4:] or ["img"])[0])
        ]
        if forwarded:
            _, t_recv, t_written, *_ = forwarded[0]
            row["zmq_ms"] = round(t_recv - t_iopub, 2)
            row["server_ms"] = round(t_written - t_recv, 2)
            row["net_ms"] = round(origin + arrived[0] - t_written, 2)


PER_KEY_COLUMNS = [
    "app", "run", "load_1min", "i", "key", "t_press_s", "latency_ms", "next_frame_ms", "input_delay_ms",
    "to_kernel_ms", "to_send_ms", "to_dom_ms", "decode_ms", "paint_ms", "iopub_wait_ms", "wire_ms",
    "js_ms", "to_server_ms", "server_to_handler_ms", "zmq_ms", "server_ms", "net_ms", "handler_ms",
    "page_longtask_ms", "in_flight", "how", "shown", "labelled", "next", "image",
    "trainer", "concurrent", "gil_probe_max_ms", "status",
]  # fmt: skip
#: latency_ms = to_kernel + to_send + to_dom + decode + paint (see the module docstring).
PARTS = ["to_kernel_ms", "to_send_ms", "to_dom_ms", "decode_ms", "paint_ms"]
#: to_dom_ms = iopub_wait + wire + js (see split_to_dom).
SPLIT = ["iopub_wait_ms", "wire_ms", "js_ms"]
#: Finer still, from the server's recorder: to_kernel = to_server + server_to_handler; wire = zmq +
#: server + net.
FINER = ["to_server_ms", "server_to_handler_ms", "zmq_ms", "server_ms", "net_ms"]
#: Statuses of keys whose image appeared within the bound (superseded: the NEXT key's image was the
#: first one painted, see match()); every other status is a failure.
MEASURED = ("ok", "superseded")
#: Kernel work that happens every few labels, besides the training rounds that run all the time.
PERIODIC = ("evaluate", "query", "metrics_png", "distribution_png")


def _pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def write_per_key(rows_by_app: dict[str, list[dict]], out: Path) -> None:
    """One row per key, then summary rows (``i`` = p50, p90, p99, max) of every timing column."""
    timing = ["latency_ms", "next_frame_ms", "input_delay_ms", *PARTS, *SPLIT, *FINER, "handler_ms"]
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PER_KEY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for rows in rows_by_app.values():
            writer.writerows(rows)
        for app, rows in rows_by_app.items():
            ok = [r for r in rows if r["status"] in MEASURED]
            for q, name in ((50, "p50"), (90, "p90"), (99, "p99"), (100, "max")):
                summary = {
                    "app": app,
                    "i": name,
                    "status": f"summary of {len(ok)} keys, {len(rows) - len(ok)} failed",
                }
                for col in timing:
                    values = [r[col] for r in ok if r.get(col) not in (None, "")]
                    summary[col] = round(_pct(values, q), 2) if values else ""
                writer.writerow(summary)


def training_share(raw: dict) -> tuple[float, float] | None:
    """(share of the keys' time the trainer spent in training rounds, rounds per second): the check
    that the model really trained during the keys. None without the kernel log."""
    kernel, keys = raw.get("kernel"), raw["page"]["keys"]
    if not kernel or len(keys) < 2:
        return None
    origin = raw["page"]["origin"]
    a, b = origin + keys[0]["ts"], origin + keys[-1]["ts"]
    rounds = [s for s in kernel["spans"] if s[0] == "train_round" and s[3] > a and s[2] < b]
    busy = sum(min(s[3], b) - max(s[2], a) for s in rounds)
    return busy / (b - a), len(rounds) / ((b - a) / 1000)


def summary_rows(app: str, raws: list[dict], rows: list[dict], args) -> list[tuple]:
    """The table's rows for one front end, over every key of its runs (pooled)."""
    ok = [r for r in rows if r["status"] in MEASURED]
    lat = [r["latency_ms"] for r in ok]
    failed = len(rows) - len(ok)
    runs = f"{len(raws)} runs x " if len(raws) > 1 else ""
    per_run = ""
    if len(raws) > 1:
        p50s = [_pct([r["latency_ms"] for r in ok if r["run"] == i], 50) for i in range(len(raws))]
        per_run = "per run: " + " / ".join(f"{x:.0f}" for x in p50s)
    gaps = np.diff([[r["t_press_s"] for r in rows if r["run"] == i] for i in range(len(raws))], axis=1)
    gaps = gaps.ravel() * 1000
    n_note = f"n={len(lat)}: " + ("between the 2 slowest" if len(lat) <= 100 else "~ the 1% slowest")
    out = [
        (f"{app}: key to image p50", _pct(lat, 50), "ms", "", f"{runs}{args.keys} keys at {args.rate:g}/s"),
        (f"{app}: key to image p90", _pct(lat, 90), "ms", "", per_run and per_run.replace("per run", "p50s")),
        (f"{app}: key to image p99", _pct(lat, 99), "ms", f"< {TARGET_P99_MS:g} ms", n_note),
        (f"{app}: key to image max", max(lat) if lat else float("nan"), "ms", "", ""),
        (f"{app}: keys measured (n)", len(ok), "", "", ""),
        (f"{app}: failures", failed, "", "0", _failure_note(rows, args.bound_ms) if failed else ""),
    ]
    if len(gaps):
        note = f"min {gaps.min():.0f}, max {gaps.max():.0f} ms"
        if gaps.min() < 500 / args.rate:
            note += " (presses bunch up while the page is busy)"
        out.append((f"{app}: interval between keydowns p50", _pct(gaps, 50), "ms", "", note))
    shares = [x for x in map(training_share, raws) if x is not None]
    if shares:
        per_run = " / ".join(f"{share:.0%}" for share, _ in shares)
        rate = np.mean([r for _, r in shares])
        note = f"per run {per_run}; {rate:.1f} rounds/s"
        out.append(
            (f"{app}: trainer in a training round", 100 * np.mean([x for x, _ in shares]), "%", "", note)
        )
    for part in [*PARTS, *SPLIT, *FINER, "handler_ms"]:
        values = [r[part] for r in ok if r.get(part) not in (None, "")]
        if values:
            out.append(
                (f"{app}:   {part[:-3]} p50", _pct(values, 50), "ms", "", f"p90 {_pct(values, 90):.1f} ms")
            )
    superseded = sum(r["status"] == "superseded" for r in rows)
    if superseded:
        out.append((f"{app}: superseded", superseded, "", "", "image replaced by the next before a frame"))
    slow = [r for r in ok if r["latency_ms"] > TARGET_P99_MS]
    page_busy = sum(1 for r in slow if r.get("page_longtask_ms"))
    note = f"{page_busy} with a long task (>= 50 ms) in the page"
    if args.kernel_log:
        periodic = sum(1 for r in slow if any(p in r.get("concurrent", "") for p in PERIODIC))
        note = f"{periodic} overlap an evaluation, query or plot render; {note}"
    out.append((f"{app}: keys over {TARGET_P99_MS:g} ms", len(slow), "", "", note))
    lb, la = raws[0]["load_before"], raws[-1]["load_after"]
    out.append(
        (f"{app}: load average (1 min), before", lb[0], "", "", "5/15 min: {:.2f} {:.2f}".format(*lb[1:]))
    )
    out.append(
        (f"{app}: load average (1 min), after", la[0], "", "", "5/15 min: {:.2f} {:.2f}".format(*la[1:]))
    )
    return out


def _failure_note(rows: list[dict], bound_ms: float) -> str:
    """What the failed keys were: the wrong image on top first, or no image within the bound."""
    bad = [r["status"] for r in rows if r["status"] not in MEASURED]
    wrong = sum(status.startswith("wrong image first") for status in bad)
    notes = [f"{wrong} the wrong image first (then the right one)" if wrong else ""]
    notes.append(f"{len(bad) - wrong} no image within {bound_ms:g} ms" if len(bad) > wrong else "")
    return "; ".join(filter(None, notes))


def print_failures(app: str, rows: list[dict]) -> None:
    bad = [r for r in rows if r["status"] not in MEASURED]
    if bad:
        print(f"\n{app}: {len(bad)} key(s) failed:")
        for r in bad:
            print(f"  key #{r['i']} {r['key']!r} at {r['t_press_s']} s on {r.get('shown')!r}: {r['status']}")


def print_slowest(app: str, rows: list[dict], n: int = 8) -> None:
    ok = sorted((r for r in rows if r["status"] in MEASURED), key=lambda r: -r["latency_ms"])[:n]
    if not ok:
        return
    print(
        f"\n{app}: the {len(ok)} slowest keys (ms): total = to_kernel + to_send + to_dom "
        "(iopub_wait, wire, js) + decode + paint   [kernel work at the same time]"
    )
    for r in ok:
        parts = " + ".join(f"{r.get(p, '-')}" for p in PARTS[:3])
        split = ", ".join(f"{r.get(p, '-')}" for p in SPLIT)
        rest = " + ".join(f"{r.get(p, '-')}" for p in PARTS[3:])
        busy = r.get("concurrent", "")
        print(f"  #{r['i']:>2} {r['latency_ms']:>7.1f} = {parts} ({split}) + {rest}   [{busy}]")


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=60, help="measured key presses (default 60)")
    parser.add_argument("--rate", type=float, default=4.0, help="key presses per second (default 4)")
    parser.add_argument("--apps", default="lab", help="comma-separated: lab, notebook (default lab)")
    parser.add_argument(
        "--runs", type=int, default=1, help="fresh server + notebook per run, keys pooled (default 1)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "key_to_image.csv", help="per-key CSV")
    parser.add_argument("--images", type=Path, default=ROOT / "images", help="image folder (copied)")
    parser.add_argument("--generate", type=int, default=0, metavar="N", help="instead: N digits per class")
    parser.add_argument("--seed", type=int, default=0, help="seed of --generate")
    parser.add_argument(
        "--settings",
        type=json.loads,
        default=DEFAULT_SETTINGS,
        help=f"Annotator settings as JSON (default {json.dumps(DEFAULT_SETTINGS)}; '{{}}': the defaults)",
    )
    parser.add_argument("--warmup", type=int, default=10, help="labels before measuring (default 10)")
    parser.add_argument(
        "--warmup-max", type=int, default=60, help="labels at most before the first evaluation (default 60)"
    )
    parser.add_argument(
        "--no-wait-metrics", dest="wait_metrics", action="store_false", help="start without an evaluation"
    )
    parser.add_argument("--pause-training", action="store_true", help="press p first: no training")
    parser.add_argument(
        "--duplicate-pages",
        action="store_true",
        help="keep the near-duplicates' grid page after a label (off by default: it leaves the single view)",
    )
    parser.add_argument("--bound-ms", type=float, default=2000, help="a key with no image by then fails")
    parser.add_argument("--startup-s", type=float, default=240, help="limit for TensorFlow + the model")
    parser.add_argument(
        "--no-kernel-log", dest="kernel_log", action="store_false", help="page only (match keys by order)"
    )
    parser.add_argument("--gil-probe", action="store_true", help="a kernel thread measuring GIL waits")
    parser.add_argument(
        "--trace", action="store_true", help="Chromium's performance trace of the page during the keys"
    )
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy binary: profile the kernel during the keys")
    parser.add_argument("--py-spy-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--py-spy-gil", action="store_true", help="py-spy: only samples holding the GIL")
    parser.add_argument(
        "--what-if",
        default="",
        metavar="NAMES",
        help=f"comma-separated named experiments, run in the kernel: {', '.join(WHAT_IF)}",
    )
    parser.add_argument(
        "--kernel-setup",
        default="",
        metavar="CODE",
        help="what-if experiments: Python run in the kernel before Annotator(...), e.g. "
        "\"import os; os.environ['TF_NUM_INTRAOP_THREADS'] = '1'\" or "
        "'import sys; sys.setswitchinterval(0.001)'",
    )
    parser.add_argument(
        "--kernel-after",
        default="",
        metavar="CODE",
        help="Python run in the kernel right after Annotator(...) (the name `annotator` is the panel)",
    )
    parser.add_argument(
        "--code",
        default="",
        metavar="NAME=DIR,...",
        help="A/B: each run measures the oal_widget of each DIR (e.g. a `git archive` snapshot), one after "
        "the other on the same front end, the order reversed every other run; rows are named 'app NAME'",
    )
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts", help="screenshots, logs")
    parser.add_argument(
        "--rematch",
        type=Path,
        metavar="DIR",
        help="measure nothing: match and report again the raw logs a run left in DIR (its --artifacts)",
    )
    args = parser.parse_args(argv)
    codes = []
    for item in filter(None, args.code.split(",")):
        name, _, folder = item.partition("=")
        if not name or not (Path(folder) / "oal_widget" / "__init__.py").is_file():
            parser.error(f"--code {item}: expected NAME=DIR with DIR/oal_widget/__init__.py")
        codes.append((name, str(Path(folder).resolve())))
    args.code = codes
    args.apps = [a for a in args.apps.split(",") if a]
    args.what_if = [w for w in args.what_if.split(",") if w]
    for name in args.what_if:
        if name not in WHAT_IF:
            parser.error(f"--what-if {name}: expected one of {', '.join(WHAT_IF)}")
        setup, after = WHAT_IF[name]
        args.kernel_setup = "\n".join(filter(None, (args.kernel_setup, setup)))
        args.kernel_after = "\n".join(filter(None, (args.kernel_after, after)))
    if not args.duplicate_pages:
        args.kernel_after = "\n".join(filter(None, (NO_DUPLICATE_PAGES, args.kernel_after)))
    unknown = set(args.apps) - set(e2e.MODULES)
    if unknown or not args.apps:
        parser.error(f"--apps: expected lab and/or notebook, got {','.join(args.apps)}")
    if args.keys < 1 or args.rate <= 0:
        parser.error("--keys must be >= 1 and --rate > 0")
    return args


def code_version(package: str) -> str:
    """The commit of the package measured, and whether its files differ from it."""
    try:
        where = Path(package).resolve().parent
        if (where / "COMMIT").is_file():  # a `git archive` snapshot (see the module docstring)
            return f"snapshot of {(where / 'COMMIT').read_text().strip()}"
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--", "oal_widget"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "not a git checkout"
    except OSError:
        return "unknown"


def _sigterm(_signum, _frame):
    raise KeyboardInterrupt("SIGTERM")  # so that every finally stops the server and the browser


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    if not os.path.exists(e2e.CHROMIUM):
        raise SystemExit(f"no Chromium at {e2e.CHROMIUM}: apt-get install chromium, or set E2E_CHROMIUM")
    from playwright.sync_api import sync_playwright

    args.artifacts.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("oal_widget")  # what the kernel imports too (same PYTHONPATH)
    codes = args.code or [(None, None)]
    raws: dict[str, list[dict]] = {
        f"{app} {name}" if name else app: [] for app in args.apps for name, _ in codes
    }
    if args.rematch:
        raws = rematch_raws(args.rematch)
    else:
        measure(args, codes, raws, sync_playwright)
    report_all(args, raws, spec)
    return 0


def rematch_raws(folder: Path) -> dict[str, list[dict]]:
    """The raw logs a measurement left in ``folder`` (``--artifacts``), by row label, runs in order."""
    raws: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("key_to_image-*-run*-raw.json")):
        slug = path.name[len("key_to_image-") :].rsplit("-run", 1)[0]
        raws.setdefault(slug.replace("-", " ", 1), []).append(json.loads(path.read_text()))
    if not raws:
        raise SystemExit(f"--rematch {folder}: no key_to_image-*-run*-raw.json there")
    return raws


def measure(args, codes, raws: dict[str, list[dict]], sync_playwright) -> None:
    with tempfile.TemporaryDirectory(prefix="oal-k2i-") as tmp, sync_playwright() as playwright:
        for run in range(args.runs):
            for app in args.apps:  # interleaved: a change in the box's load hits both front ends alike
                for name, folder in codes if run % 2 == 0 else codes[::-1]:  # and both codes (A/B)
                    label = f"{app} {name}" if name else app
                    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                    print(
                        f"{label} run {run + 1}/{args.runs}: starting (load average {load}) ...", flush=True
                    )
                    raw = run_app(app, args, Path(tmp) / f"run{run}-{name or ''}", playwright, folder)
                    raw["run"] = run
                    raws[label].append(raw)
                    print(
                        f"{label} run {run + 1}: measured after {raw['t_ready_s']} s and "
                        f"{raw['warmup_labels']} warm-up labels; status before {raw['status_before']!r}, "
                        f"after {raw['status_after']!r}",
                        flush=True,
                    )
                    # Everything recorded, for a closer look (and to re-run the matching offline).
                    slug = label.replace(" ", "-")
                    (args.artifacts / f"key_to_image-{slug}-run{run}-raw.json").write_text(json.dumps(raw))


def report_all(args, raws: dict[str, list[dict]], spec) -> None:
    rows_by_app = {}
    for app, runs in raws.items():
        rows_by_app[app] = []
        for raw in runs:
            for row in match(raw, args.bound_ms):
                row["app"], row["run"] = app, raw["run"]
                row["load_1min"] = round(raw["load_before"][0], 2)
                rows_by_app[app].append(row)
    write_per_key(rows_by_app, args.out)
    table = []
    for app, rows in rows_by_app.items():
        table += summary_rows(app, raws[app], rows, args)
        measured = [r for r in rows if r["status"] in MEASURED]
        by_page = sum(r.get("how") == "page" for r in measured)
        switched = sum(r.get("how") == "switch" for r in measured)
        table.append((f"{app}: keys shown by the page's own switch", by_page, "", "", "before the kernel"))
        table.append((f"{app}: keys shown by a slot switch", switched, "", "", "the rest: the PNG sent"))
        print_slowest(app, rows)
        print_failures(app, rows)
        for raw in raws[app]:
            installed = (raw.get("kernel") or {}).get("installed", [])
            if any("not installed" in item for item in installed):
                print(f"{app} run {raw['run'] + 1}: kernel log partly missing: {installed}")
    first = next(iter(raws.values()))[0]
    here = str(Path(spec.origin).parent) if spec and spec.origin else "?"
    measured = {}
    for label, runs in raws.items():
        package = (runs[0].get("kernel") or {}).get("package", here)
        measured[label] = f"{package} ({code_version(package)})"
    code = (
        measured[next(iter(raws))]
        if len(set(measured.values())) == 1
        else "; ".join(f"{label}: {where}" for label, where in measured.items())
    )
    settings = json.dumps(args.settings)
    what = "paused (p)" if args.pause_training else "training"
    if args.what_if:
        what += f"; what-if: {', '.join(args.what_if)}"
    elif args.kernel_setup or args.kernel_after not in ("", NO_DUPLICATE_PAGES):
        what += "; with --kernel-setup/--kernel-after code"
    if not args.duplicate_pages:
        what += "; no near-duplicates page"
    images = f"{args.generate} generated digits per class" if args.generate else str(args.images)
    print(f"oal_widget measured: {code}")
    report(
        f"key to image in the browser ({', '.join(args.apps)}): {args.keys} keys at {args.rate:g}/s while "
        f"{what}; default model, settings {settings}; images {images} ({first['n_images']}); "
        f"oal_widget {code}; load average {' '.join(f'{x:.2f}' for x in first['load_before'])}",
        table,
        args.out.with_name(args.out.stem + "_summary.csv"),
        extra={"settings": settings, "training": what, "code": code},
    )
    print(f"written {args.out}")


if __name__ == "__main__":
    sys.exit(main())
