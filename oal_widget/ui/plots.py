"""Figures for the panel as PNG bytes: the metric curve and the label distribution.

Matplotlib's object-oriented API with the Agg canvas only, never ``pyplot``: pyplot keeps global
state that is not thread-safe, and these figures are drawn on the panel's UI thread. Until the first
figure exists, ``placeholder_png`` (Pillow, no matplotlib: milliseconds) fills the image, so the browser
never shows a broken-image icon.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from ..reports.forecast import standing_curve

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Dots per inch of every figure; ``size`` is in inches, so (5, 3) is 500 x 300 pixels.
DPI = 100
EMPTY_METRICS_TEXT = "no evaluation yet: label some test images"
EMPTY_COUNTS_TEXT = "no labels yet"
_ACCURACY_COLOR = "tab:blue"
_LOSS_COLOR = "tab:orange"


# matplotlib is imported on first use: it costs ~1 s, and the panel must be on screen before that.
def _figure(size):
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI)


def warm_up() -> None:
    """Import matplotlib's figure and Agg canvas now (about a second, once per process)."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def metrics_png(
    rows: Sequence[Mapping[str, float]],
    thresholds: Mapping[str, tuple[float | None, float | None]] | None = None,
    size: tuple[float, float] = (5, 3),
    given: int | None = None,
) -> bytes:
    """The accuracy estimate with its 95% band (left axis) and the loss (right axis) against every
    label given (test labels included: what the person paid). ``given``: the labels now, said in the
    title when labels were undone after the last evaluation.

    ``rows`` are the trainer's evaluations (dicts with n_labels, accuracy, accuracy_low/high, loss,
    n_eval, ...), oldest first; those made before labels were undone below them are left out.
    ``thresholds`` is ``Config.early_stopping``: each bound is drawn as a dashed line in the colour of
    its metric. No rows gives a placeholder that says why it is empty.
    """
    fig = _figure(size)
    ax = fig.add_subplot()
    rows = standing_curve(rows)  # an undone branch is not drawn: the curve never doubles back
    if not rows:
        _placeholder(ax, EMPTY_METRICS_TEXT)
        return _png(fig)

    x = [r["n_labels"] for r in rows]
    thresholds = thresholds or {}
    handles = []
    if any("accuracy" in r for r in rows):
        acc = [_num(r.get("accuracy")) for r in rows]
        if any("accuracy_low" in r for r in rows):  # the estimate's 95% interval
            low = [_num(r.get("accuracy_low", r.get("accuracy"))) for r in rows]
            high = [_num(r.get("accuracy_high", r.get("accuracy"))) for r in rows]
            ax.fill_between(x, low, high, color=_ACCURACY_COLOR, alpha=0.18, linewidth=0)
        handles += ax.plot(
            x, acc, marker="o", markersize=3, color=_ACCURACY_COLOR, label="accuracy (95% band)"
        )
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("estimated accuracy", color=_ACCURACY_COLOR)
        _threshold_lines(ax, thresholds.get("accuracy"), _ACCURACY_COLOR)
    if any("loss" in r for r in rows):
        ax2 = ax.twinx()  # loss has no upper bound: its own scale on the right
        loss = [_num(r.get("loss")) for r in rows]
        handles += ax2.plot(x, loss, marker="s", markersize=3, color=_LOSS_COLOR, label="loss")
        ax2.set_ylabel("loss", color=_LOSS_COLOR)
        ax2.set_ylim(bottom=0)
        _threshold_lines(ax2, thresholds.get("loss"), _LOSS_COLOR)
    ax.set_xlabel("labels given (test labels included)")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_xlim(0, max(x) * 1.05 + 1)  # from zero labels: the curve's start is part of the story
    last = rows[-1]
    title = f"after {last['n_labels']} labels"
    if given is not None and given < last["n_labels"]:
        title = f"evaluated at {last['n_labels']} labels, {given} now (undone since)"
    if last.get("n_eval") is not None:
        title += f" · the estimate rests on {int(last['n_eval'])} ({int(last.get('n_test', 0))} test)"
    elif last.get("n_test") is not None:
        title += f" · {int(last['n_test'])} test images"
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    if handles:
        ax.legend(handles=handles, loc="center right", fontsize=8, framealpha=0.7)
    # Fixed margins instead of tight_layout, which measures every text twice and halves the speed.
    fig.subplots_adjust(left=0.12, right=0.86, bottom=0.16, top=0.9)
    return _png(fig)


def distribution_png(counts: Mapping[str, int], size: tuple[float, float] = (4, 3)) -> bytes:
    """Horizontal bars: how many images carry each label (label order kept, first on top)."""
    fig = _figure(size)
    ax = fig.add_subplot()
    names = list(counts)
    if not names or not any(counts.values()):
        _placeholder(ax, EMPTY_COUNTS_TEXT)
        if not names:
            return _png(fig)
    values = [int(counts[n]) for n in names]
    positions = range(len(names))
    bars = ax.barh(positions, values, color="tab:green")
    ax.set_yticks(list(positions), labels=[_short(n) for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.bar_label(bars, fontsize=8, padding=2)
    ax.set_xlabel("images")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_xlim(0, max(values + [1]) * 1.15)
    ax.set_title(f"{sum(values)} labels", fontsize=9)
    fig.subplots_adjust(left=0.36, right=0.95, bottom=0.15, top=0.9)
    return _png(fig)


def _placeholder(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _threshold_lines(ax, band, color) -> None:
    if not band:
        return
    for bound in band:
        if bound is not None:
            ax.axhline(bound, color=color, linestyle="--", linewidth=1, alpha=0.8)


def _num(value) -> float:
    # A missing or None value leaves a gap in the line instead of failing the whole figure.
    return float("nan") if value is None else float(value)


def _short(name: str, limit: int = 18) -> str:
    name = name if len(name) <= limit else name[: limit - 1] + "…"
    # A "$" would switch matplotlib to mathtext, and bad TeX in a label name fails the draw.
    return name.replace("$", r"\$")


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def placeholder_png(text: str, size: tuple[float, float] = (4.4, 3)) -> bytes:
    """A light box saying ``text``, at the size of a figure, drawn with Pillow (matplotlib loads later)."""
    from PIL import Image, ImageDraw

    width, height = int(size[0] * DPI), int(size[1] * DPI)
    image = Image.new("RGB", (width, height), "#fafafa")
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, width - 1, height - 1], outline="#dddddd")
    box = draw.textbbox((0, 0), text)
    draw.text(((width - box[2]) / 2, (height - box[3]) / 2), text, fill="#777777")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()
