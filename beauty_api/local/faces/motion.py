"""How far a face moved between two frames, from the pixels (phase correlation), to steady the landmarks.

The mesh's landmarks wobble by a few tenths of a pixel from frame to frame even when only the camera
moves. The image itself says precisely how the face moved: the tracker smooths landmarks in a frame
that moves with the face (tracking.py), so the mesh's own noise is averaged away while real motion is
followed at once. Same window, same pixels: the shift is exactly 0 for identical frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

PATCH = 128  # the window is reduced by an integer factor to at most this many px per side
WINDOW_SCALE = 1.2  # the window's side, in face sizes


def window(box: tuple[float, float, float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """An integer square (x0, y0, x1, y1) around a face box, inside the image."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = WINDOW_SCALE * max(box[2] - box[0], box[3] - box[1]) / 2
    x0, y0 = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
    return x0, y0, min(width, math.ceil(cx + half)), min(height, math.ceil(cy + half))


def patch(image_nchw: torch.Tensor, win: tuple[int, int, int, int]) -> tuple[torch.Tensor, int]:
    """The window's luminance, box-reduced to at most PATCH px, and the reduction factor."""
    x0, y0, x1, y1 = win
    gray = image_nchw[0, :3, y0:y1, x0:x1].mean(0, keepdim=True)[None].float()
    step = max(1, math.ceil(max(x1 - x0, y1 - y0) / PATCH))
    return (F.avg_pool2d(gray, step) if step > 1 else gray)[0, 0], step


def shift(before: torch.Tensor, after: torch.Tensor, step: int) -> tuple[float, float] | None:
    """The translation (dx, dy) in image px that carries `before` onto `after`, or None when the two
    patches do not correlate clearly (the face turned, was covered, or left)."""
    if before.shape != after.shape or min(before.shape) < 8:
        return None
    if torch.equal(before, after):
        return 0.0, 0.0  # a still frame: exactly still (no rounding noise of the FFT)
    h, w = before.shape
    taper = torch.hann_window(h, periodic=False)[:, None] * torch.hann_window(w, periodic=False)[None, :]
    a, b = (before - before.mean()) * taper, (after - after.mean()) * taper
    cross = torch.fft.rfft2(b) * torch.fft.rfft2(a).conj()
    surface = torch.fft.irfft2(cross / cross.abs().clamp_min(1e-9), s=(h, w))
    peak = int(surface.argmax())
    py, px = divmod(peak, w)
    if float(surface[py, px]) < 0.1:
        return None

    def refine(centre: int, size: int, at: Callable[[int], float]) -> float:
        # the peak of phase correlation is a sampled sinc: the larger neighbour says where the
        # true peak lies (Foroosh et al. 2002), exactly 0 for a peak with equal neighbours
        left, mid, right = at((centre - 1) % size), at(centre), at((centre + 1) % size)
        if right > left:
            offset = max(0.0, right) / (max(0.0, right) + mid)
        elif left > right:
            offset = -max(0.0, left) / (max(0.0, left) + mid)
        else:
            offset = 0.0
        value = centre + offset
        return value - size if value > size / 2 else value

    dx = refine(px, w, lambda i: float(surface[py, i]))
    dy = refine(py, h, lambda i: float(surface[i, px]))
    return dx * step, dy * step
