"""The one thread, besides the kernel's main thread, that changes the panel's widgets.

Trainer updates, plot renderings, the results of slow work (stop, final fit, insight) are posted here as
jobs. A job takes the panel's lock for the moments it touches the session or widgets, the key handler
(kernel main thread) takes the same lock, so the two never interleave, and slow pure work (rendering a
PNG with matplotlib) runs without the lock. Jobs with a ``key`` are coalesced (a burst of trainer
updates costs one job) and may be delayed: ``after`` seconds of quiet (each new post with the same key
waits again: a debounce, so rendering keeps out of a burst of keys) but never more than ``latest``
seconds after the first post. An exception in a job goes to ``on_error``; the thread goes on.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

#: At interpreter exit a daemon thread still inside a C++ extension (matplotlib's Agg renderer) is torn
#: down mid-call, and the C++ runtime aborts the process ("terminate called without an active
#: exception"): every UI thread is stopped and joined first, briefly.
_LIVE: weakref.WeakSet = weakref.WeakSet()
EXIT_JOIN_S = 5.0


@atexit.register
def _stop_all() -> None:
    for ui in list(_LIVE):
        ui.close(join=EXIT_JOIN_S)


class UiThread:
    def __init__(self, lock, on_error: Callable[[BaseException], None] | None = None, name="oal-ui"):
        self.lock = lock
        self._on_error = on_error
        self._cond = threading.Condition()
        self._jobs: dict[object, tuple[float, int, Callable]] = {}  # key -> (due, sequence, fn)
        self._first: dict[object, float] = {}  # key -> when its pending job was first posted
        self._seq = itertools.count()
        self._closed = False
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        _LIVE.add(self)

    def post(
        self, fn: Callable[[], object], *, key=None, after: float = 0.0, latest: float | None = None
    ) -> None:
        """Run ``fn`` on the UI thread; a pending job with the same ``key`` is replaced by this one."""
        with self._cond:
            if self._closed:
                return
            seq = next(self._seq)
            now = time.monotonic()
            key = ("job", seq) if key is None else key
            first = self._first.setdefault(key, now)
            due = now + after if latest is None else min(now + after, first + latest)
            self._jobs[key] = (due, seq, fn)
            self._idle.clear()
            self._cond.notify()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every posted job (due by now) has run; for tests and shutdown."""
        return self._idle.wait(timeout)

    def close(self, join: float = 0.0) -> None:
        """No more jobs; with ``join``, wait that long for the one running to end."""
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._first.clear()
            self._cond.notify()
        if join and self._thread is not threading.current_thread():
            self._thread.join(join)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._jobs:
                        key, (due, _, fn) = min(self._jobs.items(), key=lambda item: item[1][:2])
                        wait = due - time.monotonic()
                        if wait <= 0:
                            del self._jobs[key]
                            self._first.pop(key, None)
                            break
                        self._cond.wait(wait)
                    else:
                        self._idle.set()
                        self._cond.wait()
                if self._closed:
                    self._idle.set()
                    return
            try:
                fn()
            except Exception as e:
                log.exception("panel job failed")
                if self._on_error is not None:
                    try:
                        self._on_error(e)
                    except Exception:
                        log.exception("showing a panel error failed")
