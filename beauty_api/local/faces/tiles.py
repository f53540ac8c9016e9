"""Where the full-range detector looks for faces that are small in the frame: a pyramid of square tiles.

The short-range detector sees the whole frame at 128 px and finds faces down to about a tenth of the
frame's long side. The full-range detector (192 px) finds faces down to about 1/18 of what it is shown,
so the smallest face wanted (`min_face` px) is found in tiles of 16 x `min_face`, and each larger
level (x 2.5) finds the faces too large for the one below, up to one pass over the whole frame. Tiles
of a level overlap by a fifth of their side: any face too large to lie wholly in one tile is at least
a ninth of the next level's tile, where it is found. Detections of all passes are merged (detector.py).
"""

from __future__ import annotations

import math

import torch
from torch import fx

from . import detector as D
from .roi import Roi, crop

TILE_PER_FACE = 16.0  # tile side / smallest face found in it (full range, measured: 1/18 still found)
LEVEL_GROWTH = 2.5
TILE_OVERLAP = 0.2
TILE_BATCH = 8  # tiles through the model at once (memory stays small on a 4096 px picture)


def _axis(length: int, side: float) -> list[float]:
    """Tile centres along one axis: evenly spread, overlapping by at least TILE_OVERLAP x side."""
    if length <= side:
        return [length / 2 - 0.5]
    count = math.ceil((length - side) / (side * (1.0 - TILE_OVERLAP))) + 1
    first, last = side / 2 - 0.5, length - side / 2 - 0.5
    return [first + (last - first) * k / (count - 1) for k in range(count)]


def tile_rois(height: int, width: int, min_face: float) -> list[Roi]:
    """The tiles of every level for a `height` x `width` image, the whole frame last; [] when the
    short-range pass over the whole frame already finds faces of `min_face` px (a small picture)."""
    long_side = max(height, width)
    if long_side <= TILE_PER_FACE * min_face:
        return []
    rois = []
    side = TILE_PER_FACE * min_face
    while side < long_side:
        rois += [Roi(cx, cy, side, 0.0) for cy in _axis(height, side) for cx in _axis(width, side)]
        side *= LEVEL_GROWTH
    rois.append(Roi(width / 2 - 0.5, height / 2 - 0.5, float(long_side), 0.0))
    return rois


def detect_in_tiles(model: fx.GraphModule, image_nchw: torch.Tensor, rois: list[Roi]) -> list[D.Detection]:
    """Full-range detections in every tile, in image pixels (each tile's own clusters merged)."""
    found: list[list[D.Detection]] = []
    for start in range(0, len(rois), TILE_BATCH):
        batch = rois[start : start + TILE_BATCH]
        squares = crop(image_nchw, batch, D.FULL_RANGE_INPUT_SIZE, border="zeros")
        regressors, logits = model(squares * 2.0 - 1.0)
        for i, roi in enumerate(batch):
            scores, rows = D.decode(regressors[i], logits[i, :, 0], full_range=True)
            if len(scores):
                merged = D.weighted_nms(scores.cpu(), rows.cpu())
                corner = roi.corner_and_axes()[0]
                found.append(D.in_square(merged, corner[0], corner[1], roi.side))
    return D.merge(found)
