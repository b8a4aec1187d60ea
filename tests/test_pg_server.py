"""The PostgreSQL backend against a real server that the tests stop and start: every call raises
``StoreUnavailable`` while it is down, nothing unacknowledged is claimed saved, the store reconnects by
itself, a crash loses no acknowledged label, a killed kernel's claims come back."""

from __future__ import annotations

import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql

from oal_widget.data.store import StoreUnavailable, open_store
from oal_widget.data.store import postgres as pg_backend

pytest_plugins = ["pg_server"]

PASSWORD = "Sesame-9f2c"


def wait_for(condition, timeout=30.0, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture
def server(pg_restartable):
    """The module's own server, running, with a fresh database owned by a role that needs a password."""
    if not pg_restartable.running:
        pg_restartable.start()
    role = f"team_{uuid.uuid4().hex[:8]}"
    pg_restartable.admin(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
        .format(sql.Identifier(role), sql.Literal(PASSWORD))
        .as_string()
    )
    db = pg_restartable.create_database(owner=role)
    pg_restartable.test_url = pg_restartable.url(db, user=role, password=PASSWORD)
    pg_restartable.masked = pg_restartable.url(db, user=role, password="***")
    yield pg_restartable
    if not pg_restartable.running:
        pg_restartable.start()


def open_(url, **kw):
    store = open_store(url, project="p", annotator=kw.pop("annotator", "alice"), **kw)
    if not store.label_names():
        store.set_label_names(["cat", "dog"])
    return store


def assert_unavailable(call, server, *, saved="nothing was saved") -> str:
    with pytest.raises(StoreUnavailable) as info:
        call()
    message = str(info.value)
    assert server.masked in message and PASSWORD not in message
    assert saved in message and "reconnects by itself" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no psycopg chain to print
    return message


def test_every_call_raises_store_unavailable_while_the_server_is_down_and_then_it_carries_on(server):
    store = open_(server.test_url)
    acknowledged = {}
    for i in range(5):
        store.label(f"{i}.png", "cat")
        acknowledged[f"{i}.png"] = "cat"
    store.claim(["c.png"], lease_s=60)
    server.stop("fast")
    calls = [
        lambda: store.label("lost.png", "dog"),
        lambda: store.label_many([("lost2.png", "dog")]),
        store.labels,
        store.count,
        store.data_version,
        store.undo,
        store.records,
        lambda: store.claim(["x.png"], lease_s=60),
        store.claimed_by_others,
    ]
    for call in calls:
        assert_unavailable(call, server)
    assert "unavailable" in repr(store) and PASSWORD not in repr(store)
    server.start()
    store.label("after.png", "dog")  # the store reconnects by itself on the next call
    assert store.labels() == {**acknowledged, "after.png": "dog"}  # nothing unacknowledged was stored
    assert store.claimed() == {"c.png"}  # committed claims survive too
    store.close()


def test_a_restart_between_two_calls_is_invisible(server):
    store = open_(server.test_url)
    store.label("a.png", "cat")
    server.stop("fast")
    server.start()
    assert store.label("b.png", "dog") is None  # the stale connection is replaced, nothing raised
    assert store.labels() == {"a.png": "cat", "b.png": "dog"}
    store.close()


def test_an_unreachable_server_at_open_names_the_masked_url(server):
    url = server.test_url.replace(f":{server.port}/", ":1/")  # nothing listens on port 1
    with pytest.raises(StoreUnavailable) as info:
        open_store(url, project="p")
    assert server.masked.replace(f":{server.port}/", ":1/") in str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_project_held_too_long_by_another_session_is_busy_not_a_hang(server, monkeypatch):
    monkeypatch.setattr(pg_backend, "LOCK_TIMEOUT_S", 0.3)
    store = open_(server.test_url)
    with psycopg.connect(server.test_url) as other:
        other.execute("SELECT 1 FROM oal_widget.projects WHERE name = 'p' FOR UPDATE")  # held, not committed
        started = time.monotonic()
        with pytest.raises(
            StoreUnavailable, match="is busy.*another session held the project.*nothing was saved"
        ):
            store.label("a.png", "cat")
        assert time.monotonic() - started < 10
    store.label("a.png", "cat")  # released: fine again
    assert store.labels() == {"a.png": "cat"}
    store.close()


LABELLER = """
import sys
from oal_widget.data.store import StoreUnavailable, open_store
store = open_store(sys.argv[1], project="p", annotator="kernel")
i = 0
while True:  # like the panel: an image stays on screen until its label is committed
    try:
        store.label(f"{i:05d}.png", "cat")
    except StoreUnavailable:
        print("unavailable", flush=True)
        continue
    print(i, flush=True)
    i += 1
"""


class Child:
    """A process whose printed lines arrive on a queue (read by a thread, so waits are bounded)."""

    def __init__(self, code: str, *args: str):
        self.stderr = tempfile.TemporaryFile(mode="w+")  # never a pipe nobody reads: it would fill up
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.acked: list[int] = []
        self.unavailable = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def pump(self) -> None:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            if line == "unavailable":
                self.unavailable += 1
            else:
                self.acked.append(int(line))

    def wait(self, condition, timeout=60.0) -> bool:
        def check():
            self.pump()
            return condition(self) or self.proc.poll() is not None

        wait_for(check, timeout)
        assert self.proc.poll() is None, self.errors()
        return condition(self)

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.pump()


def test_a_server_crash_mid_session_loses_no_acknowledged_label(server):
    open_(server.test_url).close()
    child = Child(LABELLER, server.test_url)
    try:
        assert child.wait(lambda c: len(c.acked) >= 20)
        server.stop("immediate")  # a crash: no clean shutdown
        assert child.wait(lambda c: c.unavailable >= 1)
        before = len(child.acked)
        server.start()  # crash recovery, then the child carries on by itself
        assert child.wait(lambda c: len(c.acked) >= before + 20)
    finally:
        child.kill()
    assert child.acked == list(range(len(child.acked)))
    assert child.errors().count("unreachable") == 1 and "reachable again" in child.errors()  # once per outage
    assert PASSWORD not in child.errors()
    with open_(server.test_url) as store:
        labels = store.labels()
    assert all(f"{i:05d}.png" in labels for i in child.acked)  # every acknowledged label is there
    assert len(labels) <= len(child.acked) + 1  # at most the one in flight when it was killed


CLAIMING_KERNEL = """
import sys
from oal_widget.data.store import open_store
store = open_store(sys.argv[1], project="p", annotator="kernel")
print(",".join(store.claim(["a.png", "b.png", "c.png"], lease_s=float(sys.argv[2]))), flush=True)
store.label("a.png", "cat")
print("labelled", flush=True)
import time
time.sleep(600)  # killed here, with b.png and c.png still claimed
"""


def test_a_killed_kernels_acknowledged_labels_stay_and_its_claims_come_back(server):
    open_(server.test_url).close()
    child = Child(CLAIMING_KERNEL, server.test_url, "1.0")
    other = open_(server.test_url, annotator="bob")
    try:
        assert wait_for(lambda: not child.lines.empty(), 60)
        assert child.lines.get() == "a.png,b.png,c.png"
        assert wait_for(lambda: not child.lines.empty(), 60) and child.lines.get() == "labelled"
        assert other.claim(["b.png", "c.png"], lease_s=60) == []  # still the kernel's
    finally:
        child.proc.kill()
        child.proc.wait(timeout=30)
    assert other.get("a.png") == "cat"
    assert wait_for(lambda: other.claim(["a.png", "b.png", "c.png"], lease_s=60), 30) == ["b.png", "c.png"]
    other.close()
