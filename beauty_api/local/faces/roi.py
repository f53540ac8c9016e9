"""Rotated square regions of interest and the crops the models see, with MediaPipe's exact conventions.

Coordinates are image pixels with the origin at the CENTRE of the top-left pixel. An `Roi` is a centre,
a side and an angle (radians, positive = clockwise on screen). Crop pixel (j, i) of an N x N crop samples
the image at TL + (j/N)*side*u + (i/N)*side*v with u = (cos a, sin a), v = (-sin a, cos a),
TL = centre - side/2*(u + v); bilinear, no antialiasing. These half-pixel choices are what the reference
outputs were made with: changing them moves landmarks by 0.5 to 2 px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import topology as T

ROI_SCALE = 1.5  # the crop's side is 1.5 x the larger side of the face box


@dataclass(frozen=True)
class Roi:
    cx: float
    cy: float
    side: float
    angle: float

    def corner_and_axes(self) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """(TL, u * side, v * side): the crop's top-left corner and its two edge vectors in pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        ux, uy, vx, vy = c * self.side, s * self.side, -s * self.side, c * self.side
        return (self.cx - (ux + vx) / 2, self.cy - (uy + vy) / 2), (ux, uy), (vx, vy)


def normalize_angle(angle: float) -> float:
    """Angle in [-pi, pi)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def roi_from_box(
    box: tuple[float, float, float, float], eye_a: tuple[float, float], eye_b: tuple[float, float]
) -> Roi:
    """The face's crop: centred on its box, 1.5 x its larger side, rotated so the eye line is horizontal.

    `eye_a` is the subject's right eye (image left for a frontal face), `eye_b` the subject's left eye.
    """
    x0, y0, x1, y1 = box
    angle = normalize_angle(-math.atan2(-(eye_b[1] - eye_a[1]), eye_b[0] - eye_a[0]))
    side = ROI_SCALE * max(x1 - x0, y1 - y0)
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, side, angle)


def roi_from_landmarks(landmarks: torch.Tensor) -> Roi:
    """The crop for the next mesh pass, from landmarks in image pixels (MediaPipe's tracking ROI).

    The box is the 468 mesh points' bounding box; the angle comes from the outer eye corners (33, 263).
    """
    pts = landmarks[: T.NUM_MESH_POINTS, :2].detach().to("cpu", torch.float64)
    lo, hi = pts.amin(0).tolist(), pts.amax(0).tolist()
    a = pts[T.RIGHT_EYE_OUTER_CORNER].tolist()
    b = pts[T.LEFT_EYE_OUTER_CORNER].tolist()
    return roi_from_box((lo[0], lo[1], hi[0], hi[1]), (a[0], a[1]), (b[0], b[1]))


def sampling_grid(rois: list[Roi], size: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """grid_sample grids [R, size, size, 2] (align_corners=True) for each roi's crop."""
    geo = torch.tensor(
        [[*r.corner_and_axes()[0], *r.corner_and_axes()[1], *r.corner_and_axes()[2]] for r in rois],
        dtype=torch.float64,
    )
    steps = torch.arange(size, dtype=torch.float64) / size
    tl, u, v = geo[:, None, None, 0:2], geo[:, None, None, 2:4], geo[:, None, None, 4:6]
    pos = tl + steps[None, None, :, None] * u + steps[None, :, None, None] * v  # [R, i, j, 2]
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=torch.float64)
    return (pos * scale - 1.0).to(device=device, dtype=torch.float32)


def crop(image_nchw: torch.Tensor, rois: list[Roi], size: int, *, border: str) -> torch.Tensor:
    """Crops [R, 3, size, size] of a [1, 3, H, W] image (values kept as they are), quantised to 8 bits.

    `border` is "zeros" (the detector's letterbox) or "border" (mesh crops replicate the edge). The
    samples are rounded to 1/255 steps because the models were fed 8-bit crops in the reference.
    """
    _, _, h, w = image_nchw.shape
    grid = sampling_grid(rois, size, h, w, image_nchw.device)
    src = image_nchw.expand(len(rois), -1, -1, -1)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode=border, align_corners=True)
    return out.mul_(255.0).round_().clamp_(0.0, 255.0).div_(255.0)


def project(points: torch.Tensor, roi: Roi, size: int) -> torch.Tensor:
    """Landmarks [K, 3] in crop pixels (0..size) -> image pixels (z scaled like x)."""
    (tx, ty), (ux, uy), (vx, vy) = roi.corner_and_axes()
    x, y, z = points[:, 0] / size, points[:, 1] / size, points[:, 2] / size
    return torch.stack([tx + x * ux + y * vx, ty + x * uy + y * vy, z * roi.side], dim=1)
