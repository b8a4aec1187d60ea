"""Opening a store: ``None`` -> the SQLite file in the workdir; a PostgreSQL URL -> the server."""

from __future__ import annotations

from .interface import LabelStore
from .urls import is_postgres_url, mask_url


def open_store(
    store=None, *, workdir=None, images_root=None, project=None, annotator=None, create: bool = True
) -> LabelStore:
    """The store the settings name; the caller need not know which backend it gets.

    ``store``: None keeps today's SQLite file in ``workdir``; ``postgresql://user:password@host:port/db``
    (or ``postgres://``) keeps the labels in PostgreSQL (``workdir`` is then optional). ``project``
    (default: the images folder's name) separates projects in one database; ``annotator`` (default:
    the login name) names the person. ``create=False`` refuses a project that does not exist yet.
    """
    if store is None:
        if workdir is None:
            raise ValueError("open_store: pass workdir=... (the SQLite file's folder) or a postgresql:// URL")
        from .sqlite import Store

        return Store(workdir, images_root, project=project, annotator=annotator, create=create)
    if is_postgres_url(store):
        from .postgres import PostgresStore

        return PostgresStore(
            store,
            workdir=workdir,
            images_root=images_root,
            project=project,
            annotator=annotator,
            create=create,
        )
    raise ValueError(
        f"store={mask_url(str(store))!r} is not supported: pass None (a SQLite file in the workdir) or "
        "a PostgreSQL URL, postgresql://user:password@host:port/dbname"
    )
