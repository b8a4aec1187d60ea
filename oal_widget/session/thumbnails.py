"""PNG bytes of the images the panel shows, decoded ahead of time in a background thread.

Showing the next image must cost no decoding on the key path: ``prefetch`` decodes the next few in a
worker, and ``png`` returns the cached bytes (decoding now only on a miss). A small LRU keeps the
current image, a few behind (for ``back``) and a few ahead, per size (the grid asks for thumbnails).
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading

from ..data.pool import ImageError, display_png

#: PNGs kept in memory.
CACHE_SIZE = 64
#: Longest side in pixels of the image shown in the single view.
DISPLAY_SIDE = 384


class Thumbnails:
    def __init__(self, root, on_unreadable=None):
        self.root = root
        self._on_unreadable = on_unreadable  # path, reason -> None: the session sets the file aside
        self._cache: collections.OrderedDict[tuple[str, int], concurrent.futures.Future] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="oal-prefetch")

    def png(self, path: str, side: int = DISPLAY_SIDE) -> bytes:
        """PNG bytes of ``path`` at most ``side`` pixels long; ``ImageError`` when it cannot be decoded."""
        key = (path, side)
        with self._lock:
            future = self._cache.get(key)
            if future is not None:
                self._cache.move_to_end(key)
        if future is None:
            future = concurrent.futures.Future()
            try:
                future.set_result(display_png(self.root, path, side))
            except ImageError as e:
                future.set_exception(e)
            self._remember(key, future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            with self._lock:
                self._cache.pop(key, None)
            return self.png(path, side)
        except ImageError as e:
            if self._on_unreadable is not None:
                self._on_unreadable(path, e.reason)
            raise

    def prefetch(self, paths, side: int = DISPLAY_SIDE) -> None:
        """Decode ``paths`` in the background so showing them costs no decoding."""
        for path in paths:
            key = (path, side)
            with self._lock:
                if key in self._cache:
                    continue
            try:
                future = self._pool.submit(display_png, self.root, path, side)
            except RuntimeError:  # the executor was shut down (session stopped)
                return
            self._remember(key, future)

    def ready(self, path: str, side: int = DISPLAY_SIDE, wait: float = 0.0) -> bytes | None:
        """The PNG of ``path`` once a decode of it started by ``prefetch`` (or ``png``) has succeeded,
        waiting at most ``wait`` seconds for one under way, else None: never decodes and never reports
        a file as unreadable (the key path does that, where the person is told)."""
        with self._lock:
            future = self._cache.get((path, side))
        if future is None:
            return None
        concurrent.futures.wait([future], timeout=wait)
        if not future.done() or future.cancelled() or future.exception() is not None:
            return None
        return future.result()

    def cached(self, path: str, side: int = DISPLAY_SIDE) -> bool:
        with self._lock:
            return (path, side) in self._cache

    def clear(self) -> None:
        """Forget every decoded image (e.g. after a file changed on disk)."""
        with self._lock:
            self._cache.clear()

    def _remember(self, key, future) -> None:
        with self._lock:
            self._cache[key] = future
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
