"""One panel per workdir: running the cell again stops the previous panel's trainer (it saves) before
the new one starts, in a thread, so the cell still returns at once."""

from __future__ import annotations

import logging
import threading
import weakref

log = logging.getLogger(__name__)

_PANELS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def take_over(panel) -> None:
    """Start ``panel``'s session once the previous panel on the same workdir has stopped."""
    key = str(panel.session.workdir.resolve())
    with _LOCK:
        previous = _PANELS.get(key)
        _PANELS[key] = panel
    if previous is None or previous is panel or previous.session.stopped:
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
            panel.post(lambda e=e: panel._show_error(e))
        panel.post(panel._refresh_locked)

    threading.Thread(target=replace, name="oal-replace", daemon=True).start()
