"""How many CPU threads TensorFlow gets: by default every core but one, so keys stay quick."""

import os
import subprocess
import sys

import pytest

from oal_widget.config import Config
from oal_widget.training.devices import tf_threads


def test_auto_leaves_one_core_and_the_setting_is_checked():
    assert tf_threads("auto") == max(1, (os.cpu_count() or 2) - 1)
    assert tf_threads(3) == 3 and tf_threads(None) is None
    for bad in (0, -1, "all", 1.5, True):
        with pytest.raises(ValueError, match="tf_threads"):
            Config(tf_threads=bad)


def test_the_limit_reaches_tensorflow_when_the_model_is_built():
    code = (
        "from oal_widget.training.devices import limit_threads, tf_threads\n"
        "import tensorflow as tf\n"
        "limit_threads('auto')\n"
        "tf.constant(1.0) + 1.0  # the first operation: the pools are made now\n"
        "assert tf.config.threading.get_intra_op_parallelism_threads() == tf_threads('auto')\n"
        "assert tf.config.threading.get_inter_op_parallelism_threads() == 1\n"
        "limit_threads(5)  # too late now: nothing changes, nothing raises\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
