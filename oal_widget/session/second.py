"""Double labelling: a share of the images other annotators labelled is shown to this one too, blind
(neither their label nor the model's prediction, which learnt from it), so the team can measure its
agreement (percent, Cohen's kappa) and settle the conflicts. The first label stands meanwhile.
"""

from __future__ import annotations


def second_opinions(store, share: float, pool) -> list[str]:
    """The labelled images this annotator should label too (a fixed pick of ``share`` of them)."""
    if not share:
        return []
    return [p for p in store.double_label_candidates(share) if p in pool]


def settle(session, path: str, label: str) -> None:
    """Decide a conflict: ``label`` stands for ``path`` from now on (the trainer learns it)."""
    from ..messages import Labelled

    with session._lock:
        session.store.settle(path, label)
        standing = session.store.get(path)
        session._book.set(path, standing)
        session._bridge.forget(path)
        session._bridge.send(Labelled(path, standing, session._book.split(path)), flush=True)
