"""Pairs of low-texture images (a smooth gradient, a colour wheel's patch): scored on their colour.

``similarity.indexed_pair_scores`` takes the lower of the plain and the band-passed correlation: smooth
images correlate well with any other smooth image, so the band-passed one must agree. An image with
almost no band-passed energy (``LOW_ENERGY``) has only noise there: its own re-encode, brightened copy
or shift scores far under the threshold (0.2-0.8 against a plain 0.99). Such a pair of colour images is
scored instead by the lower of the plain correlation and ``chroma_similarity``: the cosine of the two
images' coarse opponent-colour fields (red-green, yellow-blue), which a brightness or contrast change
(the same gain and offset on each channel) leaves as it is, and a re-encode, a crop or a shift of a
smooth field barely moves; two patches of one colour wheel differ in it, though less: its distance
from 1 counts ``COLOUR_STRETCH`` times. Grey images (and pairs with one) keep their score: nothing here
tells two smooth grey skies apart.

Only images under ``LOW_ENERGY`` are decoded again (a few per hundred photo patches; none of the
benches' digits), so the cost is small. The rule decides nothing by itself: a rescored pair still
goes through ``duplicate_scores.select_pairs`` (threshold, margin above its crowd of look-alikes).
Settings chosen on photo patches, seeds 2-3 (``bench/duplicates.py``, ``bench/duplicates_missed.py``;
``COLOUR_STRETCH`` also on small pools of them, ``bench/duplicates_small.py``). No widgets, no
TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from .similarity import check_cancel, plain_pair_scores, sharp_energy

__all__ = [
    "CHROMA_SIDE",
    "COLOUR_STRETCH",
    "LOW_ENERGY",
    "MIN_CHROMA",
    "chroma_fields",
    "chroma_similarity",
    "rescored",
]

#: Spread of the band-passed thumbnail (``similarity.sharp_energy``) under which an image is low-texture.
LOW_ENERGY = 0.02
#: Side of the coarse colour field compared, and its RMS chroma (in [0, 1] grey levels) below which an
#: image counts as grey (a JPEG of a grey image has a little chroma noise).
CHROMA_SIDE, MIN_CHROMA = 8, 0.03
#: How much further from 1 a colour field's cosine is taken: a copy's fields agree to 0.996 or more,
#: two neighbouring patches of a colour wheel to 0.88-0.97, which must fall under the threshold.
COLOUR_STRETCH = 4.0
#: Images decoded at once for their colour fields (about 49 KB each at 64x64x3).
DECODE_BATCH = 2048


def chroma_fields(arrays: np.ndarray) -> np.ndarray | None:
    """(n, 2 * CHROMA_SIDE**2) opponent-colour fields of the pool's (n, h, w, 3) arrays in [0, 1]:
    red-green and yellow-blue, box-averaged to ``CHROMA_SIDE``; None for grey arrays (one channel)."""
    if arrays.shape[-1] != 3:
        return None
    r, g, b = arrays[..., 0], arrays[..., 1], arrays[..., 2]
    fields = []
    for channel in (r - g, (r + g) / 2 - b):
        for x in channel:
            im = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32), mode="F")
            fields.append(np.asarray(im.resize((CHROMA_SIDE, CHROMA_SIDE), Image.Resampling.BOX)))
    n = len(arrays)
    return np.stack(fields).reshape(2, n, -1).transpose(1, 0, 2).reshape(n, -1)


def chroma_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (m, d) sets of colour fields (not centred: the colour itself counts), or
    NaN where either is grey (RMS under ``MIN_CHROMA``)."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    floor = MIN_CHROMA * np.sqrt(a.shape[1])
    cos = (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)
    return np.where((na >= floor) & (nb >= floor), cos, np.nan)


def rescored(
    pool,
    order: Sequence[str],
    thumbs: np.ndarray,
    scores: Mapping[tuple[int, int], float],
    hashes: Sequence[bytes],
    cancel=None,
) -> dict[tuple[int, int], float]:
    """The pairs of ``scores`` (indices into ``order``, paths of ``pool``) with a low-texture image, both
    in colour, scored again: the lower of the plain correlation of their ``thumbs`` and their
    ``chroma_similarity``. Exact copies (same ``hashes``) and images that no longer decode are left
    out (they keep their score)."""
    if pool.input_shape[-1] != 3:  # a grey pool: no colour to score on, nothing decoded again
        return {}
    energy = sharp_energy(thumbs)
    pairs = np.array(
        [(i, j) for i, j in scores if min(energy[i], energy[j]) < LOW_ENERGY and hashes[i] != hashes[j]],
        dtype=np.int64,
    ).reshape(-1, 2)
    if not len(pairs):
        return {}
    fields: dict[int, np.ndarray] = {}  # index into ``order`` -> its colour field
    used = np.unique(pairs)
    for start in range(0, len(used), DECODE_BATCH):  # bounded memory; a cancel is heard between batches
        check_cancel(cancel)
        part = [int(i) for i in used[start : start + DECODE_BATCH]]
        arrays, loaded = pool.arrays([order[i] for i in part])
        if not len(loaded):
            continue
        got = chroma_fields(arrays)
        if got is None:
            return {}
        row = {p: k for k, p in enumerate(loaded)}
        fields.update({i: got[row[order[i]]] for i in part if order[i] in row})
    pairs = pairs[np.array([int(i) in fields and int(j) in fields for i, j in pairs], dtype=bool)]
    if not len(pairs):
        return {}
    a = np.stack([fields[int(i)] for i in pairs[:, 0]])
    b = np.stack([fields[int(j)] for j in pairs[:, 1]])
    colour = 1 - COLOUR_STRETCH * (1 - chroma_similarity(a, b))
    coloured = ~np.isnan(colour)
    pairs, colour = pairs[coloured], colour[coloured]
    plain = plain_pair_scores(thumbs, pairs)
    return {
        (int(i), int(j)): float(s)
        for (i, j), s in zip(pairs.tolist(), np.minimum(plain, colour).tolist(), strict=True)
    }
