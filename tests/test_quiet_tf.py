"""TensorFlow's C++ start-up lines stay off stderr (the notebook's red block, the command line); a real
error written to stderr meanwhile still shows."""

import subprocess
import sys

from oal_widget.training.quiet_tf import keep

STARTUP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0 5464 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n"
    "E0 5464 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: UNKNOWN ERROR (303)\n"
)


def _run(code: str) -> subprocess.CompletedProcess:
    env_code = "import os; os.environ.pop('TF_CPP_MIN_LOG_LEVEL', None)\n" + code
    return subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=300)


def test_start_up_lines_are_dropped_and_other_lines_kept():
    assert keep(STARTUP + "ValueError: a real problem\n") == "ValueError: a real problem\n"


def test_a_real_error_written_meanwhile_reaches_stderr():
    out = _run(
        "import os\nfrom oal_widget.training import quiet_tf\n"
        f"quiet_tf._silenced(lambda: os.write(2, {(STARTUP + 'a real problem').encode()!r}))\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == "a real problem"


def test_importing_tensorflow_prints_nothing_on_stderr():
    out = _run("from oal_widget.training.quiet_tf import import_tensorflow\nimport_tensorflow()\nprint('ok')")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ok\n"
    assert out.stderr == "", out.stderr


def test_simulate_quiet_prints_nothing_on_stderr(tmp_path):
    """``python -m oal_widget simulate --quiet``: no TensorFlow start-up lines (``--tf-logs`` shows them)."""
    from oal_widget.data.samples import write_digits

    write_digits(tmp_path / "digits", per_class=6, size=16, seed=0)
    command = [sys.executable, "-m", "oal_widget", "simulate", str(tmp_path / "digits"), "--quiet"]
    command += ["--budget", "12", "--input-shape", "16,16,1", "--workdir", str(tmp_path / "work")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
