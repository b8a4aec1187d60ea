"""The pool class by class: labels given, how the model does on each class, and how many images still to
label it assigns to each (a rare class the model is finding shows up here before it shows in the curve).
Read when the person opens the model insight, off the key path: O(pool)."""

from __future__ import annotations

import collections

from ..training.per_class import per_class


def class_table(session) -> list[dict]:
    """Per label, in label order: ``name``, ``train`` and ``test`` labels given, the latest evaluation's
    ``recall`` with ``low`` / ``high`` and the ``n`` labels it rests on (None: not measured yet), and
    ``predicted``: images still unlabelled (test reserve aside) the model's latest predictions give it."""
    names = session.label_names
    labels = session.labels()
    train: collections.Counter = collections.Counter()
    test: collections.Counter = collections.Counter()
    for path, label in labels.items():
        (test if session.is_test(path) else train)[label] += 1
    predicted: collections.Counter = collections.Counter()
    for path in session.pool.paths:
        if path not in labels and not session.is_test(path):
            guess = session.prediction(path)
            if guess is not None:
                predicted[guess[0]] += 1
    metrics = session.metrics
    rows = per_class(dict(metrics[-1]) if metrics else {}, names)
    for row in rows:
        name = row["name"]
        row.update(train=train[name], test=test[name], predicted=predicted[name])
    return rows
