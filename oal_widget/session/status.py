"""The one readable line that says what the trainer does now and why (the panel's status line)."""

from __future__ import annotations


def status_line(
    latest, *, needs_labels: bool, started: bool, stopped: bool, paused: bool, test_total: int
) -> str:
    if needs_labels:
        return "waiting for the list of labels"
    if not started and not stopped:
        text = "starting: waiting for the previous session on this folder to stop"
    elif latest.status == "error":
        text = f"error: {latest.message}"
    elif latest.status in ("stopped", "stopping"):
        text = f"{latest.status}: {latest.message}" if latest.message else latest.status
    else:
        text = f"{latest.status} · trained on {latest.n_labels} labels"
        if paused and latest.status != "paused":
            text = f"pausing · {text}"
        if latest.message:
            text += f" · {latest.message}"
    if test_total == 0:
        text += " · no test split (too few images or test_fraction=0): no evaluation"
    return text
