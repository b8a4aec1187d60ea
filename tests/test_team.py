"""A team on one data set, with a real PostgreSQL server: two people's panels in two processes at once,
a kernel killed mid-session, the server stopped and started. Keys go through the panel's key handler;
the trainer is the fake one (the store is what is tested)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_trainer import Factory

from oal_widget.data.samples import write_digits
from oal_widget.data.store import open_store
from oal_widget.ui.panel import Annotator

pytest_plugins = ["pg_server"]

TESTS = Path(__file__).parent
LABELS = [str(d) for d in range(10)]
PERSON = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from fake_trainer import Factory
from oal_widget.ui.panel import Annotator

images, url, who, keys, lease = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
panel = Annotator(images, [str(d) for d in range(10)], store=url, project="team", annotator=who,
                  trainer_factory=Factory(), input_shape=(16, 16, 1), claim_lease=lease)
s = panel.session
print(json.dumps(["ready"]), flush=True)
for _ in range(keys):
    path = s.current
    if path is None:
        break
    digit = path.split("/")[0]
    key = "0" if digit == "9" else str(int(digit) + 1)
    panel._on_key({"type": "keydown", "event": "keydown", "key": key})
    if s.label_of(path) == digit:  # committed: the panel moved on
        print(json.dumps(["ack", path, digit]), flush=True)
    time.sleep(0.005)
print(json.dumps(["done"]), flush=True)
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("team_images")
    write_digits(root, per_class=6, size=16, seed=5)
    return root


def person(images, url, who, keys=1000, lease=600.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PERSON, str(TESTS), str(images), url, who, str(keys), str(lease)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONFAULTHANDLER="1"),  # a crash shows every thread's stack
    )


def acks(proc: subprocess.Popen, timeout: float = 120) -> list[tuple[str, str]]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return [tuple(m[1:]) for m in map(json.loads, out.splitlines()) if m[0] == "ack"]


def stored(url, images) -> dict[str, tuple[str, str]]:
    with open_store(url, images_root=images, project="team", annotator="checker") as store:
        return {r.path: (r.label, r.annotator) for r in store.records()}


def test_two_people_label_one_project_at_once_and_no_image_is_labelled_twice(pg_url, images):
    alice, bob = person(images, pg_url, "alice"), person(images, pg_url, "bob")
    by_alice, by_bob = acks(alice), acks(bob)
    assert by_alice and by_bob  # both labelled, at the same time
    assert not {p for p, _ in by_alice} & {p for p, _ in by_bob}  # never the same image
    records = stored(pg_url, images)
    for who, given in (("alice", by_alice), ("bob", by_bob)):
        for path, label in given:
            assert records[path] == (label, who)  # every acknowledged label, under its annotator
    assert len(records) == len(by_alice) + len(by_bob) == len(list(images.rglob("*.png")))


def test_a_killed_kernel_loses_nothing_and_its_images_come_back_after_the_lease(pg_url, images):
    alice = person(images, pg_url, "alice", keys=1000, lease=3.0)
    seen = []
    for line in alice.stdout:
        message = json.loads(line)
        if message[0] == "ack":
            seen.append(tuple(message[1:]))
        if len(seen) == 5:
            os.kill(alice.pid, signal.SIGKILL)  # the kernel dies mid-session, holding claims
            break
    alice.wait(timeout=30)
    records = stored(pg_url, images)
    assert all(records[path] == (label, "alice") for path, label in seen)  # nothing acknowledged lost
    with open_store(pg_url, images_root=images, project="team", annotator="bob") as bob:
        held = bob.claimed_by_others()
        assert held  # alice's reservations are still there ...
        deadline = time.monotonic() + 30
        while bob.claimed_by_others() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not bob.claimed_by_others()  # ... until her lease ran out
        assert set(bob.claim(sorted(held), lease_s=60)) == held - set(records)  # now bob can take them


def test_the_server_stopped_and_started_mid_session_loses_no_acknowledged_label(
    pg_restartable, images, tmp_path
):
    db = pg_restartable.create_database()
    url = pg_restartable.url(db)
    panel = Annotator(
        images,
        LABELS,
        store=url,
        project="team",
        annotator="alice",
        trainer_factory=Factory(),
        input_shape=(16, 16, 1),
    )
    s = panel.session
    acknowledged = {}

    def press() -> str | None:
        path = s.current
        digit = path.split("/")[0]
        panel._on_key(
            {"type": "keydown", "event": "keydown", "key": "0" if digit == "9" else str(int(digit) + 1)}
        )
        if s.label_of(path) == digit:
            acknowledged[path] = digit
        return path

    try:
        for _ in range(3):
            press()
        pg_restartable.stop("immediate")  # the server goes away (as in a crash)
        on_screen = s.current
        assert press() == on_screen and s.current == on_screen  # not acknowledged: the image stays
        assert "not saved" in panel._error.value  # the panel says so
        assert on_screen not in acknowledged
        pg_restartable.start()
        press()  # the store reconnects by itself: labelling goes on
        assert on_screen in acknowledged
        press()
    finally:
        panel.session.close()
    with open_store(url, images_root=images, project="team", annotator="checker") as store:
        labels = store.labels()
    assert {p: labels.get(p) for p in acknowledged} == acknowledged
