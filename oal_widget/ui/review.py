"""The review queue's view: one labelled image at a time, worst first (``session.review.ReviewQueue``),
with its label, where the label came from and what the model said of it before it trained on it.

A thin view over the headless queue; the panel calls ``show`` with its lock held.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from ..data.pool import ImageError
from . import keys as keys_module
from .label_buttons import LabelButtons, action_button
from .labelling import label
from .style import image_layout

#: How each source reads in the view.
SOURCES = {
    "person": "your own label",
    "accepted": "the model's prediction, accepted",
    "review": "fixed in a review",
    "imported": "imported from a file",
    "duplicate": "its near-duplicate's label, confirmed",
}


class ReviewView:
    """Args: ``keymap`` (merged), ``run(action)`` for the buttons."""

    def __init__(self, keymap, run):
        self._keys = keys_module.by_action(keymap)
        self._run = run
        w = widgets
        self.image = w.Image(format="png", layout=image_layout())
        self.image.add_class("oal-review-image")
        self.position = label("oal-review-position")
        self.filename = label("oal-filename")
        self.info = w.HTML()
        self.info.add_class("oal-review-info")
        self.labels = LabelButtons(keymap, run, what="fix the label:")
        self.confirm = self._button("keep label", "accept", "oal-review-confirm", "success")
        self.next = self._button("next", "skip", "oal-review-next")
        self.previous = self._button("previous", "back", "oal-review-previous")
        self.undo = self._button("undo", "undo", "oal-review-undo")
        self.like = self._button("more like this", "like", "oal-review-like")
        self.close = self._button("leave review", "close", "oal-review-close")
        self.buttons = [self.confirm, self.next, self.previous, self.undo, self.like, self.close]
        text = w.VBox(
            [
                w.HTML("<b>Review</b>: the labels most likely to be wrong, worst first"),
                self.position,
                self.filename,
                self.info,
                self.labels.box,
                w.HBox(self.buttons, layout=w.Layout(flex_flow="row wrap")),
            ],
            layout=w.Layout(flex="1 1 300px", min_width="260px", padding="0 0 0 10px"),
        )
        # In a narrow notebook the text goes under the image instead of being squeezed beside it.
        self.box = w.HBox([self.image, text], layout=w.Layout(flex_flow="row wrap"))
        self.box.add_class("oal-review")

    def _button(self, text, action, cls, style="") -> widgets.Button:
        hint = keys_module.IN_REVIEW.get(action)
        return action_button(
            text, action, self._run, key=self._keys.get(action), tooltip=hint, cls=cls, style=style
        )

    def show(self, queue, session) -> None:
        item = queue.current
        for button in self.buttons[:-1]:
            button.disabled = item is None
        if item is None:
            self.image.value = b""
            self.filename.value = ""
            self.position.value = f"nothing to review ({len(queue.decided)} decided in this session)"
            self.info.value = (
                "<p>The queue holds training labels the model has predicted before it trained on them; "
                "it fills as you label (and once the model has started).</p>"
            )
            return
        try:
            self.image.value = session.display_png(item.path)
        except ImageError as e:
            self.image.value = b""
            self.filename.value = f"{item.path}: cannot be read ({e.reason})"
        else:
            self.filename.value = item.path
        self.position.value = (
            f"{queue.position + 1} of {len(queue.items)} · {queue.n_flagged} flagged as likely mistakes"
        )
        self.info.value = info_html(item, queue.source_of(item))


def info_html(item, source: str | None) -> str:
    where = SOURCES.get(source or "", source or "source not recorded")
    said = (
        f"before training on it, the model said <b>{html.escape(item.predicted)}</b> "
        f"({item.p_predicted:.0%}); it gave <b>{html.escape(item.label)}</b> {item.p_label:.0%}"
    )
    if item.flagged:  # a judge that has been right says so with confidence
        flag = (
            "<br><span class='oal-review-flag'>likely mistake: the model, right on most labels around then, "
            f"gives {html.escape(item.predicted)} a {item.doubt:.0%} chance</span>"
        )
    elif item.predicted != item.label:
        flag = "<br>the model disagrees, but it was not a reliable judge yet: check only if in doubt"
    else:
        flag = ""
    return f"<p>labelled <b>{html.escape(item.label)}</b> ({html.escape(where)})<br>{said}{flag}</p>"
