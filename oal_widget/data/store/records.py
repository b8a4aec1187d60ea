"""What the store's read API returns: plain, frozen records (no database types leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabelRecord:
    """The standing label of one image and where it came from.

    ``annotator`` None and ``source`` None: labelled before provenance was recorded (schema 1).
    ``annotators``: everyone who labelled the image (double labelling), sorted. ``agreement``: ``""``
    (one annotator), ``"agree"``, ``"conflict"`` (they disagree and nobody settled it) or ``"settled"``.
    """

    path: str
    label: str
    split: str  # "train" or "test"
    source: str | None
    annotator: str | None
    created: str  # UTC ISO 8601: first labelled
    updated: str  # UTC ISO 8601: the standing label last changed
    model_labels: int | None
    annotators: tuple[str, ...] = ()
    agreement: str = ""


@dataclass(frozen=True)
class AnnotationRecord:
    """One annotator's label of one image (kept even when another annotator's label stands)."""

    path: str
    annotator: str | None
    label: str
    source: str | None
    model_labels: int | None
    created: str
    updated: str


@dataclass(frozen=True)
class PairAgreement:
    """Two annotators on the images both labelled: ``n``, ``agreed``, ``percent`` and Cohen's ``kappa``.

    ``kappa`` is None when it is undefined (both gave one and the same class to every shared image).
    """

    a: str
    b: str
    n: int
    agreed: int
    percent: float
    kappa: float | None


@dataclass(frozen=True)
class Conflict:
    """An image whose annotators disagree and that nobody has settled: each annotator's label."""

    path: str
    standing: str
    labels: dict[str, str]


@dataclass(frozen=True)
class Standing:
    """What stands for one image after a write, as the store decided it (a session mirrors exactly this).

    ``label`` None: unlabelled. ``source``: where the standing label came from. ``mine``: this annotator
    has a label of its own for the image (False for an image another annotator labelled: a second opinion
    of it is still to be given).
    """

    label: str | None
    source: str | None = None
    mine: bool = False


@dataclass(frozen=True)
class Written:
    """One committed write: ``step`` (its undo step), ``before`` (path -> the standing label before) and
    ``after`` (path -> ``Standing``), for every image it was asked to write."""

    step: int | None
    before: dict[str, str | None]
    after: dict[str, Standing]


@dataclass
class UndoResult:
    """What ``undo_step()`` did. False when there was nothing to undo.

    ``paths``: restored. ``conflicts``: changed by another session after this session's step; they keep
    that session's label (never overwritten). ``details``: path -> a sentence saying who changed it.
    ``after``: what stands now for every image of the step, restored or not.
    """

    step: int | None = None
    paths: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    after: dict[str, Standing] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.step is not None


@dataclass
class ProjectDump:
    """A whole project, backend-neutral (times as UTC ISO text), for ``copy-store``. Claims are not kept."""

    name: str
    images_root: str | None
    label_names: list[str]
    version: int
    labels: list[dict]
    annotations: list[dict]
    settlements: list[dict]
    test_split: list[dict]
    history: list[dict]

    def summary(self) -> str:
        return (
            f"{len(self.labels)} labels, {len(self.annotations)} annotations, "
            f"{len(self.settlements)} settled, {len(self.test_split)} test images, "
            f"{len(self.label_names)} label names, {len(self.history)} history rows"
        )
