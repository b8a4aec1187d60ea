"""The browser's half of the image slots: on a key that labels, the page brings the slot holding the
next image on top by itself, before the key reaches the kernel.

A key's round trip (page -> server -> kernel, where the handler waits for the GIL while the trainer
runs -> server -> page) was most of the key-to-image time and all of its tail. The kernel still does
everything else: it saves the label, advances the order and shows what follows; this widget only
moves the CSS class that ``image_slots.py`` moves, earlier. The kernel stays the owner:

- ``armed`` (kernel's): a ``token``, the slot on top it assumes (``from``), the hidden slot it checked
  holds the image after the current one (``to``, -1: none) and the ``keys`` that move there (labels;
  Enter while a prediction is on screen). The page uses a token for ONE key, whatever the key (a key
  that moves nothing, such as ``/``, changes what keys mean): after it, it waits for the kernel to arm
  it again, which the kernel does after every key.
- The page switches only where ipyevents delivers keys (the panel marked ``ipyevents-watched``: the
  pointer is over it), so every switch is followed by the key's event, and only when the slot on top
  is ``from``. It sends a message ``{"switched": {seq, token, to, ts}}`` (``ts``: the key event's
  ``timeStamp``, which ipyevents forwards too). Its listener captures the key on ``window``, before
  ipyevents' on ``document``, but the two messages travel apart: on the 2-core box about one in three
  reached the kernel after the key's.
- The kernel takes the switch in only when the arm the page used puts the same image on top as its
  latest arm (the same slots, the same image following: a new token after every key, or Enter armed too,
  changes nothing there); otherwise the page's image goes back. After the key it makes sure the image on
  screen is the session's, then answers (``settled`` = the last ``seq`` taken in or refused), and the
  page puts exactly the kernel's ``shown`` slot on top; it does that on every change of ``shown`` too. A
  switch whose key was handled first (by its ``ts``) is answered at once: the kernel moved on without
  it.
- Until the answer, the lines about the image (its name, what the model says of it) are transparent
  (``oal-switching`` on the single view): they still describe the image before, and every word on the
  panel must be true. A page whose kernel never answers shows them again after ``VEIL_MS``.
"""

from __future__ import annotations

import anywidget
import traitlets

ESM = """
const VEIL_MS = 2000;

function render({ model, el }) {
  let used = null, seq = 0, veiled = null, timer = null;
  const frames = () => {
    const box = el.closest(".oal-slots");
    return box ? Array.from(box.children).filter((c) => c.classList.contains("oal-slot")) : [];
  };
  const put = (j) => {  // exactly frame j on top
    const fs = frames();
    if (fs[j]) fs.forEach((f, i) => f.classList.toggle("oal-image", i === j));
  };
  const unveil = (by) => {
    clearTimeout(timer);
    if (veiled) {
      veiled.classList.remove("oal-switching");
      veiled = null;
      el.dataset.unveiledBy = by;  // what a test asks: the kernel's answer, not the fallback
    }
  };
  const mark = () => {  // armed or not, as an attribute: what a test waits for before a key
    const a = model.get("armed");
    if (a && a.to >= 0 && a.token !== used && a.keys.length) el.dataset.armed = "";
    else delete el.dataset.armed;
  };
  const onKey = (event) => {
    const why = (reason) => { el.dataset.lastKey = `${event.key}: ${reason}`; };  // for tests, benches
    const panel = el.closest(".oal-panel");
    const a = model.get("armed");
    if (!panel || !panel.classList.contains("ipyevents-watched")) return;  // a key for the notebook
    if (!a || a.token === used) return why("not armed");
    used = a.token;  // one key per arm, whatever it is: then the kernel decides again
    mark();
    if (event.repeat || event.ctrlKey || event.metaKey || event.altKey || a.to < 0) return why("no switch");
    let key = event.key;  // Caps Lock: a capital without Shift is the small letter (ui/keys.py)
    if (key.length === 1 && key !== key.toLowerCase() && !event.shiftKey) key = key.toLowerCase();
    const fs = frames();
    if (!a.keys.includes(key)) return why("not a key that moves on");
    if (!fs[a.to] || !fs[a.from] || !fs[a.from].classList.contains("oal-image")) {
      return why(`slot ${a.from} is not on top`);
    }
    why(`switched to slot ${a.to}`);
    put(a.to);
    seq += 1;
    unveil("the next switch");
    veiled = el.closest(".oal-single");
    if (veiled) {
      veiled.classList.add("oal-switching");
      timer = setTimeout(() => unveil("timeout"), VEIL_MS);
    }
    // A message, not a change of state: ipywidgets holds a state change back while an earlier one is
    // unanswered. It may still reach the kernel after the key's own (ipyevents'): see the docstring.
    model.send({ switched: { seq: seq, token: a.token, to: a.to, ts: event.timeStamp } });
  };
  const onShown = () => put(model.get("shown"));
  const onSettled = () => {
    if (model.get("settled") < seq) return;  // an answer to an older switch
    put(model.get("shown"));
    unveil("kernel");
  };
  model.on("change:armed", mark);
  model.on("change:shown", onShown);
  model.on("change:settled", onSettled);
  mark();
  window.addEventListener("keydown", onKey, true);
  return () => {
    window.removeEventListener("keydown", onKey, true);
    model.off("change:armed", mark);
    model.off("change:shown", onShown);
    model.off("change:settled", onSettled);
    unveil("gone");
  };
}
export default { render };
"""


class SlotSwitch(anywidget.AnyWidget):
    """Lives in the slots' box (hidden); the traits are the whole protocol (see the module docstring)."""

    _esm = ESM
    #: Kernel's: the slot on top.
    shown = traitlets.Int(0).tag(sync=True)
    #: Kernel's: ``{"token", "from", "to", "keys"}``.
    armed = traitlets.Dict({"token": 0, "from": -1, "to": -1, "keys": []}).tag(sync=True)
    #: Kernel's: the last page switch (its ``seq``) the kernel has answered.
    settled = traitlets.Int(0).tag(sync=True)

    def __init__(self):
        super().__init__()
        self.add_class("oal-slot-switch")  # hidden (style.py): it has nothing to draw
