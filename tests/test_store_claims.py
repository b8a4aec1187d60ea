"""Claims: an image handed to one session is reserved for it until labelled, released or expired;
two sessions (threads or real processes) claiming at once never both get one. Both backends."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytest_plugins = ["pg_server"]

NAMES = ["cat", "dog"]


@pytest.fixture
def two(backend):
    a, b = backend.open(annotator="alice"), backend.open(annotator="bob")
    a.set_label_names(NAMES)
    return a, b


def wait_for(condition, timeout=10.0, step=0.05):
    """Poll ``condition`` until it is true (returns its value) or the bound passes (returns it falsy)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def test_claim_takes_in_order_what_is_free_and_not_labelled(two):
    a, b = two
    a.label("done.png", "cat")
    assert a.claim(["x.png", "done.png", "y.png", "z.png"], lease_s=60, limit=2) == ["x.png", "y.png"]
    assert b.claim(["x.png", "y.png", "z.png", "w.png"], lease_s=60) == ["z.png", "w.png"]
    assert a.claimed_by_others() == {"z.png", "w.png"} and b.claimed_by_others() == {"x.png", "y.png"}
    assert a.claimed() == {"x.png", "y.png"}
    assert a.claim(["x.png", "z.png"], lease_s=60) == ["x.png"]  # its own: renewed; bob's: not
    assert a.claim(["q.png"], lease_s=60, limit=0) == []


def test_a_label_or_a_release_ends_a_claim(two):
    a, b = two
    a.claim(["x.png", "y.png", "z.png"], lease_s=60)
    a.label("x.png", "cat")  # labelled: no longer claimed (and no longer claimable)
    assert b.claimed_by_others() == {"y.png", "z.png"}
    assert a.release(["y.png"]) == 1  # e.g. skipped
    assert b.claim(["x.png", "y.png", "z.png"], lease_s=60) == ["y.png"]
    assert a.release() == 1 and b.claimed_by_others() == set()
    assert a.claimed_by_others() == {"y.png"}
    b.close()  # closing releases the session's claims
    assert a.claimed_by_others() == set()


def test_another_sessions_label_of_a_claimed_image_is_not_blocked(two):
    a, b = two
    a.claim(["x.png"], lease_s=60)
    b.label("x.png", "dog")  # claims guide who sees what; they never refuse a label
    assert a.get("x.png") == "dog" and a.claimed() == set()


def test_an_expired_lease_frees_the_image(two):
    a, b = two
    assert a.claim(["x.png"], lease_s=0.3) == ["x.png"]
    assert b.claim(["x.png"], lease_s=60) == []
    assert wait_for(lambda: b.claim(["x.png"], lease_s=60), timeout=10) == ["x.png"]
    assert a.claim(["x.png"], lease_s=60) == []


def test_undo_claims_the_image_again_for_this_session(two):
    a, b = two
    a.claim(["x.png"], lease_s=60)
    a.label("x.png", "cat")
    assert b.claim(["x.png"], lease_s=60) == []  # labelled
    assert a.undo() == "x.png"  # shown again to alice: hers, not free for bob
    assert b.claim(["x.png"], lease_s=60) == [] and a.claimed() == {"x.png"}


@pytest.mark.parametrize(("bad", "message"), [(0, "lease_s=0"), (-1, "lease_s=-1"), ("5", "lease_s='5'")])
def test_a_bad_lease_is_refused(two, bad, message):
    with pytest.raises(ValueError, match=message):
        two[0].claim(["x.png"], lease_s=bad)
    with pytest.raises(ValueError, match="limit=-1"):
        two[0].claim(["x.png"], lease_s=5, limit=-1)


CLAIMER = """
import json, sys, time
from oal_widget.data.store import open_store
location, project, who, ready, go = sys.argv[1:6]
url = location if "://" in location else None
store = open_store(url, workdir=None if url else location, project=project, annotator=who)
paths = [f"img/{i:03d}.png" for i in range(120)]
open(ready, "w").close()
deadline = time.monotonic() + 30
while not __import__("os").path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.005)
got, labelled = [], []
for start in range(0, len(paths), 4):  # like a session: claim the next few of its order, label them
    window = paths[start : start + 8]
    mine = store.claim(window, lease_s=60, limit=3)
    got += mine
    for path in mine:
        store.label(path, "cat")
        labelled.append(path)
print(json.dumps({"got": got, "labelled": labelled}))
store.close()
"""


def test_processes_claiming_at_once_never_get_the_same_image(backend, tmp_path):
    with backend.open() as s:
        s.set_label_names(NAMES)
    go = tmp_path / "go"
    children, readies = [], []
    for k in range(3):
        ready = tmp_path / f"ready{k}"
        readies.append(ready)
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    CLAIMER,
                    backend.location,
                    backend.project,
                    f"annotator{k}",
                    str(ready),
                    str(go),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    assert wait_for(lambda: all(r.exists() for r in readies), timeout=60), "children did not start"
    go.touch()  # all three start claiming at the same moment
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    claimed = [path for r in results for path in r["got"]]
    assert len(claimed) == len(set(claimed)), "an image was claimed by two processes"
    # They really ran at the same time (a waiting SQLite writer may sleep through a whole run: not all three).
    assert sum(1 for r in results if r["got"]) >= 2, [len(r["got"]) for r in results]
    with backend.open() as s:
        labels = s.labels()
        annotations = s.annotations()
    assert len(labels) == len(claimed)  # every claimed image labelled, each by one annotator only
    assert len(annotations) == len(claimed)
    who = {a.path: a.annotator for a in annotations}
    for k, r in enumerate(results):
        assert all(who[p] == f"annotator{k}" for p in r["labelled"])


def test_a_restarted_kernel_adopts_the_claims_of_its_dead_predecessor_only(backend, two, monkeypatch):
    """Same person, same host: the claims of a session whose process is gone come back at once (the
    image on screen when the kernel died is shown again); a live session keeps its own."""
    from oal_widget.data.store import claims

    a, b = two
    a.claim(["x.png", "y.png"], lease_s=600)
    assert claims._dead_here(a.session_id) is False  # this very process: alive
    assert claims._dead_here(a.session_id.rsplit(":", 1)[0] + ":999999999") is True  # no such pid
    assert claims._dead_here("abc@another-host:1") is False  # another machine: left to the lease
    restarted = backend.open(annotator="alice")
    assert restarted.adopt(lease_s=600) == []  # a is alive: its claims stay its own
    monkeypatch.setattr(claims, "_dead_here", lambda session: session == a.session_id)
    assert b.adopt(lease_s=600) == []  # another person adopts nothing
    assert sorted(restarted.adopt(lease_s=600)) == ["x.png", "y.png"]
    assert restarted.claimed() == {"x.png", "y.png"} and a.claimed() == set()
