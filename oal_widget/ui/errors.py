"""Errors a person can act on: a wrong folder or setting shows as its message alone in the notebook.

IPython prints what an exception's ``_render_traceback_`` returns instead of the traceback; the
message already names the setting and what to pass, so the frames inside the package add nothing
but scrolling. Outside IPython the exception and its traceback are unchanged.
"""

from __future__ import annotations

#: Raised for what the person passed (a folder, a setting): the message says what to change.
PLAIN = (ValueError, FileNotFoundError, NotADirectoryError)


def plain(error: BaseException) -> BaseException:
    """Mark ``error`` to be shown by IPython as one line "ValueError: ..."; returns it."""
    if isinstance(error, PLAIN):
        line = f"{type(error).__name__}: {error}"
        error._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
    return error
