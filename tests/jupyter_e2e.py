"""A real Jupyter server (JupyterLab 4 or Notebook 7) and Debian's Chromium, for end-to-end runs.

Shared by the browser test (``tests/test_browser.py``) and the benches that drive a real browser
(``bench/key_to_image.py``). Not a test module: pytest collects ``test_*.py`` only.

- ``make_workspace``: a root folder with a notebook in ``notebooks/`` and a copy of the images in
  ``images/`` (never their ``.oal``), so that the notebook's ``../images`` holds;
- ``jupyter_server``: the server on 127.0.0.1, a port the OS picks, a fixed token, fresh
  config/data/runtime/IPython/matplotlib dirs (nothing from ``~/.jupyter``), no news or update
  checks, ``window.jupyterapp`` exposed; shut down gracefully, then SIGTERM, then SIGKILL;
- ``launch_chromium``: Debian's Chromium through Playwright (``playwright install`` is never used:
  its CDN is unreachable here);
- page helpers that work the same in Lab 4 and Notebook 7.

Env: E2E_CHROMIUM (default /usr/bin/chromium).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Where the browser tests leave screenshots and server logs; the front ends they run in.
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", REPO / "artifacts"))
APPS = [a for a in os.environ.get("E2E_APPS", "lab,notebook").split(",") if a]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
]
TOKEN = "oal-e2e-token"
TIMEOUT_MS = 60_000  # a loaded 2-core box: Lab's first load alone can take 20 s
#: The Python module and the application class of each front end.
MODULES = {"lab": "jupyterlab", "notebook": "notebook"}
APP_CLASSES = {"lab": "LabApp", "notebook": "JupyterNotebookApp"}
#: Where each front end opens a notebook, relative to the server's URL.
NOTEBOOK_PAGES = {"lab": "lab/tree", "notebook": "notebooks"}


# --------------------------------------------------------------------------------------------------
# workspace + server
# --------------------------------------------------------------------------------------------------
def make_workspace(root: Path, notebook: Path = NOTEBOOK, images: Path | None = None) -> Path:
    """<root>/notebooks/<notebook> + <root>/images/ (no .oal): the notebook's ../images holds."""
    images = REPO / "images" if images is None else Path(images)
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(notebook, root / "notebooks" / Path(notebook).name)
    shutil.copytree(images, root / "images", ignore=shutil.ignore_patterns(".oal"))
    return root


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _server_info(runtime_dir: Path, proc: subprocess.Popen, log_path: Path, deadline: float) -> dict:
    """Jupyter Server writes jpserver-<pid>.json (url, token) once it listens on its port-0 port."""
    info_file = runtime_dir / f"jpserver-{proc.pid}.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter server exited early (rc={proc.returncode}):\n{log_path.read_text()}")
        if info_file.exists():
            try:
                info = json.loads(info_file.read_text())
                url = info["url"].rstrip("/")
                with urllib.request.urlopen(f"{url}/api/status?token={info['token']}", timeout=2):
                    return info
            except (OSError, ValueError, KeyError):
                pass
        time.sleep(0.2)
    raise TimeoutError(f"jupyter server did not come up; log:\n{log_path.read_text()}")


def server_config(tmp: Path) -> dict[str, str]:
    """Fresh config/data/runtime dirs under ``tmp`` (the env for the server and its kernels)."""
    cfg = tmp / "jupyter_config"
    settings = cfg / "lab" / "user-settings" / "@jupyterlab"
    # No "receive official Jupyter news?" toast covering the page; no update check.
    _write_json(
        settings / "apputils-extension" / "notification.jupyterlab-settings",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    # Every cell stays in the DOM, so the browser test's cell counts see them all.
    _write_json(settings / "notebook-extension" / "tracker.jupyterlab-settings", {"windowingMode": "none"})
    env = dict(os.environ)
    # ipykernel does not forward the C level stderr (fd 2) under pytest; the kernel must do as it does
    # for a person, so that a test sees what TensorFlow would print under the panel.
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(
        JUPYTER_PLATFORM_DIRS="1",
        JUPYTER_CONFIG_DIR=str(cfg),  # isolated from ~/.jupyter
        JUPYTER_DATA_DIR=str(tmp / "jupyter_data"),  # so the venv's python3 kernelspec is the one found
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        IPYTHONDIR=str(tmp / "ipython"),
        MPLBACKEND="Agg",
        MPLCONFIGDIR=str(tmp / "mpl"),
        TF_CPP_MIN_LOG_LEVEL="2",
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        # The kernel imports this checkout's oal_widget, whatever the virtualenv's install points at.
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    return env


def server_command(app: str, root: Path) -> list[str]:
    appcls = APP_CLASSES[app]
    return [
        sys.executable,
        "-m",
        MODULES[app],
        "--no-browser",
        "--allow-root",  # CI containers run as root
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",  # the OS picks a free port; read back from jpserver-<pid>.json
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        # Lab-only traits go to LabApp: an unknown trait on JupyterNotebookApp makes notebook_shim drop
        # all of its config.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        f"--{appcls}.expose_app_in_browser=True",  # window.jupyterapp: kernel status and the cell model
    ]


#: What installing the package adds to every Jupyter server's config (its server extension).
INSTALLED_CONFIG = REPO / "jupyter-config" / "jupyter_server_config.d" / "oal_widget.json"


def installed_config(env: dict[str, str]) -> dict:
    """The server config that installing the oal_widget this server imports (the first on its
    PYTHONPATH) would add: its server extension, if it has one (an A/B may serve an older snapshot)."""
    for folder in filter(None, env.get("PYTHONPATH", "").split(os.pathsep)):
        package = Path(folder) / "oal_widget"
        if (package / "__init__.py").is_file():
            has_extension = (package / "server_extension.py").is_file() and INSTALLED_CONFIG.is_file()
            return json.loads(INSTALLED_CONFIG.read_text()) if has_extension else {}
    return {}


def _merge(a: dict, b: dict) -> dict:
    """``b`` over ``a``, dicts merged key by key (two sources of ``ServerApp.jpserver_extensions``)."""
    out = dict(a)
    for key, value in b.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


@contextlib.contextmanager
def jupyter_server(
    app: str,
    tmp: Path,
    root: Path,
    log_path: Path | None = None,
    startup_s: float = 90,
    env: dict[str, str] | None = None,
    config: dict | None = None,
):
    """Run a Jupyter server ("lab": JupyterLab 4, "notebook": Notebook 7) serving ``root``.

    ``env`` adds variables (the server's and its kernels'); ``config`` (e.g. a bench's server extension)
    is written as the fresh config dir's ``jupyter_server_config.json``, over what installing the
    package adds (``installed_config``: oal_widget's own server extension).
    Yields a dict: app, url, token, root, log_path, pid, t_launch (monotonic) and t_server_ready
    (seconds from launch until the server answered). ``page_url(server, rel)`` opens a notebook.
    The server is shut down on leaving, also on an error.
    """
    env = {**server_config(tmp), **(env or {})}
    config = _merge(installed_config(env), config or {})
    if config:
        _write_json(Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json", config)
    runtime = Path(env["JUPYTER_RUNTIME_DIR"])
    log_path = log_path or tmp / f"server-{app}.log"
    t_launch = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            server_command(app, root), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root
        )
        info = None
        try:
            info = _server_info(runtime, proc, log_path, time.monotonic() + startup_s)
            log.flush()
            if "error linking extension" in log_path.read_text():
                raise RuntimeError(f"a server extension failed to link:\n{log_path.read_text()}")
            yield {
                "app": app,
                "url": info["url"].rstrip("/"),
                "token": info["token"],
                "root": root,
                "log_path": log_path,
                "pid": proc.pid,
                "t_launch": t_launch,
                "t_server_ready": time.monotonic() - t_launch,
            }
        finally:
            shutdown(proc, info)


@contextlib.contextmanager
def served(app: str, tmp: Path, name: str = "", notebook: Path = NOTEBOOK, images: Path | None = None):
    """``jupyter_server`` on a fresh workspace (``make_workspace``) holding ``notebook`` and ``images``;
    yields (server, root, the page that opens the notebook). Its log is copied to
    ``ARTIFACTS/server-<name><app>.log`` on leaving, also on a failure."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    root = make_workspace(tmp / "root", notebook=notebook, images=images)
    log_path = tmp / f"server-{name}{app}.log"
    try:
        with jupyter_server(app, tmp, root, log_path) as server:
            yield server, root, page_url(server, f"notebooks/{Path(notebook).name}")
    finally:
        if log_path.exists():
            shutil.copy(log_path, ARTIFACTS / log_path.name)


def page_url(server: dict, notebook: str) -> str:
    """The page that opens ``notebook`` (a path relative to the server's root) in its front end."""
    return f"{server['url']}/{NOTEBOOK_PAGES[server['app']]}/{notebook}?token={server['token']}"


def shutdown(proc: subprocess.Popen, info: dict | None) -> None:
    """Graceful first (the server shuts its kernels down too), then SIGTERM, then SIGKILL."""
    try:
        req = urllib.request.Request(
            f"{info['url'].rstrip('/')}/api/shutdown",
            method="POST",
            headers={"Authorization": f"token {TOKEN}"},
        )
        urllib.request.urlopen(req, timeout=5).close()
    except Exception:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def launch_chromium(playwright):
    """Debian's Chromium, headless, through a started ``sync_playwright()``; the caller closes it."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def wait_until(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns a truthy value; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (sqlite3.OperationalError, FileNotFoundError) as e:  # the kernel may hold a write lock
            last = e
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {last!r}")


# --------------------------------------------------------------------------------------------------
# page helpers (the same in Lab 4 and Notebook 7)
# --------------------------------------------------------------------------------------------------
def wait_kernel_idle(page, timeout=TIMEOUT_MS) -> None:
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return k && k.status === 'idle' && k.connectionStatus === 'connected';
        }""",
        timeout=timeout,
    )


def open_page(ctx, timeout_ms: int = TIMEOUT_MS):
    """A new page of the browser context ``ctx`` with ``timeout_ms`` as its default timeout, and the list
    its console messages and page errors are appended to (for a failure's artifacts)."""
    page = ctx.new_page()
    page.set_default_timeout(timeout_ms)
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    return page, console


def open_notebook(page, url: str) -> None:
    """Go to a notebook's page and wait until its cells show and its kernel is idle."""
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="visible")
    wait_kernel_idle(page)


def run_all_cells(page) -> None:
    """Run > Run All Cells through the real menu (the same in Lab 4 and Notebook 7)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def notebook_state(page) -> dict:
    """The notebook as the front end holds it: mode and (type, source) of every cell, plus DOM counts."""
    return page.evaluate(
        """() => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            const cells = [];
            for (let i = 0; i < nb.model.cells.length; i++) {
                const c = nb.model.cells.get(i);
                cells.push([c.type, c.sharedModel.getSource()]);
            }
            return {
                mode: nb.mode,
                cells: cells,
                dom_cells: document.querySelectorAll('.jp-Notebook .jp-Cell').length,
                dom_markdown: document.querySelectorAll('.jp-Notebook .jp-MarkdownCell').length,
            };
        }"""
    )


def wait_src_changed(page, selector: str, old: str | None, timeout=TIMEOUT_MS) -> str:
    """Wait until the <img> shows a new image that has loaded; returns a token of the image shown, to
    pass as ``old`` next time: its src and how many times an element became the single view's image
    (``oal-image``). The single view switches among slot elements (ui/image_slots.py), and a slot shown
    again (back, undo) keeps its src, so the src alone could repeat. ``old`` may also be a plain src."""
    handle = page.wait_for_function(
        """([sel, old]) => {
            if (window.__oal_became === undefined) {
                window.__oal_became = 0;
                new MutationObserver((records) => {
                    for (const r of records) {
                        const had = (r.oldValue || '').split(' ').includes('oal-image');
                        if (!had && r.target.classList.contains('oal-image')) window.__oal_became++;
                    }
                }).observe(document.body, {attributes: true, attributeFilter: ['class'],
                                           attributeOldValue: true, subtree: true});
            }
            const i = document.querySelector(sel);
            if (!(i && i.src && i.complete && i.naturalWidth > 0)) return false;
            const src = i.getAttribute('src'), token = `${src}#${window.__oal_became}`;
            return token !== old && src !== old && token;  // old: a token, or a src read elsewhere
        }""",
        arg=[selector, old],
        timeout=timeout,
    )
    return handle.json_value()


def kernel_execute(page, code: str, timeout_ms: int = TIMEOUT_MS) -> None:
    """Run ``code`` in the notebook's kernel straight through its connection (no cell, no output shown).

    Raises RuntimeError with the traceback if the code raised.
    """
    error = page.evaluate(
        """async ([code, timeoutMs]) => {
            const w = window.jupyterapp.shell.currentWidget;
            const kernel = w.sessionContext.session.kernel;
            const future = kernel.requestExecute({code, silent: false, store_history: false});
            let error = null;
            future.onIOPub = (msg) => {
                if (msg.header.msg_type === 'error') {
                    error = msg.content.ename + ': ' + msg.content.evalue + '\\n'
                        + (msg.content.traceback || []).join('\\n');
                }
            };
            const timer = new Promise((_, reject) =>
                setTimeout(() => reject(new Error('kernel_execute timed out')), timeoutMs));
            await Promise.race([future.done, timer]);
            return error;
        }""",
        [code, timeout_ms],
    )
    if error:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", error)  # the traceback's colours
        raise RuntimeError(f"the kernel raised:\n{plain}")


#: Every element inside the panel that is wider inside than its box, or taller where it hides overflow.
OVERFLOWING = """() => {
    const out = [];
    for (const el of document.querySelectorAll('.oal-panel, .oal-panel *')) {
        if (el.closest('.oal-keysink') || el.getClientRects().length === 0) continue;  // not shown
        const style = getComputedStyle(el);
        const wide = el.scrollWidth > el.clientWidth && el.clientWidth > 0;
        const tall = el.scrollHeight > el.clientHeight + 1 && el.clientHeight > 0
            && style.overflowY !== 'visible';
        if (wide || tall) {
            out.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} `
                + `scroll ${el.scrollWidth}x${el.scrollHeight} client ${el.clientWidth}x${el.clientHeight}: `
                + JSON.stringify((el.innerText || el.value || '').slice(0, 60)));
        }
    }
    return out;
}"""


def overflowing(page) -> list[str]:
    """What scrolls or clips inside the panel (``scrollWidth > clientWidth``, or taller than its box
    where overflow is not visible): one line per element, [] when everything fits."""
    return page.evaluate(OVERFLOWING)


def stderr_outputs(page) -> list[str]:
    """The text of every stderr output in the notebook (TensorFlow's start-up lines would be one)."""
    return page.locator("[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()


# --------------------------------------------------------------------------------------------------
# notebooks and the store, for tests that bring their own notebook
# --------------------------------------------------------------------------------------------------
def write_notebook(path: Path, *sources: str) -> Path:
    """A notebook of one code cell per source (a Python 3 kernel), written to ``path``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def store_records(workdir: Path) -> dict:
    """path -> (label, source, split) of every standing label in the panel's SQLite store."""
    from oal_widget.data.store import open_existing

    store = open_existing(workdir)  # never creates a store where the panel made none
    try:
        return {r.path: (r.label, r.source, r.split) for r in store.records()}
    finally:
        store.close()


def tiles_state(page) -> list[dict]:
    """Each tile as the page shows it: path (the caption's title), caption text, classes, image loaded."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.oal-grid .oal-tile')).map(t => {
            const title = t.querySelector('.oal-tile-caption div[title]');
            const img = t.querySelector('img');
            return {path: title ? title.getAttribute('title') : null, text: t.innerText.trim(),
                    classes: t.className, loaded: !!img && img.complete && img.naturalWidth > 1};
        })"""
    )
