"""The live learning curve and the label bars: drawn without the panel's lock (matplotlib is slow and
holds the GIL), set under it. Until the first figures, Pillow placeholders (never a broken image)."""

from __future__ import annotations

import ipywidgets as widgets

from . import plots


class PlotsView:
    def __init__(self):
        w = widgets
        self.plot = w.Image(
            value=plots.placeholder_png("the learning curve appears after the first evaluation"),
            format="png",
            layout=w.Layout(width="440px", max_width="100%", object_fit="contain"),
        )
        self.plot.add_class("oal-plot")
        self.distribution = w.Image(
            value=plots.placeholder_png("labels per class", (3.4, 3)),
            format="png",
            layout=w.Layout(width="340px", max_width="100%", object_fit="contain"),
        )
        self.distribution.add_class("oal-distribution")
        self.box = w.HBox([self.plot, self.distribution], layout=w.Layout(flex_flow="row wrap"))
        self._plotted_metrics, self.plotted_counts = None, None

    def render(self, session, lock, force: bool = False) -> None:
        """Draw what changed since the last time (on the UI thread)."""
        with lock:
            metrics, counts = session.metrics, session.counts()
            given = session.progress()["labelled"]
            # Labels undone below the last evaluation: its title says so (and again once they are back).
            undone = given if metrics and given < metrics[-1].get("n_labels", 0) else None
            drawn = (len(metrics), undone)
            draw_metrics = force or drawn != self._plotted_metrics
            draw_counts = force or counts != self.plotted_counts
        if not (draw_metrics or draw_counts):
            return
        plots.warm_up()  # the first import (about a second) happens here, off the key path
        thresholds = session.config.early_stopping
        curve = plots.metrics_png(metrics, thresholds, given=undone) if draw_metrics else None
        bars = plots.distribution_png(counts) if draw_counts else None
        with lock:
            if curve is not None:
                self.plot.value = curve
                self._plotted_metrics = drawn
                if metrics:  # a page (or a browser test) can tell a curve from the placeholder
                    self.plot.add_class("oal-plot-has-metrics")
            if bars is not None:
                self.distribution.value = bars
                self.plotted_counts = counts
