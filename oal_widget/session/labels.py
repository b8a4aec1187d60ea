"""A workdir's label names and test split: read from the store, checked against what the person passes.

New label names may only be added at the END once images are labelled (a saved model's classes are
positions); the test split is fixed the first time and kept by every later session.
"""

from __future__ import annotations

from ..data import pool as pool_module
from ..data.pool import split_test
from ..data.store import check_label_names


def check_labels(labels) -> list[str]:
    labels = check_label_names(labels)  # the store's checks: a list of unique, non-blank strings
    if len(labels) < 2:
        raise ValueError(
            f"labels={labels!r} is invalid: a classifier needs at least 2 labels, e.g. ['cat', 'dog'] "
            "(or ['cat', 'not cat']); for images already sorted into class folders, pass labels=None "
            "and the panel proposes the folders' names"
        )
    return labels


def check_model_fn(model_fn) -> None:
    if model_fn is not None and not callable(model_fn):
        raise ValueError(
            f"model_fn={model_fn!r} is not callable: pass a function (num_classes, input_shape) -> "
            "compiled keras.Model, or None for the default model"
        )


def backbone_model_fn(config, model_fn):
    """``model_fn``, or the one ``config.backbone`` names (its weights are found or downloaded now, in
    the caller's thread, so a missing file is an error in the notebook cell, not later in the trainer)."""
    if config.backbone is None:
        return model_fn
    if model_fn is not None:
        raise ValueError(
            f"backbone={config.backbone!r} and model_fn={model_fn!r} were both given: pass one of them "
            "(backbone= builds the model_fn for you)"
        )
    from ..training.backbones import backbone_model_fn as build

    try:
        return build(config.backbone, weights=config.backbone_weights, input_shape=config.input_shape)
    except ValueError as e:  # say it with the name of this setting
        raise ValueError(str(e).replace("pass weights=", "pass backbone_weights=")) from None


def resolve(store, labels, n_labelled: int) -> tuple[list[str], bool]:
    """(label names, whether they differ from the stored ones); [] when neither side has any.

    Writes new names to the store; ``ValueError`` (with a way out) when they would lose or reorder
    stored names that ``n_labelled`` images use."""
    stored = list(store.label_names())
    if labels is None:
        return stored, False
    labels = check_labels(labels)
    changed = bool(stored) and labels != stored
    if changed and labels[: len(stored)] != stored and n_labelled:
        lost = [name for name in stored if name not in labels]
        how = (
            f"would lose the stored label(s) {lost!r}"
            if lost
            else "would change the order of the stored labels (the model's classes)"
        )
        raise ValueError(
            f"labels={labels!r} {how}: the store {store.path} already has labels {stored!r} "
            f"on {n_labelled} image(s). Pass labels=None (or the stored list, optionally with new "
            "labels added at the END) to continue, or pass a new workdir=... to start over."
        )
    if labels != stored:
        store.set_label_names(labels)
    return labels, changed


def test_split(store, pool_paths, labelled, fraction: float, seed: int) -> frozenset[str]:
    """The stored test split, or a new seeded one of the images not labelled yet (written once)."""
    test = set(store.test_paths())
    if not test:
        # Images already labelled (e.g. a first run with test_fraction=0) stay training images.
        candidates = [p for p in pool_paths if p not in labelled]
        test = set(split_test(candidates, fraction, seed))
        if test:
            store.add_test_paths(sorted(test))
    return frozenset(test)


def no_images_message(pool) -> str:
    exts = ", ".join(sorted(pool_module.IMAGE_EXTENSIONS))
    msg = f"no images found in {str(pool.root)!r} (sub-folders included): looked for files ending in {exts}"
    if pool.skipped:
        shown = "; ".join(f"{s.path}: {s.reason}" for s in pool.skipped[:5])
        more = f" and {len(pool.skipped) - 5} more" if len(pool.skipped) > 5 else ""
        msg += f". {len(pool.skipped)} file(s) could not be used: {shown}{more}"
    return msg
