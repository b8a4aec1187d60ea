"""One panel per workdir: running the cell again retires the previous panel's session (its claims and
its store connection are released at once, BEFORE the new session builds its order), then stops its
trainer (it saves) before the new one starts, in a thread, so the cell still returns at once."""

from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path

from ..workdir import default_workdir

log = logging.getLogger(__name__)

_PANELS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def workdir_key(images, workdir=None) -> str:
    """The key of a panel's workdir, computed before its session exists (as the session computes it)."""
    folder = Path(workdir) if workdir is not None else default_workdir(Path(images).expanduser().resolve())
    return str(folder.expanduser().resolve())


def retire_previous(key: str) -> str | None:
    """The cell ran again: the previous panel on this workdir takes no more keys and lets go of its claims
    and connection now (its trainer is stopped by ``take_over``, which may take a while). Returns the
    image it was on (the new panel shows it first)."""
    with _LOCK:
        previous = _PANELS.get(key)
    if previous is None or previous.session.closed:
        return None
    try:
        return previous.session.retire()
    except Exception:
        log.exception("retiring the previous panel on %s failed", key)
        return None


def abandon(key: str, error: BaseException) -> None:
    """The cell ran again but its new panel could not be made (``error``): the retired older panel's
    trainer still stops (it saves), and its end screen says why it took no more keys."""
    with _LOCK:
        previous = _PANELS.get(key)
    if previous is None or previous.session.trainer_stopped:
        return

    def stop():
        try:
            previous.session.stop()
            previous.post(
                lambda: previous.show_done(f"a newer panel on this folder could not start: {error}")
            )
        except Exception:
            log.exception("stopping the retired panel on %s failed", key)

    threading.Thread(target=stop, name="oal-abandon", daemon=True).start()


def take_over(panel) -> None:
    """Start ``panel``'s session once the previous panel on the same workdir has stopped."""
    key = str(panel.session.workdir.resolve())
    with _LOCK:
        previous = _PANELS.get(key)
        _PANELS[key] = panel
    if previous is None or previous is panel or previous.session.trainer_stopped:
        panel.session.start()
        return

    def replace():
        try:
            previous.session.stop()
            previous.post(lambda: previous.show_done("a newer panel on the same folder took over"))
        except Exception:
            log.exception("stopping the previous panel on %s failed", key)
        try:
            panel.session.start()
        except Exception as e:
            panel.post(lambda e=e: panel.show_error(e))
        panel.post(panel.redraw)

    threading.Thread(target=replace, name="oal-replace", daemon=True).start()
