"""Errors a person can act on: a wrong folder or setting shows as its message alone in the notebook,
an error in the panel as one line.

IPython prints what an exception's ``_render_traceback_`` returns instead of the traceback; the
message already names the setting and what to pass, so the frames inside the package add nothing
but scrolling. Outside IPython the exception and its traceback are unchanged.
"""

from __future__ import annotations

import logging
import traceback

from ..data.store import StoreUnavailable

log = logging.getLogger(__name__)

#: Raised for what the person passed (a folder, a setting): the message says what to change.
PLAIN = (ValueError, FileNotFoundError, NotADirectoryError)


def plain(error: BaseException) -> BaseException:
    """Mark ``error`` to be shown by IPython as one line "ValueError: ..."; returns it."""
    if isinstance(error, PLAIN):
        line = f"{type(error).__name__}: {error}"
        error._render_traceback_ = lambda: [line]  # type: ignore[union-attr]
    return error


def error_line(error: BaseException) -> str:
    """The panel's error line for ``error`` (logged too); a server away is said plainly."""
    if isinstance(error, StoreUnavailable):  # nothing was acknowledged: no traceback to look at
        log.warning("%s", error)
        return f"not saved: {error}"
    log.error("oal_widget panel error", exc_info=error)
    where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    at = f" (at {where[0].name}, line {where[0].lineno})" if where else ""
    return f"error: {type(error).__name__}: {error}{at}"
