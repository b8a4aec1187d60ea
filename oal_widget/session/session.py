"""A headless labelling session: the store, the pool, the trainer and the order of images to label.

The panel is a thin view over this class, and the tests drive it without any widget. Every action
(``label``, ``undo``, ``skip``, ``back``, ...) is cheap: nothing in them is O(N) in the pool size and
nothing imports TensorFlow (the trainer imports it in its own thread). The parts, each handed what it
needs: ``order`` (what comes next), ``mirror`` (what the store says stands, and the one way a change of
it reaches the trainer), ``actions`` (the person's actions: commit, mirror, next image), ``leases``
(claims that hold while the session lives), ``sync`` (other sessions' labels), ``to_trainer`` (commands
to the trainer), ``updates`` (what its updates said), ``labels`` (label names, test split),
``thumbnails`` (decoded ahead), ``status`` (the status line), ``imports`` (labels from files).

Trainer updates arrive on the trainer's thread and are only queued there. Headless, they are applied
at once under the session's lock; a panel passes ``on_update_ready`` and applies them itself
(``apply_pending``) on the one thread that also handles keys, so a key never races an update.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import Config
from ..data.pool import ImagePool
from ..data.store import open_store
from ..messages import Labelled, Update
from ..training.estimate import wants_test
from ..workdir import CACHE_DIR, MODEL_FILE, default_workdir
from . import labels as label_names
from .actions import Actions
from .duplicates import DuplicateWatch
from .leases import Leases
from .mirror import Mirror
from .order import CLAIM_LOOKAHEAD, Order
from .readouts import Readouts
from .sync import Sync
from .thumbnails import Thumbnails
from .to_trainer import TrainerCommands
from .trainer_control import TrainerControl
from .updates import TrainerState, Updates

log = logging.getLogger(__name__)


class Session(Readouts):
    """One person labelling one folder: store + pool + trainer + the order of what comes next.

    Args:
        images: the folder of images (searched recursively).
        labels: the class names; ``None`` reads them from the store (a restart). When neither has
            any, ``needs_labels`` is True and ``set_labels`` starts the session.
        config: a ``Config``; or pass its settings as keywords (``eval_every=5``).
        model_fn: ``(num_classes, input_shape) -> compiled keras.Model`` for the trainer.
        trainer_factory: builds the trainer (keywords as ``trainer.Trainer``); default ``Trainer``.
        on_change: called with a kind ("status", "order", "metrics", "stopped") after each update is
            applied, on the thread that applied it. Must be quick.
        on_update_ready: called (from the trainer's thread) when an update is queued; the caller then
            calls ``apply_pending()`` on its own thread. None: updates are applied as they arrive.
        start: start the trainer now (False: call ``start()`` later, e.g. once an older session on
            the same workdir has stopped and saved its model).
        import_labels: a CSV of ``path,label``, an oal_widget JSON export or a folder sorted in
            class sub-folders whose labels are imported before the start (see ``import_labels``).
        store: None: a SQLite file in the workdir; ``postgresql://user@host:port/dbname``: PostgreSQL.
        project: separates data sets in one database (default: the images folder's name).
        annotator: who labels (default: the login name); every label records it.
        pool: an ``ImagePool`` of ``images`` to label instead of all of them (e.g. an oracle set left out).
        resume_at: the image a retired session on this folder was on (``retire`` returns it): shown first
            while it is still to label here.
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
        on_update_ready: Callable[[], None] | None = None,
        start: bool = True,
        import_labels=None,
        store=None,
        project: str | None = None,
        annotator: str | None = None,
        pool: ImagePool | None = None,
        resume_at: str | None = None,
        **settings,
    ):
        # replace() names an unknown setting and lists the accepted ones (Config(**kw) would not).
        config = (config or Config()).replace(**settings) if settings else (config or Config())
        label_names.check_model_fn(model_fn)  # now: else it fails later, in the trainer's thread
        model_fn = label_names.backbone_model_fn(config, model_fn)  # a missing weights file says so here
        if labels is not None:
            labels = label_names.check_labels(labels)  # before the store exists: no file left behind
        self.config = config
        # FileNotFoundError names a missing folder.
        self.pool = pool if pool is not None else ImagePool(images, config.input_shape)
        self.images: Path = self.pool.root
        if not self.pool.paths:
            raise ValueError(label_names.no_images_message(self.pool))
        self.workdir: Path = (
            Path(config.workdir) if config.workdir is not None else default_workdir(self.images)
        )
        self._store_args = dict(
            store=store, workdir=self.workdir, images_root=self.images, project=project, annotator=annotator
        )
        self.store = open_store(**self._store_args)
        try:
            self._setup(labels, model_fn, trainer_factory, on_change, on_update_ready, resume_at)
            #: What ``import_labels=`` did (an ``exports.ImportResult``), or None.
            self.imported = self.import_labels(import_labels) if import_labels is not None else None
        except BaseException:
            self.close(stop=False)  # nothing may stay open when the session cannot be made
            raise
        if start and not self.needs_labels:
            self.start()

    def _setup(self, labels, model_fn, trainer_factory, on_change, on_update_ready, resume_at) -> None:
        if self.config.image_cache:  # decoded images in a memory-mapped file: bounded memory, decoded once
            self.pool.use_disk_cache(self.workdir / CACHE_DIR)
        self._lock = threading.RLock()
        self._closed = False
        version = self.store.data_version()  # BEFORE the labels: a commit in between is seen by refresh()
        stored = dict(self.store.labels())
        self.label_names, self._labels_changed = label_names.resolve(self.store, labels, len(stored))
        self.needs_labels = not self.label_names
        test = label_names.test_split(
            self.store, self.pool.paths, stored, self.config.test_fraction, self.config.seed
        )
        self._commands = TrainerCommands(self.config.buffer_size)
        share = self.config.double_label
        self._mirror = Mirror(
            stored,
            self.pool.paths,
            test,
            second=self.store.double_label_candidates(share) if share else (),
            share=share,
            commands=self._commands,
            names=lambda: self.label_names,
            reinstate=lambda path: self._order.reinstate(path),
        )
        self._leases = Leases(
            self.store, self.config.claim_lease, blind=self._mirror.blind,
            is_open=lambda p: self._mirror.get(p) is None,
            showing=self._showing,
        )  # fmt: skip
        self._trainer_state = TrainerState()
        self._control = TrainerControl(
            self._commands, self._trainer_state, self._lock, trainer_factory, model_fn
        )
        self._stopped = False
        self._unreadable: dict[str, str] = {}  # path -> reason, found when decoding for display
        self.thumbnails = Thumbnails(self.images, on_unreadable=self._set_unreadable)
        self._order = _starting_order(self, test, resume_at)
        mirror = self._mirror
        closed = lambda: self._closed  # noqa: E731
        #: Near-duplicate groups, searched in a thread from ``start`` (``session.duplicates``).
        self.duplicates = DuplicateWatch(self.pool, self.store, mirror, self._order, self._lock, closed)
        self._sync = Sync(
            self.store, self._mirror, self._order, self._leases, lock=self._lock, wanted=self._wanted,
            closed=closed, version=version,
        )  # fmt: skip
        self._updates = Updates(self._trainer_state, self._order, self._lock, on_change, on_update_ready)
        #: The person's actions (commit, mirror, next image): the grid, the review queue and imports write
        #: through it (``label_page``, ``relabel``, ``undo_step(step=...)``, ``take_written``).
        self.actions = self._actions = Actions(
            self.store,
            self._mirror,
            self._order,
            names=lambda: self.label_names,
            state=self._trainer_state,
            lock=self._lock,
            unreadable=self._unreadable,
            sync=self.refresh,
            closed=closed,
            give_back=self._leases.give_back,
        )
        self._leases.start()

    # --- labels and the trainer ------------------------------------------------------------------------
    def set_labels(self, labels: Sequence[str], start: bool = True) -> None:
        """Set the class names when the session began without any (``needs_labels``), then start."""
        with self._lock:
            if self._commands.trainer is not None:
                raise RuntimeError(
                    "the labels cannot change while the trainer runs: stop() this session, then start a "
                    "new one with labels=[...] (new labels may only be added at the end)"
                )
            self.label_names, changed = label_names.resolve(self.store, labels, len(self._mirror.book.labels))
            self._labels_changed = self._labels_changed or changed
            self.needs_labels = False
        if start:
            self.start()

    def start(self) -> None:
        """Create and start the trainer, handing it every label already in the store. Idempotent."""
        with self._lock:
            if self._commands.trainer is not None or self.needs_labels or self._stopped:
                return
            known, book = set(self.label_names), self._mirror.book
            model_path = self.workdir / MODEL_FILE
            self._control.start(
                [Labelled(p, lab, book.split(p), fresh=False) for p, lab in book.labels.items()
                 if p in book.pool and lab in known],
                pool=self.pool, label_names=list(self.label_names), config=self.config,
                test_paths=sorted(book.test), workdir=self.workdir, on_update=self._updates.put,
                resume_model=model_path if model_path.exists() and not self._labels_changed else None,
            )  # fmt: skip
            self.duplicates.start()

    trainer = property(lambda self: self._commands.trainer, doc="The trainer (None before ``start``).")
    model = property(lambda self: getattr(self._commands.trainer, "model", None), doc="The live Keras model.")

    # --- trainer updates -------------------------------------------------------------------------------
    def apply_pending(self) -> set[str]:
        """Apply every queued trainer update (in order); the kinds of change, also given to ``on_change``."""
        return self._updates.apply_pending()

    def apply(self, update: Update) -> str:
        """Take one trainer update (``Updates.apply``): "stopped", "metrics", "order" or "status"."""
        return self._updates.apply(update)

    # --- actions (the panel's key handler calls these) --------------------------------------------------
    @property
    def current(self) -> str | None:
        """The image shown now (relative path), or None when there is nothing left to label."""
        return self._order.current

    def label(self, name: str) -> str | None:
        """Label the current image (committed first), then show the next. Returns the labelled path."""
        return self._actions.label(name)

    def accept_prediction(self, shown: tuple[str, str] | None = None) -> bool:
        """Label the current image with the model's prediction; False (no-op) when there is none, and
        always on a test image (its label must be the person's own: it grades the model).

        ``shown`` (path, label): the prediction the person saw; refused unless it is still about the
        current image (a key must never accept a prediction that was not on screen)."""
        return self._actions.accept(shown)

    def undo(self) -> str | None:
        """Undo this session's latest label; that image becomes current again. Returns its path."""
        return self._actions.undo()

    def skip(self) -> str | None:
        """Move the current image to the end of the order (behind the others across queries); its claim
        is given back meanwhile."""
        return self._actions.skip()

    def back(self) -> str | None:
        """Show the previous image again (to relabel it: labelling replaces). Returns it, or None."""
        return self._actions.back()

    def skip_unreadable(self, reason: str = "cannot be decoded") -> str | None:
        """Set the current image aside for good (its file cannot be shown) and show the next."""
        return self._actions.skip_unreadable(reason)

    def pause(self) -> None:
        """Pause training (labelling goes on; labels keep reaching the trainer)."""
        self._control.pause()

    def resume(self) -> None:
        self._control.resume()

    paused = property(lambda self: self._control.paused, doc="Training is paused (labelling goes on).")
    model_fn = property(lambda self: self._control.model_fn, doc="The model function (a retry may fix it).")

    def retry(self, model_fn: Callable | None = None) -> bool:
        """After a trainer error: build the model again, with ``model_fn`` when given (a fixed
        function, used from then on). Labels are kept. False (nothing sent) when there is no error."""
        return self._control.retry(model_fn)

    def stop(self, timeout: float = 10.0, reason: str | None = None) -> dict[str, str]:
        """Stop the trainer (bounded), which saves; returns where the model, metrics and labels are.

        ``reason`` is what the end screen and the trainer's last update say (default: stopped by the user).
        """
        with self._lock:
            self._stopped = True
        self._control.stop(timeout, reason)
        self._leases.stop()
        self.duplicates.stop()
        self._leases.release_all()  # nothing more is shown: teammates may take them now
        self.thumbnails.close()
        return self.saved()

    def saved(self) -> dict[str, str]:
        """Files written so far: labels (always), model and metrics once the trainer saved them."""
        return {"labels": str(self.store.path), **self._trainer_state.saved()}

    def close(self, stop: bool = True) -> None:
        """Stop; release this session's claims, its store connection and its threads. Idempotent."""
        if stop and not getattr(self, "_stopped", True):
            self.stop()
        self._closed = True
        if hasattr(self, "_leases"):
            self._leases.stop()
            self.duplicates.stop()
        if hasattr(self, "thumbnails"):
            self.thumbnails.close()
        self.store.close()  # releases the claims

    def retire(self) -> str | None:
        """A newer session takes over this folder (the cell ran again): take no more labels, release the
        claims and the connection NOW (before the new session builds its order); the trainer is left to
        ``stop()``, which saves and may take a while. Returns the image on screen (the new session's
        ``resume_at``)."""
        with self._lock:
            self._stopped = True
            self._closed = True
            on_screen = self._order.current
        self._leases.stop()
        self.duplicates.stop()
        self.store.close()
        return on_screen

    # --- labels in and out, the final model, insight -----------------------------------------------------
    def import_labels(self, source, *, overwrite: bool = False):
        """Label images from a CSV of ``path,label``, a JSON export or a folder in class sub-folders
        (``imports.import_labels``); returns an ``exports.ImportResult``."""
        from .imports import import_labels

        return import_labels(self, source, overwrite=overwrite)

    def export(self, out, format: str | None = None, *, split: str = "all"):
        """Write the labels as ``csv``, ``json`` or class ``folders`` (guessed from ``out``'s suffix)."""
        from ..reports import exports

        return self._read(
            lambda store: exports.export(store, out, format, images_root=self.images, split=split)
        )

    def final_fit(self, epochs: int = 30, out=None, progress=None, cancel=None) -> dict:
        """Train a new model from scratch on every label, evaluate on the test split, save it + a model card.

        Blocking (TensorFlow work): call it from a worker thread, as the panel's button does. Stopping
        the session cancels it. The files are ``<workdir>/final/model.keras`` and ``model_card.json``.
        """
        # From the store (the source of truth), so labels still buffered for the trainer count too.
        known = set(self.label_names)
        labels = {p: lab for p, lab in self.labels().items() if p in self._mirror.book.pool and lab in known}
        fit = self._trainer_method("final_fit")
        return fit(epochs=epochs, out=out, progress=progress, cancel=cancel, labels=labels)

    def _trainer_method(self, name: str):
        return self._control.method(name, self.needs_labels)

    def settle(self, path: str, label: str) -> None:
        """Decide a conflict between annotators: ``label`` stands for ``path`` (the trainer learns it)."""
        self._actions.settle(path, label)

    def another_store(self):
        """A second store object on the same backend, project and annotator (its own undo history)."""
        return open_store(**self._store_args)

    # --- another session on the same store -----------------------------------------------------------------
    def refresh(self) -> bool:
        """Take in labels written by another session on this store (``sync.Sync``). Cheap when nothing
        changed."""
        return self._sync.refresh()

    def renew_claims(self) -> None:
        """What the heartbeat does every third of ``claim_lease`` (``leases.Leases.renew``), now."""
        self._leases.renew()

    def close_page(self) -> None:
        """The grid page is no longer shown: its images not about to be shown go back to the team."""
        self._leases.close_page(self._showing())

    # --- bookkeeping -----------------------------------------------------------------------------------
    def _showing(self) -> set[str]:
        """The image on screen and the next ones: the claims the heartbeat keeps (with the grid page)."""
        with self._lock:
            return self._order.showing(CLAIM_LOOKAHEAD)

    def _wanted(self, path: str) -> bool:
        """Still to be labelled here, readable, and not held by another session."""
        return self._mirror.wanted(path) and path not in self._unreadable and not self._leases.elsewhere(path)

    def _set_unreadable(self, path: str, reason: str) -> None:
        with self._lock:
            self._unreadable.setdefault(path, reason)


def _starting_order(s: Session, test, resume_at: str | None) -> Order:
    """ALL paths shuffled by the seed, then the labelled ones dropped: a restart goes on through the same
    sequence. ``resume_at`` (the image a retired session was on, its order ranked by its trainer) first,
    while it is still to label here and no one else took it."""
    shuffled = list(s.pool.paths)
    random.Random(s.config.seed).shuffle(shuffled)
    mirror, book = s._mirror, s._mirror.book
    order = Order(
        [p for p in shuffled if p not in test and mirror.wanted(p)],
        [p for p in shuffled if p in test and mirror.wanted(p)],  # blind second opinions too
        test_split=book.test,
        wanted=s._wanted,
        readable=lambda p: p not in s._unreadable,
        counts=lambda: (book.n_train_labelled, book.n_test_labelled),
        pick=lambda n_train, n_test: (
            "test" if wants_test(n_train, n_test, s._trainer_state.halfwidth()) else "train"
        ),
        claim=s._leases.ensure,
        is_open=lambda p: mirror.wanted(p) and p not in s._unreadable,
    )
    if (
        resume_at is not None
        and resume_at != order.current
        and mirror.in_pool(resume_at)
        and s._wanted(resume_at)
    ):
        order.show(resume_at)
        order.recheck()
    return order
