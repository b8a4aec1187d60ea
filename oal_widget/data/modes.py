"""Pixel modes: any image Pillow opens to 8-bit grey or RGB, the way the model and the panel need it.

Wide modes (16-bit, 32-bit int, float) are scaled into 0..255, not clipped as Pillow's own convert does;
transparency is composited on white.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Modes with more than 8 bits per pixel.
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
#: Modes with an alpha channel.
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


def wide_to_l(im: Image.Image, max_side: int | None = None) -> Image.Image:
    """16-bit, 32-bit int and float images to 8-bit grey by scaling, not clipping as Pillow's convert does.

    ``max_side``: the side the caller resizes to. A big image is first averaged over blocks down to about
    twice that, so a 100-megapixel 16-bit scan costs about its own size in memory, not ten times (float
    copies of every pixel)."""
    a = np.asarray(im)
    if max_side and max(a.shape[:2]) > 4 * max_side:
        f = max(a.shape[:2]) // (2 * max_side)
        h, w = a.shape[0] // f * f, a.shape[1] // f * f
        a = a[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3), dtype=np.float64)
    a = a.astype(np.float64)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode.startswith("I;16"):
        a = a / 257.0  # 65535 -> 255 exactly
    elif im.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255.0  # floats in [0, 1]
    elif lo >= 0 and hi <= 255:
        pass  # already 8-bit values
    elif im.mode == "I" and lo >= 0 and hi <= 65535:
        a = a / 257.0  # 16-bit data held in a 32-bit image
    else:
        a = (a - lo) * (255.0 / (hi - lo))  # no known range: stretch what is there
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def to_mode(im: Image.Image, mode: str, max_side: int | None = None) -> Image.Image:
    """Any Pillow mode to ``mode`` ("L" or "RGB"); transparency is composited on white. ``max_side``: the
    side the caller resizes to next (a big wide-mode image is reduced first)."""
    if im.mode in WIDE_MODES:
        im = wide_to_l(im, max_side)
    if im.mode in ALPHA_MODES or "transparency" in im.info:
        im = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
    if im.mode != mode:
        if im.mode not in ("1", "L", "P", "RGB", "RGBA"):
            im = im.convert("RGB")  # CMYK, YCbCr, ...: via RGB, which Pillow converts them all to
        im = im.convert(mode)
    return im
