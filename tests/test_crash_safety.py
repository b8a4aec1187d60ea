"""SIGKILL a labelling panel at random moments, many times: no acknowledged label is ever lost.

A child process drives the real ``Annotator`` through its key handler (ipyevents-style dicts) and
prints an acknowledgement once the NEXT image is on screen. The parent kills it with SIGKILL after
a random delay (during start-up, between keys, in the middle of a commit), restarts it, and checks
the store each time. The trainer is the fake one: the store is what must survive, and forking a
process per restart keeps 20 kills within a few seconds.

To keep restarts cheap, a "zygote" process imports everything once and forks one child per round.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_trainer import Factory

from oal_widget.data.samples import write_digits
from oal_widget.data.store import FILENAME
from oal_widget.messages import Labelled
from oal_widget.session.session import Session

TESTS = Path(__file__).parent
KILLS = 20
#: Enough that 20 rounds rarely label them all (a round labels up to ~200); when they do, a round
#: opens on the end screen.
N_IMAGES = 500
LABELS = [str(d) for d in range(10)]

ZYGOTE = r"""
import json, os, random, sys, time, traceback
sys.path.insert(0, sys.argv[3])
from fake_trainer import Factory
from oal_widget.messages import Labelled
from oal_widget.ui import plots
from oal_widget.ui.panel import Annotator

plots.metrics_png(())  # warm matplotlib (fonts, PNG writer) once, before forking
plots.distribution_png({"a": 1})

images, workdir = sys.argv[1], sys.argv[2]
LABELS = [str(d) for d in range(10)]


def say(*parts):
    # One write() of less than PIPE_BUF bytes: a kill never leaves half a line in the pipe.
    os.write(1, (json.dumps(parts) + "\n").encode())


def child():
    factory = Factory()
    panel = Annotator(images, LABELS, trainer_factory=factory, workdir=workdir,
                      input_shape=(16, 16, 1), test_fraction=0.1)
    s = panel.session
    if not factory.trainers:  # every image labelled by earlier rounds: the end screen, no trainer
        say("complete", s.store.count(), s.current)
        return
    sent = [c for c in factory.last.commands if isinstance(c, Labelled)]
    say("started", os.getpid(), len(sent), len({c.path for c in sent}), s.store.count(), s.current)
    while s.current is not None:
        path = s.current
        digit = path.split("/")[0]  # the true class: keys 1..9, 0 for the tenth label
        key = "0" if digit == "9" else str(int(digit) + 1)
        panel._on_key({"type": "keydown", "event": "keydown", "key": key, "repeat": False,
                       "ctrlKey": False, "metaKey": False, "altKey": False})
        shown = panel.labelling.filename.value
        assert shown == (s.current or "nothing left to label"), "next image not shown"
        say("ack", path, digit, s.current)
        if random.random() < 0.5:
            time.sleep(0.01)  # a person looks at the image before the next key: kills land there too
    say("finished")


for line in sys.stdin:  # one line per round: fork a fresh "kernel" that labels until it is killed
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child()
            code = 0
        except BaseException:
            say("failed", traceback.format_exc()[-2000:])
        finally:
            os._exit(code)
    say("child", pid)
    _, status = os.waitpid(pid, 0)
    say("exited", os.waitstatus_to_exitcode(status))
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash_images")
    write_digits(root, per_class=N_IMAGES // 10, size=16, seed=3)
    return root


class Lines:
    """JSON lines from a pipe, read with a bound (a hung child fails the test instead of hanging it)."""

    def __init__(self, stream):
        self.stream = stream
        self.buffer = b""

    def poll(self, until: float) -> list | None:
        """The next line, or None once ``until`` (time.monotonic()) has passed without one."""
        while b"\n" not in self.buffer:
            left = until - time.monotonic()
            if left <= 0 or not select.select([self.stream], [], [], left)[0]:
                return None
            chunk = self.stream.read1(65536)
            if not chunk:
                raise AssertionError("the zygote process ended early")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def next(self, timeout: float = 30.0) -> list:
        msg = self.poll(time.monotonic() + timeout)
        if msg is None:
            raise AssertionError(f"no line from the child within {timeout} s")
        return msg


def check_store(workdir: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(workdir / FILENAME)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "labels" not in tables:
            return {}  # killed while creating the file: the next start creates the tables
        labels = dict(db.execute("SELECT path, label FROM labels"))
        history = db.execute("SELECT COUNT(*) FROM history").fetchone()[0]
        # The child only ever labels fresh images: one history row per label, never a second write.
        assert history == len(labels), (
            f"{history} writes for {len(labels)} labels: something was written twice"
        )
    return labels


def test_sigkill_at_random_moments_never_loses_an_acknowledged_label(images, tmp_path):
    seed = random.SystemRandom().randrange(2**32)  # different moments each run; printed on failure
    rng = random.Random(seed)
    workdir = tmp_path / "wd"
    zygote = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, str(images), str(workdir), str(TESTS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    lines = Lines(zygote.stdout)
    acked: dict[str, str] = {}
    on_screen = None  # the image shown when the child was killed
    kills_during_labelling = resumed = 0
    stored: dict[str, str] = {}
    try:
        for round_ in range(KILLS):
            where = f"round {round_}, seed {seed}"
            before = stored
            zygote.stdin.write(b"go\n")
            zygote.stdin.flush()
            kind, pid = lines.next()
            assert kind == "child", where
            # One kill in five during start-up (scan, store opening), the others while labelling.
            during_startup = rng.random() < 0.2
            deadline = time.monotonic() + (rng.uniform(0, 0.5) if during_startup else 60.0)
            acks = 0
            killed = False
            while True:
                msg = lines.next() if killed else lines.poll(deadline)
                if msg is None:  # the moment has come
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass  # it had already finished
                    killed = True
                    continue
                assert msg[0] != "failed", f"{where}: the child failed:\n{msg[1]}"
                if msg[0] == "exited":
                    break
                if msg[0] == "complete":  # nothing left to label: every image is in the store
                    assert msg[1] == N_IMAGES and msg[2] is None, (where, msg)
                    on_screen = None
                if msg[0] == "started":
                    _, _, n_sent, n_unique, n_stored, current = msg
                    # A restart hands each stored label to the trainer exactly once (never appended again) ...
                    assert n_sent == n_unique == n_stored, (where, msg)
                    # ... and shows the image that was on screen when the last one was killed.
                    if on_screen is not None and on_screen not in before:
                        assert current == on_screen, (where, current, on_screen)
                        resumed += 1
                    assert current is None or current not in before, (where, current)
                    on_screen = current
                    if not during_startup:
                        deadline = time.monotonic() + rng.uniform(0, 0.1)
                elif msg[0] == "ack":
                    _, path, label, on_screen = msg
                    acked[path] = label
                    acks += 1
            kills_during_labelling += acks > 0
            stored = check_store(workdir) if (workdir / FILENAME).exists() else {}
            missing = {p: v for p, v in acked.items() if stored.get(p) != v}
            assert not missing, f"{where}: acknowledged labels lost: {missing}"
        zygote.stdin.close()
        assert zygote.wait(timeout=30) == 0
    finally:
        if zygote.poll() is None:
            zygote.kill()
            zygote.wait(timeout=30)
        zygote.stdout.close()
    print(
        f"seed {seed}: {len(acked)} labels acknowledged, {kills_during_labelling} kills while labelling, "
        f"{resumed} restarts checked to show the image that was on screen"
    )
    assert kills_during_labelling >= KILLS // 4, f"too few kills hit labelling (seed {seed})"
    assert resumed >= 3, f"too few restarts checked (seed {seed})"

    # Labelling resumes where it stopped: every stored label is kept, none is shown again.
    factory = Factory()
    session = Session(images, None, trainer_factory=factory, workdir=workdir, input_shape=(16, 16, 1))
    try:
        stored = session.store.labels()
        assert len(stored) >= len(acked) > 0
        assert set(session.order()) == set(session.pool.paths) - set(stored)
        assert session.current is None or session.current not in stored
        sent = [c for c in factory.last.commands if isinstance(c, Labelled)]
        assert {c.path: c.label for c in sent} == stored and len(sent) == len(stored)
        done = session.label(session.current.split("/")[0]) if session.current else None
        assert done is None or session.store.get(done) is not None
    finally:
        session.close()
