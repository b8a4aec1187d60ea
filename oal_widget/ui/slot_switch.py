"""The browser's half of the image slots: on a key that labels, the page brings the slot holding the
next image on top by itself, before the key reaches the kernel.

A key's round trip (page -> server -> kernel, where the handler waits for the GIL while the trainer
runs -> server -> page) was most of the key-to-image time and all of its tail. The kernel still does
everything else: it saves the label, advances the order and shows what follows; this widget only
moves the CSS class that ``image_slots.py`` moves, earlier. The kernel stays the owner:

- ``next`` is the slot the kernel has checked holds the image that follows the current one
  (``-1``: none, no switch); the page uses it once (then ``-1`` until the kernel arms it again).
- ``keys_to_next`` are the keys that move to that image (a label; Enter while a prediction is on screen);
  empty while keys mean something else (the label filter, the end of a session).
- The page switches only where ipyevents delivers keys (the panel marked ``ipyevents-watched``: the
  pointer is over it), so every switch is followed by the key's event; it sends ``shown`` before that
  event (its listener captures the key on ``window``, ipyevents listens on ``document``), so the kernel
  knows what is on screen when the key arrives. When the key does not move on as the page assumed (an
  order changed in flight, a store that refused the label), the kernel's own switch puts the right
  image on top.
- Until the kernel has answered (``settled``), the lines about the image (its name, what the model
  says of it) are transparent: they still describe the image before, and every word on the panel
  must be true.
"""

from __future__ import annotations

import anywidget
import traitlets

ESM = """
const VEIL_MS = 2000;  // a kernel that never answers: the old lines come back rather than none

function render({ model, el }) {
  const onKey = (event) => {
    if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    let key = event.key;  // Caps Lock: a capital without Shift is the small letter (ui/keys.py)
    if (key.length === 1 && key !== key.toLowerCase() && !event.shiftKey) key = key.toLowerCase();
    const next = model.get("next"), shown = model.get("shown");
    if (next < 0 || next === shown || !model.get("keys_to_next").includes(key)) return;
    const slots = el.closest(".oal-slots"), panel = el.closest(".oal-panel");
    if (!slots || !panel || !panel.classList.contains("ipyevents-watched")) return;
    const frames = Array.from(slots.children).filter((c) => c.classList.contains("oal-slot"));
    if (!frames[next] || !frames[shown]) return;
    frames[next].classList.add("oal-image");
    frames[shown].classList.remove("oal-image");
    panel.classList.add("oal-switching");  // the lines about the image wait for the kernel's words
    clearTimeout(unveil);
    unveil = setTimeout(() => panel.classList.remove("oal-switching"), VEIL_MS);
    model.set({ shown: next, next: -1 });
    model.save_changes();
  };
  let unveil = null;
  const settled = () => {
    clearTimeout(unveil);
    const panel = el.closest(".oal-panel");
    if (panel) panel.classList.remove("oal-switching");
  };
  model.on("change:settled", settled);
  // Armed or not, as an attribute: what a test waits for before a key the page should switch on.
  const mark = () => {
    const armed = model.get("next") >= 0 && model.get("keys_to_next").length > 0;
    if (armed) el.dataset.armed = ""; else delete el.dataset.armed;
  };
  model.on("change:next", mark);
  model.on("change:keys_to_next", mark);
  mark();
  window.addEventListener("keydown", onKey, true);
  return () => {
    window.removeEventListener("keydown", onKey, true);
    model.off("change:next", mark);
    model.off("change:keys_to_next", mark);
    model.off("change:settled", settled);
    settled();
  };
}
export default { render };
"""


class SlotSwitch(anywidget.AnyWidget):
    """Lives in the slots' box (hidden); the traits are the whole protocol (see the module docstring)."""

    _esm = ESM
    #: The slot on top; set by the kernel on its own switches and by the page on a key.
    shown = traitlets.Int(0).tag(sync=True)
    #: The slot the page may bring on top on one of ``keys_to_next`` (-1: none).
    next = traitlets.Int(-1).tag(sync=True)
    keys_to_next = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: Counts the page's switches the kernel has answered: the file name and the model's words under the
    #: image are its new image's (until then the page keeps them transparent, ``oal-switching``).
    settled = traitlets.Int(0).tag(sync=True)

    def __init__(self):
        super().__init__()
        self.add_class("oal-slot-switch")  # hidden (style.py): it has nothing to draw
