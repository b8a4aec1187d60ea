"""What each action does in the grid and in the review queue (the single view's are ``keys.perform``).
No widgets: each function acts on the headless part and returns what to tell the person ("" when it
went as asked)."""

from __future__ import annotations

from ..data.store import StoreUnavailable, UndoConflict


def _said(fn, *args) -> str:
    """A store that cannot commit, or an undo over another annotator's label, is said, never raised:
    nothing was acknowledged."""
    try:
        return fn(*args)
    except (StoreUnavailable, UndoConflict) as e:
        return f"not saved: {e}" if isinstance(e, StoreUnavailable) else str(e)


def in_grid(grid, action) -> str:
    """A key or button in the grid (``session.grid.Grid``)."""
    return _said(_in_grid, grid, action)


def _in_grid(grid, action) -> str:
    s = grid.session
    if isinstance(action, tuple):
        if action[1] < len(s.label_names):  # key 9 with 3 labels: nothing
            grid.set(s.label_names[action[1]])
    elif action == "accept":
        if not grid.tiles:
            return "nothing left to label"
        if not grid.commit():
            return "nothing to store: no tile shows a label yet (set one with a label key)"
    elif action == "undo":
        if not grid.undo():
            return "nothing to undo in this session"
    elif action in ("back", "skip", "up", "down"):
        dx, dy = {"back": (-1, 0), "skip": (1, 0), "up": (0, -1), "down": (0, 1)}[action]
        grid.move(dx, dy)
    elif action == "clear":
        grid.clear()
    elif action == "group":
        grid.group()
    elif action == "surest":
        if not grid.order():
            return "the next page follows the new order (this one keeps your choices)"
    else:
        return _common(s, action)
    return ""


def in_review(queue, action) -> str:
    """A key or button in the review queue (``session.review.ReviewQueue``)."""
    return _said(_in_review, queue, action)


def _in_review(queue, action) -> str:
    s = queue.session
    if isinstance(action, tuple):
        if action[1] < len(s.label_names) and queue.current is not None:
            queue.fix(s.label_names[action[1]])
    elif action == "accept":
        if queue.confirm() is None:
            return "nothing to review"
    elif action == "skip":
        if not queue.next():
            return "that was the last image of the queue"
    elif action == "back":
        if not queue.back():
            return "this is the first image of the queue"
    elif action == "undo":
        if queue.undo() is None:
            return "nothing to undo in this review"
    else:
        return _common(s, action)
    return ""


def _common(session, action) -> str:
    """Actions that mean the same in every view."""
    if action == "pause":
        session.resume() if session.paused else session.pause()
    elif action == "retry" and not session.retry():
        return "nothing to retry: the model has no error"
    return ""
