"""`Face`: what face analysis finds for one face, and what the region masks and the retouch consume."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class Face:
    """One analysed face. Coordinates are image pixels with the origin at the centre of the top-left pixel.

    `landmarks` is [478, 3] float32 (x, y, z) on the analysed image's device; z is in the same pixel
    scale as x (smaller = nearer the camera). `score` is the mesh's face-presence probability (0..1).
    `box` is the landmarks' bounding box (x0, y0, x1, y1). `roll` is the head's in-plane rotation in
    radians, positive when the face is turned clockwise on screen (from the subject's right eye to left).
    """

    landmarks: torch.Tensor
    score: float
    box: tuple[float, float, float, float]
    roll: float

    @property
    def size(self) -> float:
        """The face's size in pixels (the larger side of its box): a scale for feathering and effects."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))
