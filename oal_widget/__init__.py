"""Online active learning for image classification inside a Jupyter notebook.

    from oal_widget import Annotator
    Annotator("images/", labels=["cat", "dog"])

Names are imported lazily (PEP 562), so ``import oal_widget`` is fast and never imports
TensorFlow or ipywidgets; TensorFlow is imported by the trainer's thread, or by the model helpers
when they are first used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Annotator": "ui.panel",
    "DEFAULT_KEYS": "ui.keys",
    "Config": "config",
    "Session": "session.session",
    "default_model_fn": "training.models",
    "transfer_model_fn": "training.models",
    "reload_model": "training.models",
    "backbone_model_fn": "training.backbones",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'oal_widget' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (``server_extension.py``): kernel websockets without Nagle's delay."""
    return [{"module": "oal_widget.server_extension"}]
