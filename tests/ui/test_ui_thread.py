"""The panel's UI thread: jobs run one at a time, coalesced by key, debounced, never beside a key."""

import threading
import time

from oal_widget.ui.ui_thread import UiThread


def test_jobs_run_in_order_and_a_pending_job_with_the_same_key_is_replaced():
    lock = threading.RLock()
    ran = []
    ui = UiThread(lock)
    with lock:  # jobs that take the lock wait while a "key" holds it
        for i in range(5):
            ui.post(lambda i=i: ran.append(("plain", i)))
        ui.post(lambda: ran.append("first update"), key="updates", after=0.2)
        ui.post(lambda: ran.append("last update"), key="updates", after=0.2)
    assert ui.wait_idle(10)
    assert ran == [("plain", i) for i in range(5)] + ["last update"]
    ui.close()


def test_a_debounced_job_waits_for_quiet_but_not_longer_than_latest():
    ui = UiThread(threading.RLock())
    ran = []
    start = time.monotonic()
    for _ in range(12):  # a burst of keys every 50 ms: quiet never comes
        ui.post(lambda: ran.append(time.monotonic() - start), key="plots", after=0.2, latest=0.3)
        time.sleep(0.05)
    assert ui.wait_idle(10)
    assert 1 <= len(ran) <= 3  # twelve posts, a few runs: at most one per `latest` during the burst
    assert 0.25 <= ran[0] < 0.3 + 1.0  # no quiet came: it ran once `latest` had passed (+ slack)
    ui.close()


def test_a_job_never_runs_while_the_lock_is_held_and_errors_are_reported():
    lock = threading.RLock()
    errors, inside = [], []

    def job():
        with lock:
            inside.append(time.monotonic())

    ui = UiThread(lock, on_error=errors.append)
    with lock:
        held_until = time.monotonic() + 0.2
        ui.post(job)
        time.sleep(0.2)
    assert ui.wait_idle(10)
    assert inside and inside[0] >= held_until
    ui.post(lambda: 1 / 0)
    assert ui.wait_idle(10)
    assert isinstance(errors[0], ZeroDivisionError)
    ui.post(lambda: inside.append("still running"))
    assert ui.wait_idle(10) and inside[-1] == "still running"
    ui.close()
