"""The one readable line that says what the trainer does now and why (the panel's status line)."""

from __future__ import annotations

#: The trainer's messages before it has built a model: what the person is waiting for.
_LOADING = "loading TensorFlow and building the model (every label is saved meanwhile; training starts then)"


def status_line(
    latest, *, needs_labels: bool, started: bool, stopped: bool, paused: bool, test_total: int
) -> str:
    if needs_labels:
        return "waiting for the list of labels"
    if not started and not stopped:
        text = "starting the trainer"
    elif latest.status == "error":
        text = f"error: {latest.message}"
    elif latest.status in ("stopped", "stopping"):
        text = f"{latest.status}: {latest.message}" if latest.message else latest.status
    elif latest.status == "importing" or (latest.status == "waiting" and "not started" in latest.message):
        text = _LOADING
    else:
        text = f"{latest.status} · trained on {latest.n_labels} labels"
        if paused and latest.status != "paused":
            text = f"pausing · {text}"
        estimate = estimate_text(latest.metrics)
        if estimate:
            text += f" · {estimate}"
        if latest.message:
            text += f" · {latest.message}"
    if test_total == 0:
        text += " · no test split (too few images or test_fraction=0): no evaluation"
    return text


def estimate_text(metrics) -> str:
    """The latest accuracy estimate with its 95% band, and the labels it was made at ("" before one)."""
    last = metrics[-1] if metrics else None
    if not last or last.get("accuracy") is None:
        return ""
    text = f"accuracy ≈ {last['accuracy']:.2f}"
    if last.get("accuracy_low") is not None and last.get("accuracy_high") is not None:
        text += f" (95%: {last['accuracy_low']:.2f}–{last['accuracy_high']:.2f})"
    return text + f" at {int(last['n_labels'])} labels"
