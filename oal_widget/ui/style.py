"""The panel's CSS and the "keys live" hint: ipyevents marks the panel ``ipyevents-watched`` while the
pointer is over it, and only then are keys delivered, so the hint follows that class."""

import ipywidgets as widgets

STYLE = """<style>
.oal-panel { border: 2px solid #d0d0d0; border-radius: 6px; padding: 6px; }
.oal-panel.ipyevents-watched { border-color: #2e7d32; }
.oal-panel .oal-keys-hint .oal-keys-on { display: none; color: #2e7d32; font-weight: bold; }
.oal-panel .oal-keys-hint .oal-keys-off { color: #777; }
.oal-panel.ipyevents-watched .oal-keys-hint .oal-keys-on { display: inline; }
.oal-panel.ipyevents-watched .oal-keys-hint .oal-keys-off { display: none; }
/* Text wraps instead of being cut ("model.ker...") or scrolling: a path breaks anywhere if it must. */
.oal-panel .widget-label, .oal-panel .widget-html-content { white-space: normal; overflow-wrap: anywhere;
  text-overflow: clip; height: auto; line-height: 1.4; min-height: 0; }
.oal-panel .widget-label, .oal-panel .widget-html { height: auto; min-height: 0; }
.oal-panel .widget-label:not(:empty) { padding: 3px 0; }
/* An empty line takes no room (no gap between the file name and "model says"). */
.oal-panel .widget-label:empty, .oal-panel .widget-html:has(> .widget-html-content:empty) { display: none; }
/* Buttons keep their words; their rows wrap instead. */
.oal-panel .jupyter-button { flex-shrink: 0; max-width: 100%; }
.oal-panel .oal-help .widget-html-content > div { column-width: 24em; column-gap: 2em; }
.oal-panel .oal-help kbd { white-space: nowrap; overflow-wrap: normal; }
.oal-panel .oal-help p { margin: 2px 0 8px 0; }
.oal-panel .oal-why { color: #555; font-size: 90%; }
.oal-panel .oal-review-image, .oal-panel .oal-slot > img { max-width: 100%; }
/* The single view's image slots (image_slots.py) share one grid cell: the visible one (oal-image; in a
   switch, oal-image-rising) on top with an opaque background, the next ones beneath it, drawn, so
   Chromium has decoded them. */
.oal-panel .oal-slots { display: grid; flex: 0 1 auto; max-width: 100%; }
.oal-panel .oal-slots > .oal-slot { grid-area: 1 / 1; z-index: 0; min-width: 0; overflow: visible;
  background: var(--jp-layout-color0, #fff); }
.oal-panel .oal-slots > .oal-slot.oal-image { z-index: 1; }
.oal-panel .oal-slots > .oal-slot.oal-image-rising { z-index: 2; }
.oal-panel .oal-slots > .oal-slot-switch { display: none; }
/* The page put the next image on top by itself (slot_switch.py): the lines about the image are the
   previous one's until the kernel's arrive. Transparent, not hidden: nothing moves. */
.oal-panel .oal-single.oal-switching :is(.oal-filename, .oal-test-flag, .oal-prediction, .oal-why,
  .oal-current-label) { opacity: 0; }
.oal-panel .oal-editor-label { min-width: 12em; align-self: center; }
.oal-panel .oal-stale { color: #b35c00; }
.oal-panel .oal-grid-warning { color: #b35c00; font-weight: bold; }
.oal-panel .oal-test-flag { color: #b35c00; font-weight: bold; }
.oal-panel .oal-error { color: #c62828; }
.oal-panel .oal-filename { font-family: monospace; }
/* The grid: the cursor's tile, what each tile gets, a colour per predicted class (the odd one out). */
.oal-panel .oal-tile { border: 2px solid transparent; border-top: 5px solid #e0e0e0; border-radius: 4px;
  cursor: pointer; min-width: 0; }
/* A thumbnail and its caption never wider than the tile (the widgets' own margins made it 2 px wider). */
.oal-panel .oal-tile > * { margin-left: 0; margin-right: 0; max-width: 100%; box-sizing: border-box; }
.oal-panel .oal-most-wrong > * { min-width: 0; }
.oal-panel .oal-tile.oal-tile-cursor { border-color: #1565c0; background: #e3f2fd; }
.oal-panel .oal-tile-caption { text-align: center; line-height: 1.2; }
.oal-panel .oal-tile-person .oal-tile-caption { color: #1565c0; }
.oal-panel .oal-tile-test .oal-tile-caption { color: #b35c00; }
.oal-panel .oal-tile-empty .oal-tile-caption { color: #777; }
.oal-panel .oal-tile.oal-class-0 { border-top-color: #1f77b4; }
.oal-panel .oal-tile.oal-class-1 { border-top-color: #ff7f0e; }
.oal-panel .oal-tile.oal-class-2 { border-top-color: #2ca02c; }
.oal-panel .oal-tile.oal-class-3 { border-top-color: #d62728; }
.oal-panel .oal-tile.oal-class-4 { border-top-color: #9467bd; }
.oal-panel .oal-tile.oal-class-5 { border-top-color: #8c564b; }
.oal-panel .oal-tile.oal-class-6 { border-top-color: #e377c2; }
.oal-panel .oal-tile.oal-class-7 { border-top-color: #7f7f7f; }
.oal-panel .oal-tile.oal-class-8 { border-top-color: #bcbd22; }
.oal-panel .oal-tile.oal-class-9 { border-top-color: #17becf; }
.oal-panel .oal-review-flag { color: #c62828; }
.oal-panel .oal-filter { font-family: monospace; color: #1565c0; }
/* Invisible but focusable (display:none could not take focus); fixed: focusing it never scrolls. */
.oal-panel .oal-keysink { position: fixed; top: 0; left: 0; width: 1px; height: 1px; margin: 0;
  opacity: 0; pointer-events: none; overflow: hidden; }
</style>"""

KEYS_HINT = (
    # ipyevents starts listening when the pointer ENTERS the panel.
    '<span class="oal-keys-off">keys off: move the pointer onto this panel</span>'
    '<span class="oal-keys-on">keys live</span>'
)


#: The side of the single view's and the review queue's image.
IMAGE_SIDE = "384px"


def image_layout(side: str = IMAGE_SIDE) -> widgets.Layout:
    """The layout of a full-size image: the single view's slots and the review queue's image look the same."""
    return widgets.Layout(width=side, height=side, object_fit="contain", border="1px solid #eee")
