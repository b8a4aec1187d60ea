"""Import TensorFlow without its C++ start-up lines on stderr.

TensorFlow's C++ side writes straight to file descriptor 2 before its log level is read ("All log
messages before absl::InitializeLog() ...", "Could not find cuda drivers", the cuInit error when the
devices are first listed). In a notebook ipykernel turns fd 2 into a red stderr block under the panel;
on the command line they bury the output. So fd 2 goes to a temporary file around the import and the
first device listing, and every line that is not such start-up noise is written back afterwards: a
real error still shows. ``OAL_TF_LOGS=1`` leaves stderr alone.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading

#: Lines TensorFlow prints at start-up on a machine without a GPU (or with oneDNN, AVX notes).
NOISE = re.compile(
    r"absl::InitializeLog|cuda|cuInit|cuDNN|cuFFT|cuBLAS|TensorRT|oneDNN|TF_ENABLE_ONEDNN_OPTS"
    r"|cpu_feature_guard|rebuild TensorFlow with the appropriate compiler flags"
    r"|This TensorFlow binary is optimized|computation placer|Unable to register",
)
_done = False
_lock = threading.Lock()


def import_tensorflow() -> None:
    """Import TensorFlow and list its devices once per process, start-up noise kept off stderr."""
    global _done
    with _lock:
        if _done or "tensorflow" in sys.modules:
            _done = True
            return
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later INFO / WARNING lines
        if os.environ.get("OAL_TF_LOGS") == "1":
            _load()
        else:
            _silenced(_load)
        _done = True


def _load() -> None:
    import tensorflow as tf

    tf.config.list_physical_devices()  # the cuInit error comes here, not at the import


def _silenced(fn) -> None:
    """Run ``fn`` with fd 2 in a temporary file; write back the lines that are not start-up noise."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (a closed or replaced stderr): nothing to hide
        fn()
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = keep(sink.read().decode("utf-8", "replace"))
            if kept:
                os.write(2, kept.encode())


def keep(text: str) -> str:
    """``text`` without TensorFlow's start-up lines."""
    return "".join(line for line in text.splitlines(keepends=True) if not NOISE.search(line))
