"""The headless labelling session: store + pool + trainer + the order of what comes next.

Imports no widget and no TensorFlow.
"""

from .session import Session

__all__ = ["Session"]
