"""A headless labelling session: the store, the pool, the trainer and the order of images to label.

The panel is a thin view over this class, and the tests drive it without any widget. Every action
(``label``, ``undo``, ``skip``, ``back``, ...) is cheap: nothing in them is O(N) in the pool size and
nothing imports TensorFlow (the trainer imports it in its own thread).

The order of images still to label is a deque with lazy deletion: each queued path carries a
generation number, and an entry whose number is no longer the path's current one (or whose image
got labelled meanwhile) is dropped when it reaches the front. That keeps ``label`` O(1) while a
query's new order (``apply``) is O(n) and always a permutation of the images still unlabelled.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ..config import Config
from ..data import pool as pool_module
from ..data.cache import CACHE_DIR
from ..data.pool import ImageError, ImagePool, Skipped, split_test
from ..data.store import Store, check_label_names
from ..messages import Labelled, Pause, Resume, Retry, Stop, Unlabelled, Update

log = logging.getLogger(__name__)

#: While unlabelled test images remain, every TEST_EVERY-th image shown is one of them, so the
#: test split gets labelled early and evaluations can start.
TEST_EVERY = 2
#: Display PNGs kept in memory (current, a few behind for ``back``, a few prefetched ahead).
PNG_CACHE_SIZE = 32
#: How many images ``back`` can walk back through.
BACK_LIMIT = 1000
#: Longest side in pixels of the image shown in the panel.
DISPLAY_SIDE = 384
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.csv"


class Session:
    """One person labelling one folder: store + pool + trainer + the order of what comes next.

    Args:
        images: the folder of images (searched recursively).
        labels: the class names; ``None`` reads them from the store (a restart). When neither has
            any, ``needs_labels`` is True and ``set_labels`` starts the session.
        config: a ``Config``; or pass its settings as keywords (``eval_every=5``).
        model_fn: ``(num_classes, input_shape) -> compiled keras.Model`` for the trainer.
        trainer_factory: builds the trainer (keywords as ``trainer.Trainer``); default ``Trainer``.
        on_change: called with a kind ("status", "order", "metrics", "stopped") from the trainer's
            thread after each of its updates; the panel redraws there. Must be quick.
        start: start the trainer now (False: call ``start()`` later, e.g. once an older session on
            the same workdir has stopped and saved its model).
        import_labels: a CSV of ``path,label``, an oal_widget JSON export or a folder sorted in
            class sub-folders whose labels are imported before the start (see ``import_labels``).
    """

    def __init__(
        self,
        images,
        labels: Sequence[str] | None = None,
        *,
        config: Config | None = None,
        model_fn: Callable | None = None,
        trainer_factory: Callable | None = None,
        on_change: Callable[[str], None] | None = None,
        start: bool = True,
        import_labels=None,
        **settings,
    ):
        # replace() names an unknown setting and lists the accepted ones (Config(**kw) would not).
        config = (config or Config()).replace(**settings) if settings else (config or Config())
        if model_fn is not None and not callable(model_fn):  # else it fails later, in the trainer's thread
            raise ValueError(
                f"model_fn={model_fn!r} is not callable: pass a function (num_classes, input_shape) -> "
                "compiled keras.Model, or None for the default model"
            )
        if labels is not None:
            labels = _check_labels(labels)  # before the store exists: wrong labels leave no file behind
        self.config = config
        self.pool = ImagePool(images, config.input_shape)  # FileNotFoundError names a missing folder
        self.images: Path = self.pool.root
        if not self.pool.paths:
            raise ValueError(_no_images_message(self.pool))
        self.workdir: Path = Path(config.workdir) if config.workdir is not None else self.images / ".oal"
        self.store = Store(self.workdir, images_root=self.images)
        if config.image_cache:  # decoded images in a memory-mapped file: bounded memory, decoded once
            self.pool.use_disk_cache(self.workdir / CACHE_DIR)
        self.model_fn = model_fn
        self.on_change = on_change
        self._trainer_factory = trainer_factory
        self._lock = threading.RLock()

        self._pool_set = frozenset(self.pool.paths)
        self._clash_rng = random.Random(self.store.session_id)  # differs per session: panels drift apart
        # Read BEFORE the labels: another session's commit in between is then seen by refresh().
        self._data_version = self.store.data_version()
        self._labels: dict[str, str] = dict(self.store.labels())  # mirror of the store, path -> label
        self.label_names: list[str] = []
        self._labels_changed = False  # a resumed model.keras has the old number of classes
        self.needs_labels = True
        self._resolve_labels(labels)
        self._test = self._resolve_test_split()
        self._test_total = sum(1 for p in self._test if p in self._pool_set)

        self._trainer = None
        self._latest = Update(status="waiting", message="the trainer has not started")
        self._predictions: Mapping[str, tuple[str, float]] = {}  # from the last query
        self._work: tuple[str, int, int] | None = None  # the trainer's last long-work progress
        self._final: Update | None = None
        self._paused = False
        self._stopped = False
        self._pending: list = []  # commands held back until buffer_size labels are collected
        self._pending_labels = 0

        self._n_labelled = 0
        self._n_test_labelled = 0
        self._counts: collections.Counter = collections.Counter()
        for path, label in self._labels.items():
            self._count(path, label, +1)

        self._queue: collections.deque[tuple[str, int]] = collections.deque()
        self._gen: dict[str, int] = {}  # path -> generation of its live queue entry
        self._gens = itertools.count()
        self._user_skipped: dict[str, None] = {}  # skipped by the person, in skip order: kept at the end
        self._unreadable: dict[str, str] = {}  # path -> reason, found when decoding for display
        self._back: collections.deque[str] = collections.deque(maxlen=BACK_LIMIT)
        self._forward: list[str] = []  # labelled images stepped back over, to step forward again
        self._current: str | None = None
        self._build_initial_order()
        self._advance()

        self._png_cache: collections.OrderedDict[str, concurrent.futures.Future] = collections.OrderedDict()
        self._png_lock = threading.Lock()
        self._prefetcher = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="oal-prefetch"
        )
        #: What ``import_labels=`` did (an ``exports.ImportResult``), or None.
        self.imported = None
        if import_labels is not None:
            try:
                self.imported = self.import_labels(import_labels)
            except BaseException:
                self._prefetcher.shutdown(wait=False)
                self.store.close()
                raise
        if start and not self.needs_labels:
            self.start()

    # --- labels and test split ------------------------------------------------------------------
    def _resolve_labels(self, labels) -> None:
        stored = list(self.store.label_names())
        if labels is None:
            if stored:
                self.label_names = stored
                self.needs_labels = False
            return
        labels = _check_labels(labels)
        if stored and labels != stored:
            self._check_compatible(stored, labels)
            self._labels_changed = True
        if labels != stored:
            self.store.set_label_names(labels)
        self.label_names = labels
        self.needs_labels = False

    def _check_compatible(self, stored: list[str], labels: list[str]) -> None:
        if labels[: len(stored)] == stored or not self._labels:
            return  # new labels only added at the end, or nothing labelled yet: nothing is lost
        lost = [name for name in stored if name not in labels]
        how = (
            f"would lose the stored label(s) {lost!r}"
            if lost
            else "would change the order of the stored labels (the model's classes)"
        )
        raise ValueError(
            f"labels={labels!r} {how}: the store {self.store.path} already has labels {stored!r} "
            f"on {len(self._labels)} image(s). Pass labels=None (or the stored list, optionally with new "
            "labels added at the END) to continue, or pass a new workdir=... to start over."
        )

    def _resolve_test_split(self) -> frozenset[str]:
        test = set(self.store.test_paths())
        if not test:
            # Images already labelled (e.g. a first run with test_fraction=0) stay training images.
            candidates = [p for p in self.pool.paths if p not in self._labels]
            test = set(split_test(candidates, self.config.test_fraction, self.config.seed))
            if test:
                self.store.add_test_paths(sorted(test))
        return frozenset(test)

    def set_labels(self, labels: Sequence[str], start: bool = True) -> None:
        """Set the class names when the session began without any (``needs_labels``), then start."""
        with self._lock:
            if self._trainer is not None:
                raise RuntimeError(
                    "the labels cannot change while the trainer runs: stop() this session, then start a "
                    "new one with labels=[...] (new labels may only be added at the end)"
                )
            self._resolve_labels(labels)
            for name in self.label_names:
                self._counts.setdefault(name, 0)
        if start:
            self.start()

    # --- the trainer ----------------------------------------------------------------------------
    def start(self) -> None:
        """Create and start the trainer, handing it every label already in the store. Idempotent."""
        with self._lock:
            if self._trainer is not None or self.needs_labels or self._stopped:
                return
            factory = self._trainer_factory
            if factory is None:
                from ..training.trainer import Trainer  # imports no TensorFlow: the thread does, later

                factory = Trainer
            model_path = self.workdir / MODEL_FILE
            resume = model_path if model_path.exists() and not self._labels_changed else None
            trainer = factory(
                pool=self.pool,
                label_names=list(self.label_names),
                config=self.config,
                test_paths=sorted(self._test),
                workdir=self.workdir,
                model_fn=self.model_fn,
                on_update=self._on_update,
                resume_model=resume,
            )
            known = set(self.label_names)
            for path, label in self._labels.items():
                if path in self._pool_set and label in known:
                    trainer.send(Labelled(path, label, self._split(path)))
            if self._paused:
                trainer.send(Pause())
            self._trainer = trainer
            self._latest = Update(status="importing", message="starting the trainer")
        trainer.start()

    @property
    def trainer(self):
        """The trainer (None before ``start``)."""
        return self._trainer

    @property
    def model(self):
        """The trainer's live Keras model, or None while there is none."""
        return getattr(self._trainer, "model", None)

    def _send(self, command, *, flush: bool = False) -> None:
        """Queue a command for the trainer; labels go out in groups of ``config.buffer_size``."""
        self._pending.append(command)
        if isinstance(command, Labelled):
            self._pending_labels += 1
        if flush or self._pending_labels >= self.config.buffer_size:
            self._flush()

    def _flush(self) -> None:
        pending, self._pending, self._pending_labels = self._pending, [], 0
        if self._trainer is None:
            return  # the store holds every label; start() hands them all over
        for command in pending:
            self._trainer.send(command)

    # --- the order ------------------------------------------------------------------------------
    def _build_initial_order(self) -> None:
        # Shuffle and mix ALL paths, then drop the labelled ones: a restart continues the same order
        # from the image that was on screen (mixing only the rest would shift the test images).
        shuffled = list(self.pool.paths)
        random.Random(self.config.seed).shuffle(shuffled)
        test, train = [], []
        for path in shuffled:
            (test if path in self._test else train).append(path)
        self._rebuild([p for p in _mix(test, train) if p not in self._labels])

    def _enqueue(self, path: str, *, front: bool = False) -> None:
        gen = next(self._gens)
        self._gen[path] = gen  # any older entry of this path is now stale
        if front:
            self._queue.appendleft((path, gen))
        else:
            self._queue.append((path, gen))
        if len(self._queue) > 2 * len(self._gen) + 64:
            self._compact()

    def _compact(self) -> None:
        """Drop stale entries; amortised O(1) per operation since it runs when half are stale."""
        self._queue = collections.deque((p, g) for p, g in self._queue if self._gen.get(p) == g)

    def _wanted(self, path: str) -> bool:
        return path not in self._labels and path not in self._unreadable

    def _live(self) -> list[str]:
        """Unlabelled queued paths in order (current excluded)."""
        gen, labels, unreadable = self._gen.get, self._labels, self._unreadable  # hot loop: local names
        return [p for p, g in self._queue if gen(p) == g and p not in labels and p not in unreadable]

    def _set_current(self, path: str | None) -> None:
        if path is not None:
            self._gen.pop(path, None)  # its queue entry (if any) becomes stale
        self._current = path

    def _release_current(self) -> None:
        """The current image leaves the screen: back to the queue's front, or to the forward stack."""
        old = self._current
        if old is None:
            return
        self._current = None
        if old in self._unreadable:
            return
        if old in self._labels:
            self._forward.append(old)
        else:
            self._enqueue(old, front=True)

    def _advance(self) -> None:
        while self._forward:  # after stepping back: step forward through what was already seen
            path = self._forward.pop()
            if path != self._current and path not in self._unreadable:
                self._set_current(path)
                return
        while self._queue:
            path, gen = self._queue.popleft()
            if self._gen.get(path) != gen:
                continue
            del self._gen[path]
            if self._wanted(path):
                self._current = path
                return
        self._current = None

    def order(self) -> list[str]:
        """The images still to label, in the order they will be shown (current first). O(n)."""
        with self._lock:
            head = [self._current] if self._current is not None and self._wanted(self._current) else []
            forward = [p for p in reversed(self._forward) if self._wanted(p) and p != self._current]
            return head + forward + self._live()

    def upcoming(self, n: int = 3) -> list[str]:
        """The next ``n`` images after the current one (cheap: looks at the front only)."""
        with self._lock:
            out: list[str] = []
            for path in reversed(self._forward):
                if len(out) >= n:
                    return out
                if path != self._current and path not in self._unreadable and path not in out:
                    out.append(path)
            while self._queue and self._gen.get(self._queue[0][0]) != self._queue[0][1]:
                self._queue.popleft()  # clean stale entries at the front while we are here
            for path, gen in itertools.islice(self._queue, 4 * n + 64):
                if len(out) >= n:
                    break
                if self._gen.get(path) == gen and self._wanted(path) and path not in out:
                    out.append(path)
            return out

    def apply(self, update: Update) -> str:
        """Take a trainer update: keep it as the latest and re-order by ``update.order`` if given.

        The new order: the unlabelled test images mixed in as at the start, then ``update.order``
        restricted to images still unlabelled now (unknown, test, duplicated and already labelled
        paths dropped), then every other unlabelled image in its previous order, then the images
        the person skipped. Always a permutation of the images still unlabelled; the current image
        stays current. Returns the kind of change: "stopped", "metrics", "order" or "status".
        """
        with self._lock:
            previous = self._latest
            self._latest = update
            if update.status == "stopped":
                self._final = update
            if update.order is not None:
                self._apply_order(update.order)
            if update.predictions:
                # Only query updates carry predictions (copying them into every update would be O(N)):
                # keep the last ones until the next query.
                self._predictions = update.predictions
            if update.work is not None:  # only progress updates carry it: keep the last one
                self._work = update.work
        if update.status == "stopped":
            return "stopped"
        if len(update.metrics) != len(previous.metrics):
            return "metrics"
        return "order" if update.order is not None else "status"

    def _apply_order(self, ranked: Iterable[str]) -> None:
        live = self._live()
        live_set = set(live)
        skipped = [p for p in self._user_skipped if p in live_set]
        self._user_skipped = dict.fromkeys(skipped)
        tail = set(skipped)
        test = [p for p in live if p in self._test and p not in tail]
        front: list[str] = []
        taken: set[str] = set()
        for path in ranked:
            if path in live_set and path not in taken and path not in self._test and path not in tail:
                front.append(path)
                taken.add(path)
        rest = [p for p in live if p not in taken and p not in self._test and p not in tail]
        self._rebuild(_mix(test, front + rest) + skipped)

    def _rebuild(self, paths: list[str]) -> None:
        """The queue becomes exactly ``paths`` (bulk version of ``_enqueue``: this runs per query)."""
        start = next(self._gens)
        gens = range(start, start + len(paths))
        self._gens = itertools.count(start + len(paths))
        self._gen = dict(zip(paths, gens, strict=True))
        self._queue = collections.deque(zip(paths, gens, strict=True))

    def _on_update(self, update: Update) -> None:
        """The trainer's callback (its thread): apply, then tell the panel. Never raises."""
        try:
            kind = self.apply(update)
            if self.on_change is not None:
                self.on_change(kind)
        except Exception:
            log.exception("applying a trainer update failed")

    # --- actions (the panel's key handler calls these) -------------------------------------------
    @property
    def current(self) -> str | None:
        """The image shown now (relative path), or None when there is nothing left to label."""
        return self._current

    def label(self, name: str) -> str | None:
        """Label the current image (committed first), then show the next. Returns the labelled path."""
        with self._lock:
            path = self._current
            if path is None:
                return None
            if name not in self.label_names:
                raise ValueError(f"label {name!r} is not one of the labels {self.label_names!r}")
            previous = self.store.label(path, name)  # the commit comes before anything else
            clash = previous is not None and path not in self._labels  # another session labelled it too
            self._set_label(path, name)
            self._user_skipped.pop(path, None)
            self._send(Labelled(path, name, self._split(path), sent_at=time.monotonic()))
            self._back.append(path)
            self._current = None
            if clash:
                self._diverge()
            self._advance()
            if self._current is None:
                self._flush()  # nothing left to label: do not hold labels back
            return path

    def _diverge(self) -> None:
        """Another panel on this workdir shows the same order (same seed, same ranking), so both
        people label each image. Jump a random block ahead (the skipped block comes right after it):
        the two panels then work on different images, at the cost of one clash per block."""
        live = self._live()
        if len(live) < 4:
            return
        top = max(1, min(len(live) // 2, self.config.query_every))
        m = self._clash_rng.randint(max(1, top // 2), top)
        self._rebuild(live[m : 2 * m] + live[:m] + live[2 * m :])

    def accept_prediction(self) -> bool:
        """Label the current image with the model's prediction; False (no-op) when there is none."""
        with self._lock:
            predicted = self.prediction(self._current) if self._current is not None else None
            if predicted is None:
                return False
            self.label(predicted[0])
            return True

    def undo(self) -> str | None:
        """Undo this session's latest label; that image becomes current again. Returns its path."""
        with self._lock:
            path = self.store.undo()
            if path is None:
                return None
            restored = self._stored_label(path)
            self._set_label(path, restored)
            last = self._pending[-1] if self._pending else None
            if isinstance(last, Labelled) and last.path == path:
                # Not handed over yet: drop it. Any earlier label of this path was sent or is pending.
                self._pending.pop()
                self._pending_labels -= 1
            elif restored is None:
                self._send(Unlabelled(path), flush=True)
            else:
                self._send(Labelled(path, restored, self._split(path)), flush=True)
            if path in self._forward:
                self._forward.remove(path)  # small: bounded by the steps taken back
            if self._current != path:
                self._release_current()
                self._set_current(path)
            self._unreadable.pop(path, None)
            return path

    def _stored_label(self, path: str) -> str | None:
        """The store's label of one image after an undo (it restores the replaced label, if any)."""
        return self.store.get(path)

    def skip(self) -> str | None:
        """Move the current image to the end of the order (kept behind the others across queries)."""
        with self._lock:
            path = self._current
            if path is None:
                return None
            self._back.append(path)
            self._current = None
            if self._wanted(path):
                self._user_skipped.pop(path, None)
                self._user_skipped[path] = None
                self._enqueue(path)
            self._advance()
            return path

    def back(self) -> str | None:
        """Show the previous image again (to relabel it: labelling replaces). Returns it, or None."""
        with self._lock:
            while self._back:
                path = self._back.pop()
                if path == self._current or path in self._unreadable:
                    continue
                self._release_current()
                self._set_current(path)
                return path
            return None

    def skip_unreadable(self, reason: str = "cannot be decoded") -> str | None:
        """Set the current image aside for good (its file cannot be shown) and show the next."""
        with self._lock:
            path = self._current
            if path is None:
                return None
            self._unreadable.setdefault(path, reason)
            self._current = None
            self._advance()
            return path

    def pause(self) -> None:
        """Pause training (labelling goes on; labels keep reaching the trainer)."""
        with self._lock:
            self._paused = True
            self._send(Pause(), flush=True)

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._send(Resume(), flush=True)

    @property
    def paused(self) -> bool:
        return self._paused

    def retry(self, model_fn: Callable | None = None) -> None:
        """Ask the trainer to build the model again (after a model_fn error was fixed).

        ``model_fn``: a corrected function to build it with from now on (the default: the same one
        again, e.g. after freeing memory or changing what it reads). Labels are kept either way.
        """
        with self._lock:
            if model_fn is not None:
                if not callable(model_fn):
                    raise ValueError(
                        f"model_fn={model_fn!r} is not callable: pass a function "
                        "(num_classes, input_shape) -> compiled keras.Model"
                    )
                self.model_fn = model_fn
            self._send(Retry(model_fn=model_fn), flush=True)

    def stop(self, timeout: float = 10.0, reason: str | None = None) -> dict[str, str]:
        """Stop the trainer (bounded), which saves; returns where the model, metrics and labels are.

        ``reason`` is what the end screen and the trainer's last update say (default: stopped by the user).
        """
        with self._lock:
            self._flush()
            trainer = self._trainer
            self._stopped = True
        final = None
        if trainer is not None:
            if reason:
                trainer.send(Stop(reason))  # the first Stop's reason is the one kept
            final = trainer.stop(timeout)  # outside the lock: its callback takes the lock too
        with self._lock:
            if final is not None and (self._final is None or final.status == "stopped"):
                self._final = final
                if self._latest.status != "stopped":
                    self._latest = final
        self._prefetcher.shutdown(wait=False, cancel_futures=True)
        return self.saved()

    def saved(self) -> dict[str, str]:
        """Files written so far: labels (always), model and metrics once the trainer saved them."""
        out = {"labels": str(self.store.path)}
        final = self._final
        if final is not None:
            out.update({k: str(v) for k, v in final.saved.items()})
        return out

    def close(self) -> None:
        """Stop and release the store and the prefetch thread."""
        if not self._stopped:
            self.stop()
        self._prefetcher.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    # --- labels in and out (exports.py) ---------------------------------------------------------
    def import_labels(self, source, *, overwrite: bool = False):
        """Label images from a CSV of ``path,label``, a JSON export or a folder in class sub-folders.

        Images that already have another label keep it unless ``overwrite``; the test split stays the
        workdir's own (an imported test image is a test label). When the session has no label names
        yet, they become the source's labels in sorted order; otherwise a label not among them is a
        ``ValueError``. Imports are written by a separate store session, so Backspace never undoes
        them one by one. Returns an ``exports.ImportResult`` (counts, and paths not found).
        """
        from ..reports import exports

        found, unmatched = exports.read_labels(source, self.images, self.pool.paths)
        result = exports.ImportResult(source=Path(source), unmatched=unmatched)
        with self._lock:
            names = set(found.values())
            if self.needs_labels:
                self.set_labels(sorted(names), start=False)
            unknown = sorted(names - set(self.label_names))
            if unknown:
                raise ValueError(
                    f"{source} has the label(s) {unknown!r}, which are not among the labels "
                    f"{self.label_names!r}: add them at the END of labels=[...], or fix the file"
                )
            current_was_unlabelled = self._current is not None and self._current not in self._labels
            with Store(self.workdir) as writer:
                for path, label in found.items():
                    old = self._labels.get(path)
                    if old == label:
                        result.unchanged += 1
                        continue
                    if old is not None and not overwrite:
                        result.kept.append(path)
                        continue
                    writer.label(path, label)  # committed before the mirror and the trainer hear of it
                    self._set_label(path, label)
                    self._send(Labelled(path, label, self._split(path)))
                    if old is None:
                        result.added += 1
                    else:
                        result.changed += 1
            self._flush()
            if current_was_unlabelled and self._current in self._labels:
                self._current = None
                self._advance()
            result.label_names = list(self.label_names)
        return result

    def export(self, out, format: str | None = None, *, split: str = "all"):
        """Write the labels as ``csv``, ``json`` or class ``folders`` (guessed from ``out``'s suffix).

        Returns an ``exports.ExportResult``; see ``exports.export_folders`` for the folder layout.
        """
        from ..reports import exports

        return exports.export(self.store, out, format, images_root=self.images, split=split)

    # --- the final model and what the model gets wrong (issue 7) --------------------------------
    def _trainer_method(self, name: str):
        method = getattr(self._trainer, name, None)
        if method is None:
            raise RuntimeError(
                f"{name} needs the trainer: give the labels first"
                if self.needs_labels
                else f"{name} is not available: the trainer has not started (or does not offer it)"
            )
        return method

    def final_fit(self, epochs: int = 30, out=None, progress=None, cancel=None) -> dict:
        """Train a new model from scratch on every label, evaluate on the test split, save it + a model card.

        Blocking (TensorFlow work): call it from a worker thread, as the panel's button does. See
        ``Trainer.final_fit``; the files are ``<workdir>/final/model.keras`` and ``model_card.json``.
        """
        final_fit = self._trainer_method("final_fit")
        # From the store (the source of truth), so labels still buffered for the trainer count too.
        known = set(self.label_names)
        labels = {p: lab for p, lab in self.labels().items() if p in self._pool_set and lab in known}
        return final_fit(epochs=epochs, out=out, progress=progress, cancel=cancel, labels=labels)

    def diagnose(self, n_wrong: int = 8) -> dict | None:
        """Confusion matrix, per-class accuracy, most wrong test images of the live model; None: no model."""
        return self._trainer_method("diagnose")(n_wrong)

    def forecast(self, metric: str = "accuracy", target: float | None = None):
        """How many more labels the learning curve suggests to reach ``target`` (default: the
        early-stopping bound of ``metric``); a ``forecast.Forecast``, or None with under 4 evaluations."""
        from ..reports.forecast import forecast, target_of

        if target is None:
            target = target_of(self.config.early_stopping, metric)
        return forecast(self.history, metric, target, seed=self.config.seed)

    # --- another session on the same workdir ----------------------------------------------------
    def refresh(self) -> bool:
        """Take in labels written by another session on this workdir. Cheap when nothing changed."""
        version = self.store.data_version()  # before the read: a commit during it shows next time
        with self._lock:
            if version == self._data_version:
                return False
            # Read under the lock: a label() of this session from another thread between the read and
            # the merge would otherwise look like a label the other session removed.
            labels = dict(self.store.labels())
            self._data_version = version
            current_was_new = self._current is not None and self._current not in self._labels
            for path, label in labels.items():
                if self._labels.get(path) != label:
                    self._set_label(path, label)
                    if label in self.label_names:
                        self._send(Labelled(path, label, self._split(path)))
            for path in [p for p in self._labels if p not in labels]:
                self._set_label(path, None)
                self._send(Unlabelled(path), flush=True)  # as undo(): not held back until the next label
                if path in self._pool_set and path != self._current and path not in self._gen:
                    self._enqueue(path)
            self._compact()
            if current_was_new and self._current in self._labels:
                # The other session labelled the image about to be shown: show the next one instead
                # (an image the person stepped back to keeps showing, to be relabelled).
                self._back.append(self._current)
                self._current = None
                self._advance()
        return True

    # --- what the panel shows -------------------------------------------------------------------
    def is_test(self, path: str | None) -> bool:
        return path in self._test

    def _split(self, path: str) -> str:
        return "test" if path in self._test else "train"

    def label_of(self, path: str | None) -> str | None:
        """The label an image has now (None: unlabelled)."""
        return self._labels.get(path)

    def prediction(self, path: str | None) -> tuple[str, float] | None:
        """(class name, confidence) from the trainer's latest query, or None."""
        predicted = self._predictions.get(path) if path is not None else None
        if predicted is None:
            return None
        name, confidence = predicted
        return str(name), float(confidence)

    def progress(self) -> dict[str, int]:
        with self._lock:
            unreadable = sum(1 for p in self._unreadable if p not in self._labels)
            return {
                "labelled": self._n_labelled,
                "total": len(self._pool_set) - unreadable,
                "test_labelled": self._n_test_labelled,
                "test_total": self._test_total,
            }

    def counts(self) -> dict[str, int]:
        """Images per label, in label order."""
        with self._lock:
            out = {name: self._counts.get(name, 0) for name in self.label_names}
            out.update({k: v for k, v in self._counts.items() if k not in out and v})
            return out

    @property
    def latest(self) -> Update:
        """The trainer's latest update."""
        return self._latest

    @property
    def work(self) -> tuple[str, int, int] | None:
        """Long work the trainer is doing (caching or embedding images): (what, done, total); None
        when there is none (finished, or the trainer stopped)."""
        work = self._work
        if work is None or work[1] >= work[2] or self.stopped or self._latest.status == "stopping":
            return None
        return work

    @property
    def trainer_status(self) -> str:
        """The trainer's raw status (one of ``messages.STATUSES``)."""
        return self._latest.status

    @property
    def status(self) -> str:
        """One readable line: what the trainer does now and why."""
        u = self._latest
        if self.needs_labels:
            return "waiting for the list of labels"
        if self._trainer is None and not self._stopped:
            text = "starting: waiting for the previous session on this folder to stop"
        elif u.status == "error":
            text = f"error: {u.message}"
        elif u.status in ("stopped", "stopping"):
            text = f"{u.status}: {u.message}" if u.message else u.status
        else:
            text = f"{u.status} · trained on {u.n_labels} labels"
            if self._paused and u.status != "paused":
                text = f"pausing · {text}"
            if u.message:
                text += f" · {u.message}"
        if self._test_total == 0:
            text += " · no test split (too few images or test_fraction=0): no evaluation"
        return text

    @property
    def metrics(self) -> tuple[Mapping[str, float], ...]:
        return self._latest.metrics

    @property
    def history(self) -> list[dict]:
        """Every evaluation so far as plain dicts."""
        return [dict(row) for row in self._latest.metrics]

    @property
    def stopped(self) -> bool:
        return self._stopped or self._latest.status == "stopped"

    @property
    def done(self) -> bool:
        """Every image labelled, or the trainer stopped (by the person or by a threshold)."""
        return self._current is None or self.stopped

    @property
    def skipped(self) -> list[Skipped]:
        """Files that cannot be used (found by the scan, the trainer or the display), one per path."""
        seen: dict[str, Skipped] = {}
        for item in list(self.pool.skipped):
            seen.setdefault(item.path, item)
        for path, reason in list(self._unreadable.items()):
            seen.setdefault(path, Skipped(path, reason))
        return list(seen.values())

    def labels(self) -> dict[str, str]:
        """path -> label, read from the store (the source of truth)."""
        return dict(self.store.labels())

    # --- display ------------------------------------------------------------------------------
    def display_png(self, path: str) -> bytes:
        """PNG bytes of ``path`` for the panel, from the prefetch cache when possible.

        Raises ``ImageError`` (and remembers the file as unreadable) when it cannot be decoded.
        """
        with self._png_lock:
            future = self._png_cache.get(path)
            if future is not None:
                self._png_cache.move_to_end(path)
        if future is None:
            future = concurrent.futures.Future()
            try:
                future.set_result(pool_module.display_png(self.images, path, DISPLAY_SIDE))
            except ImageError as e:
                future.set_exception(e)
            self._remember_png(path, future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            with self._png_lock:
                self._png_cache.pop(path, None)
            return self.display_png(path)
        except ImageError as e:
            with self._lock:
                self._unreadable.setdefault(path, e.reason)
            raise

    def prefetch(self, n: int = 3) -> None:
        """Decode the next ``n`` images in the background so showing them costs no decoding."""
        for path in self.upcoming(n):
            with self._png_lock:
                if path in self._png_cache:
                    continue
            try:
                future = self._prefetcher.submit(pool_module.display_png, self.images, path, DISPLAY_SIDE)
            except RuntimeError:  # the executor was shut down (session stopped)
                return
            self._remember_png(path, future)

    def _remember_png(self, path: str, future: concurrent.futures.Future) -> None:
        with self._png_lock:
            self._png_cache[path] = future
            self._png_cache.move_to_end(path)
            while len(self._png_cache) > PNG_CACHE_SIZE:
                self._png_cache.popitem(last=False)

    # --- bookkeeping ----------------------------------------------------------------------------
    def _set_label(self, path: str, label: str | None) -> None:
        old = self._labels.get(path)
        if old == label:
            return
        if old is not None:
            self._count(path, old, -1)
        if label is None:
            del self._labels[path]
        else:
            self._labels[path] = label
            self._count(path, label, +1)

    def _count(self, path: str, label: str, delta: int) -> None:
        self._counts[label] += delta
        if path in self._pool_set:
            self._n_labelled += delta
            if path in self._test:
                self._n_test_labelled += delta


def _mix(test: list[str], train: list[str]) -> list[str]:
    """Every TEST_EVERY-th slot a test image while any remain; the rest in their order."""
    per = TEST_EVERY - 1  # training images before each test image
    groups = min(len(test), len(train) // per)
    out: list[str] = []
    for i in range(groups):
        out.extend(train[i * per : (i + 1) * per])
        out.append(test[i])
    # One of the two is used up; a short remainder of training images still goes first.
    return out + train[groups * per :] + test[groups:]


def _check_labels(labels) -> list[str]:
    labels = check_label_names(labels)  # the store's checks: a list of unique, non-blank strings
    if len(labels) < 2:
        raise ValueError(
            f"labels={labels!r} is invalid: a classifier needs at least 2 labels, e.g. ['cat', 'dog']"
        )
    return labels


def _no_images_message(pool: ImagePool) -> str:
    exts = ", ".join(sorted(pool_module.IMAGE_EXTENSIONS))
    msg = f"no images found in {str(pool.root)!r} (sub-folders included): looked for files ending in {exts}"
    if pool.skipped:
        shown = "; ".join(f"{s.path}: {s.reason}" for s in pool.skipped[:5])
        more = f" and {len(pool.skipped) - 5} more" if len(pool.skipped) > 5 else ""
        msg += f". {len(pool.skipped)} file(s) could not be used: {shown}{more}"
    return msg
