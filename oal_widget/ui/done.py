"""The end screen: what was labelled, what the trainer said last, and where every file was saved."""

from __future__ import annotations

import html


def done_html(session, note: str = "") -> str:
    saved = session.saved()
    latest = session.latest
    progress = session.progress()
    title = "All images are labelled" if session.current is None else "Session stopped"
    lines = [
        f"<h3>{title}</h3>",
        f"<p>{progress['labelled']} / {progress['total']} images labelled "
        f"({progress['test_labelled']} / {progress['test_total']} test images).</p>",
    ]
    if note:
        lines.append(f"<p>{html.escape(note)}</p>")
    if latest.message:
        lines.append(f"<p>Trainer: {html.escape(latest.status)}: {html.escape(latest.message)}</p>")
    items = [f"<li>{html.escape(k)}: <code>{html.escape(str(v))}</code></li>" for k, v in saved.items()]
    if "model" not in saved:
        items.append("<li>model: not saved yet (the trainer is still finishing, or it had no model)</li>")
    lines.append("<ul>" + "".join(items) + "</ul>")
    lines.append(
        "<p>Reload the model with <code>oal_widget.reload_model(path)</code>; run the cell again "
        "to continue labelling.</p>"
    )
    return "".join(lines)
