"""Face reshaping: thinface, shrink_face and enlarge_eye as ONE smooth displacement field per face.

Each control contributes a backward displacement (where each output pixel takes its colour from),
anchored on the landmarks and falling off smoothly to zero:
- shrink_face: the face oval scaled toward its centroid; the scale fades out between 0.85 and 1.35
  times the oval's own radius in each direction, so the background further out never moves;
- thinface: the lower face (from below the eyes to the chin) compressed toward the face's centre line
  (the line from the nose bridge, point 168, to the chin, 152), more at the jaw than at the mouth;
- enlarge_eye: each eye magnified about its iris centre (468, 473) with a radial falloff of twice
  the eye's radius; the magnification is isotropic, so irises stay round, and the iris centres do
  not move, so the distance between the pupils is kept.
The three are summed on a coarse grid (the field is smooth, so a quarter of the crop's resolution is
indistinguishable), multiplied by a taper that is zero at the crop's border, upsampled, and applied
with one `grid_sample`. Coordinates are crop pixels with integer values at pixel centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..faces import topology as T

# Strength of each control at 100 (tuned so the measured changes clear the thresholds with room).
SHRINK_AT_100 = 0.12  # the oval is sampled from 1.12x farther out: the face becomes ~0.89x as large
THIN_AT_100 = 0.2  # the jaw line is sampled from 1.2x farther from the centre line
EYE_AT_100 = 0.26  # the iris is sampled from 0.74x as far: ~1.35x larger, the lid contour ~1.17x

# The falloff of shrink_face and thinface, in units of the oval's radius in that direction.
FADE_START, FADE_END = 0.85, 1.35
# How far out the crop around a face must reach, in oval radii, for every effect to fit inside it.
CROP_REACH = 1.45
_FIELD_MAX_SIDE = 192  # the coarse field never has more samples per side than this
_ANGLE_BINS = 720


@dataclass(frozen=True)
class WarpAmounts:
    """The three geometric controls as fractions 0..1."""

    thinface: float = 0.0
    shrink_face: float = 0.0
    enlarge_eye: float = 0.0

    @property
    def any(self) -> bool:
        return self.thinface > 0 or self.shrink_face > 0 or self.enlarge_eye > 0


def _smoothstep(edge0: float, edge1: float, x: torch.Tensor) -> torch.Tensor:
    t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _oval_radius_lookup(points: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """The oval's radius about `centre` at _ANGLE_BINS evenly spaced angles (linear in angle, periodic)."""
    offsets = (points - centre).double().cpu().numpy()
    theta = np.arctan2(offsets[:, 1], offsets[:, 0])
    radius = np.hypot(offsets[:, 0], offsets[:, 1])
    bins = np.linspace(-math.pi, math.pi, _ANGLE_BINS, endpoint=False)
    table = np.interp(bins, theta, radius, period=2 * math.pi)
    return torch.from_numpy(table).to(device=points.device, dtype=torch.float32)


def _normalised_radius(xy: torch.Tensor, centre: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """|x - c| divided by the oval's radius in x's direction: 1 on the oval, 0 at its centroid."""
    d = xy - centre
    theta = torch.atan2(d[..., 1], d[..., 0])
    position = (theta + math.pi) / (2 * math.pi) * _ANGLE_BINS
    low = position.floor()
    frac = position - low
    i0 = low.long() % _ANGLE_BINS
    i1 = (i0 + 1) % _ANGLE_BINS
    radius = table[i0] * (1 - frac) + table[i1] * frac
    return d.norm(dim=-1) / radius.clamp_min(1e-3)


def crop_box(landmarks: torch.Tensor, height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), x1/y1 exclusive: the region a face's retouch may touch, clipped to the image."""
    oval = landmarks[list(T.FACE_OVAL), :2].float()
    centre = oval.mean(0)
    reach = centre + (oval - centre) * CROP_REACH
    lo, hi = reach.amin(0), reach.amax(0)
    x0, y0 = max(0, math.floor(lo[0].item())), max(0, math.floor(lo[1].item()))
    x1, y1 = min(width, math.ceil(hi[0].item()) + 1), min(height, math.ceil(hi[1].item()) + 1)
    return x0, y0, x1, y1


def displacement_field(
    landmarks: torch.Tensor, height: int, width: int, amounts: WarpAmounts, *, border: float
) -> torch.Tensor:
    """The backward displacement [height, width, 2] (pixels, x then y) of one face on its crop.

    `landmarks` are in crop pixels; `border` is the width (px) of the taper to zero at the crop's edge
    (except where the crop edge is the image edge, the taper is what keeps content from being pulled in).
    """
    device = landmarks.device
    step = max(1.0, max(height, width) / _FIELD_MAX_SIDE, min(4.0, max(height, width) / 64))
    gh, gw = max(2, math.ceil((height - 1) / step) + 1), max(2, math.ceil((width - 1) / step) + 1)
    ys = torch.linspace(0, height - 1, gh, device=device)
    xs = torch.linspace(0, width - 1, gw, device=device)
    xy = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [gh, gw, 2]
    lm = landmarks[:, :2].float()
    field = torch.zeros_like(xy)

    oval = lm[list(T.FACE_OVAL)]
    centre = oval.mean(0)
    rho = _normalised_radius(xy, centre, _oval_radius_lookup(oval, centre))
    inside = 1.0 - _smoothstep(FADE_START, FADE_END, rho)

    if amounts.shrink_face > 0:
        field += (xy - centre) * (SHRINK_AT_100 * amounts.shrink_face * inside).unsqueeze(-1)

    if amounts.thinface > 0:
        top, chin = lm[168], lm[152]
        length = (chin - top).norm().clamp_min(1.0)
        down = (chin - top) / length
        across = torch.stack([-down[1], down[0]])
        u = (xy - top) @ across  # signed distance from the centre line
        v = ((xy - top) @ down) / length  # 0 at the eyes' level, 1 at the chin
        half_width = ((oval - top) @ across).abs().max().clamp_min(1.0)
        lower = _smoothstep(0.05, 0.45, v)
        toward_jaw = _smoothstep(0.0, 0.6, u.abs() / half_width)
        weight = THIN_AT_100 * amounts.thinface * lower * toward_jaw * inside
        field += (u * weight).unsqueeze(-1) * across

    if amounts.enlarge_eye > 0:
        for contour, iris in ((T.RIGHT_EYE, T.RIGHT_IRIS_CENTER), (T.LEFT_EYE, T.LEFT_IRIS_CENTER)):
            eye_centre = lm[iris]
            eye_radius = (lm[list(contour)] - eye_centre).norm(dim=-1).max().clamp_min(1.0)
            offset = xy - eye_centre
            r = offset.norm(dim=-1) / (2.0 * eye_radius)
            falloff = (1.0 - r * r).clamp_min(0.0) ** 2
            field -= offset * (EYE_AT_100 * amounts.enlarge_eye * falloff).unsqueeze(-1)

    edge = torch.minimum(
        torch.minimum(xy[..., 0], width - 1 - xy[..., 0]), torch.minimum(xy[..., 1], height - 1 - xy[..., 1])
    )
    field *= _smoothstep(0.0, max(border, 1.0), edge).unsqueeze(-1)
    if (gh, gw) == (height, width):
        return field
    up = F.interpolate(
        field.permute(2, 0, 1).unsqueeze(0), size=(height, width), mode="bilinear", align_corners=True
    )
    return up[0].permute(1, 2, 0)


def apply_displacement(crop: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """Resample `crop` [1, C, H, W] so that output(x) = input(x + field(x)) (bilinear, edges clamped)."""
    _, _, height, width = crop.shape
    ys = torch.arange(height, device=crop.device, dtype=torch.float32)
    xs = torch.arange(width, device=crop.device, dtype=torch.float32)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    source = base + field
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=crop.device)
    grid = (source * scale - 1.0).unsqueeze(0)
    return F.grid_sample(crop, grid, mode="bilinear", padding_mode="border", align_corners=True)
