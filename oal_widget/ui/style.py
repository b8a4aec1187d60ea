"""The panel's CSS and the "keys live" hint: ipyevents marks the panel ``ipyevents-watched`` while the
pointer is over it, and only then are keys delivered, so the hint follows that class."""

STYLE = """<style>
.oal-panel { border: 2px solid #d0d0d0; border-radius: 6px; padding: 6px; }
.oal-panel.ipyevents-watched { border-color: #2e7d32; }
.oal-panel .oal-keys-hint .oal-keys-on { display: none; color: #2e7d32; font-weight: bold; }
.oal-panel .oal-keys-hint .oal-keys-off { color: #777; }
.oal-panel.ipyevents-watched .oal-keys-hint .oal-keys-on { display: inline; }
.oal-panel.ipyevents-watched .oal-keys-hint .oal-keys-off { display: none; }
.oal-panel .oal-test-flag { color: #b35c00; font-weight: bold; }
.oal-panel .oal-error { color: #c62828; }
.oal-panel .oal-filename { font-family: monospace; }
/* Invisible but focusable (display:none could not take focus); fixed: focusing it never scrolls. */
.oal-panel .oal-keysink { position: fixed; top: 0; left: 0; width: 1px; height: 1px; margin: 0;
  opacity: 0; pointer-events: none; overflow: hidden; }
</style>"""

KEYS_HINT = (
    # ipyevents starts listening when the pointer ENTERS the panel: after the label editor's Start
    # the pointer is already inside, hence "out and back in".
    '<span class="oal-keys-off">keys off: move the pointer onto this panel (out and back in)</span>'
    '<span class="oal-keys-on">keys live</span>'
)
