"""The one store interface both backends implement (``LabelStore``): the rest of the code talks to it.

Grouped by concern: ``base`` (transactions, project, names, test split, plain reads), ``labelling``,
``undo``, ``claims``, ``agreement``, ``reads`` (records with provenance) and ``transfer`` (copy-store).
"""

from __future__ import annotations

from .agreement import Agreement
from .base import StoreCore
from .claims import Claims
from .labelling import Labelling
from .reads import Reads
from .transfer import Transfer
from .undo import Undo


class LabelStore(Labelling, Undo, Claims, Reads, Agreement, Transfer, StoreCore):
    """Labels, provenance, annotations, label names, test split, undo history and claims of one project.

    Every method may be called from any thread; each object is one *session* (``session_id``):
    ``undo()`` only undoes what this object did. ``annotator`` names the person. Every change is
    committed before the call returns. Exports (``reports.exports``) read it; it never writes them.
    """
