"""Writing labels: one image or a page of them in one transaction, unlabelling, settling a conflict."""

from __future__ import annotations

from collections.abc import Iterable

from .base import StoreCore, Tx
from .checks import (
    MODEL_SOURCES,
    SETTLING_SOURCES,
    UNKNOWN_ANNOTATOR,
    check_model_labels,
    check_path,
    check_source,
)
from .marks import ANNOTATION, SETTLEMENT, Marks
from .records import Written

Item = tuple[str, str, str, int | None]  # path, label, source, model_labels


def _items(items: Iterable, source: str, model_labels) -> list[Item]:
    """Checked ``(path, label, source, model_labels)`` items; ``ValueError`` before anything is written."""
    source = check_source(source)
    out: list[Item] = []
    seen: set[str] = set()
    for item in items:
        if (
            isinstance(item, (str, bytes))
            or not isinstance(item, (tuple, list))
            or len(item) not in (2, 3, 4)
        ):
            raise ValueError(
                f"label_many: item {item!r} is invalid: expected (path, label) or (path, label, source)"
            )
        path, label = check_path(item[0]), item[1]
        src = check_source(item[2]) if len(item) > 2 else source
        # The page's model_labels belongs to the labels the model suggested, not to the person's own.
        n = item[3] if len(item) > 3 else (model_labels if src in MODEL_SOURCES else None)
        if path in seen:
            raise ValueError(f"label_many: {path!r} appears twice in one page: give each image once")
        seen.add(path)
        out.append((path, label, src, check_model_labels(n, src)))
    return out


class Labelling(StoreCore):
    """``label``, ``label_many``, ``unlabel`` and ``settle``: every one is one undoable step."""

    def label(
        self, path: str, label: str, *, source: str = "person", model_labels: int | None = None
    ) -> str | None:
        """Give ``path`` the label ``label``, committed before returning; returns the standing label before.

        ``source``: ``person`` (the person's own choice), ``accepted`` (a model suggestion the person
        accepted; ``model_labels`` = how many labels the model had seen), ``review``, ``imported``.
        The same annotator relabelling replaces their label; another annotator's label of an image
        already labelled is kept beside it (double labelling) and the first one stands, unless the
        source is ``review`` or ``imported``. A claim on the image is released.
        """
        check_path(path)
        check_model_labels(model_labels, check_source(source))
        return self._label_items([(path, label, source, model_labels)]).before[path]

    def label_many(
        self, items: Iterable, *, source: str = "person", model_labels: int | None = None
    ) -> list[str | None]:
        """A page of labels in ONE transaction, undone as one step; returns the standing labels before.

        ``items``: ``(path, label)`` or ``(path, label, source)`` tuples (``source`` as in ``label``;
        the keyword gives the default). ``model_labels`` applies to the ``accepted`` / ``review`` items.
        All or nothing: an unknown label or a bad path raises ``ValueError`` and writes nothing.
        """
        written = self.commit_labels(items, source=source, model_labels=model_labels)
        return list(written.before.values())

    def commit_labels(
        self, items: Iterable, *, source: str = "person", model_labels: int | None = None
    ) -> Written:
        """``label_many`` that returns the whole ``Written``: what stands for each image now, which is
        not always what was given (another annotator's first label, a settlement)."""
        return self._label_items(_items(items, source, model_labels))

    def _label_items(self, items: list[Item]) -> Written:
        if not items:
            return Written(None, {}, {})

        def work(tx: Tx) -> Written:
            _check_known(tx.names, items)
            state = Marks(tx, [item[0] for item in items])
            previous = {item[0]: state.label_before(item[0]) for item in items}
            for path, label, source, n in items:
                self._give(state, tx, path, label, source, n)
            state.flush()
            self._log(tx, state, [(p, label, src, n) for p, label, src, n in items])
            tx.run_in(
                "DELETE FROM claims WHERE project_id = ? AND path IN ({params})", (tx.project,), state.paths
            )
            return Written(tx.version, previous, state.after(self.annotator))

        return self._write(work)

    def _give(self, state: Marks, tx: Tx, path: str, label: str, source: str, n) -> None:
        me = self.annotator
        own = state.get(path, ANNOTATION, me)
        mark = {
            "label": label,
            "annotator": me,
            "source": source,
            "model_labels": n,
            "session": self.session_id,
            "created": own["created"] if own else tx.stamp,
            "updated": tx.stamp,
            "rev": tx.version,
            "first_rev": own["first_rev"] if own else tx.version,
        }
        state.put(path, ANNOTATION, me, mark)
        if UNKNOWN_ANNOTATOR in state.annotations[path]:
            state.put(path, ANNOTATION, UNKNOWN_ANNOTATOR, None)  # a label of unknown origin is replaced
        settlement = state.get(path, SETTLEMENT, None)
        if source in SETTLING_SOURCES or (settlement is not None and settlement["annotator"] == me):
            first = (
                {"created": settlement["created"], "first_rev": settlement["first_rev"]} if settlement else {}
            )
            state.put(path, SETTLEMENT, None, {**mark, "created": tx.stamp, "first_rev": tx.version, **first})

    def unlabel(self, path: str) -> str | None:
        """Remove this annotator's label of ``path`` (undoable); returns the standing label it had, or None.

        Another annotator's label of the same image stays (and then stands).
        """
        check_path(path)

        def work(tx: Tx):
            state = Marks(tx, [path])
            me = self.annotator
            for key in (me, UNKNOWN_ANNOTATOR):
                if state.get(path, ANNOTATION, key) is not None:
                    state.put(path, ANNOTATION, key, None)
            settlement = state.get(path, SETTLEMENT, None)
            if settlement is not None and settlement["annotator"] == me:
                state.put(path, SETTLEMENT, None, None)
            if not state.touched(path):
                return None
            state.flush()
            self._log(tx, state, [(path, None, None, None)])
            return state.label_before(path)

        return self._write(work)

    def settle(self, path: str, label: str) -> str | None:
        """Decide the label of an image (e.g. one whose annotators disagree); it stands whoever labelled
        first. Undoable; the annotators' own labels stay as they were. Returns the standing label before."""
        return self.commit_settle(path, label).before[path]

    def commit_settle(self, path: str, label: str) -> Written:
        """``settle`` that returns the whole ``Written``."""
        check_path(path)

        def work(tx: Tx) -> Written:
            _check_known(tx.names, [(path, label)])
            state = Marks(tx, [path])
            if state.before[path] is None:
                raise ValueError(f"settle: {path!r} has no label to settle: label it first")
            old = state.get(path, SETTLEMENT, None)
            state.put(path, SETTLEMENT, None, {
                "label": label, "annotator": self.annotator, "source": "review", "model_labels": None,
                "session": self.session_id, "created": old["created"] if old else tx.stamp,
                "updated": tx.stamp, "rev": tx.version, "first_rev": old["first_rev"] if old else tx.version,
            })  # fmt: skip
            state.flush()
            self._log(tx, state, [(path, label, "review", None)])
            return Written(tx.version, {path: state.label_before(path)}, state.after(self.annotator))

        return self._write(work)

    def _log(self, tx: Tx, state: Marks, given: list[tuple]) -> None:
        """One history row per image of this step (``label``: what this change gave; None = removed)."""
        tx.many(
            "INSERT INTO history (project_id, session, step, path, previous, label, annotator, source, "
            "model_labels, created, undone, marks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            [
                (tx.project, self.session_id, tx.version, path, state.label_before(path), label,
                 self.annotator, source, n, tx.stamp, state.history_marks(path))
                for path, label, source, n in given
            ],
        )  # fmt: skip


def _check_known(names: list[str], items) -> None:
    for path, label, *_ in items:
        if label not in names:
            accepted = ", ".join(repr(n) for n in names) if names else "none yet: call set_label_names first"
            raise ValueError(f"label {label!r} for {path!r} is not one of the labels ({accepted})")
