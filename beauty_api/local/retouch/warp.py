"""Face reshaping: thinface, shrink_face and enlarge_eye as ONE smooth displacement field per face.

The field is backward (where each output pixel takes its colour from), anchored on the landmarks:
- shrink_face: the face scaled toward its oval's centroid;
- thinface: the lower face (from below the eyes to the chin) compressed toward the face's centre line
  (the line from the nose bridge, point 168, to the chin, 152), more at the jaw than at the mouth;
- enlarge_eye: each eye magnified about its iris centre (468, 473) with a radial falloff of twice
  the eye's radius; the magnification is isotropic, so irises stay round, and the iris centres do
  not move, so the distance between the pupils is kept.

Bending only the face: shrink and thinface are defined inside the face and carried outside it by a
radial remap. With rho a point's distance from the oval's centroid divided by the oval's radius in
that direction, both are evaluated at the point moved to radius `profile(rho)`: itself inside the
face, a shell just inside the oval for rho up to RING_END, then the centroid (no displacement) by
FALLOFF_END. So what sits beside the jaw (an earring, a collar, a ring drawn around the mouth) is
carried along with the jaw almost rigidly, and the field decays only farther out, where it is small
against the distance it decays over. A steep fall-off right at the jaw is what sheared such things.
Below the chin the remap would carry the chin's inward pull down the neck and narrow it: there the
field's across-the-face part fades out (`_spare_the_neck`), so the neck moves up with the chin.
The three are summed on a coarse grid (the field is smooth), multiplied by a taper that is zero at
the crop's border, upsampled, and applied with one `grid_sample`. Coordinates are crop pixels with
integer values at pixel centres. Figures (stretch ratio, fold, jaw curvature) are in
docs/local-engine.md, next to the test that measures them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from ..faces import topology as T

# Strength of each control at 100 (tuned so the measured changes clear the thresholds with room,
# while the field stays nearly conformal beside the face: see docs/local-engine.md).
SHRINK_AT_100 = 0.075  # the face is sampled from 1.085x farther out: it becomes ~0.92x as large
THIN_AT_100 = 0.12  # the jaw line is sampled from 1.11x farther from the centre line
THIN_LIFT = 0.4  # thinface's lift, as a fraction of its narrowing
EYE_AT_100 = 0.26  # the iris is sampled from 0.74x as far: ~1.35x larger, the lid contour ~1.17x

# The radial remap that carries the face's field outside it, in oval radii: identity up to KNEE_START,
# easing into a constant shell by KNEE_END, kept up to RING_END, eased to zero by FALLOFF_END.
KNEE_START, KNEE_END = 0.7, 1.2
RING_END = 1.35
FALLOFF_END = 2.7
# The neck below the chin keeps its width: the field's across part fades out from NECK_START to
# NECK_FULL chin lengths (0 at the nose bridge, 1 at the chin) and within NECK_HALF_WIDTH face
# half-widths of the centre line. Wide ramps: a steep one shears what is beside the jaw (stretch ratio).
NECK_START, NECK_FULL = 0.75, 1.55
NECK_HALF_WIDTH = (0.4, 1.15)
# How far out the crops around a face must reach, in oval radii: the tone work (smoothing, whitening,
# brows) stays inside the face; the warp reaches to the end of its fall-off.
CROP_REACH = 1.45
WARP_REACH = FALLOFF_END + 0.05
_FIELD_MAX_SIDE = 128  # the coarse field never has more samples per side than this
_ANGLE_BINS = 720
_PROFILE_STEP = 0.005


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


@cache
def _profile_table() -> torch.Tensor:
    """profile(rho) sampled every _PROFILE_STEP up to FALLOFF_END: the integral of a slope that is 1
    up to KNEE_START, eases (cosine) to 0 by KNEE_END, stays 0 to RING_END, and then dips as a
    sine-squared bump whose area returns the profile to exactly 0 at FALLOFF_END."""
    rho = np.arange(0.0, FALLOFF_END + _PROFILE_STEP, _PROFILE_STEP)
    knee = np.clip((rho - KNEE_START) / (KNEE_END - KNEE_START), 0.0, 1.0)
    slope = 0.5 * (1.0 + np.cos(math.pi * knee))
    fall = np.clip((rho - RING_END) / (FALLOFF_END - RING_END), 0.0, 1.0)
    bump = np.sin(math.pi * fall) ** 2
    shell = KNEE_START + 0.5 * (KNEE_END - KNEE_START)  # the integral of the slope up to KNEE_END
    slope = slope - bump * shell / (0.5 * (FALLOFF_END - RING_END))
    table = np.concatenate([[0.0], np.cumsum(0.5 * (slope[1:] + slope[:-1]) * _PROFILE_STEP)])
    table[-1] = 0.0
    return torch.from_numpy(table.clip(0.0)).float()


def _profile(rho: torch.Tensor) -> torch.Tensor:
    """The radius (in oval radii) at which the face's field is evaluated for a point at `rho`."""
    table = _profile_table().to(rho.device)
    position = (rho / _PROFILE_STEP).clamp(0.0, table.numel() - 1.001)
    low = position.floor()
    i0 = low.long()
    frac = position - low
    return table[i0] * (1 - frac) + table[i0 + 1] * frac


def _oval_radius_lookup(points: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """The oval's radius about `centre` at _ANGLE_BINS evenly spaced angles (linear in angle, periodic)."""
    offsets = (points - centre).double().cpu().numpy()
    theta = np.arctan2(offsets[:, 1], offsets[:, 0])
    radius = np.hypot(offsets[:, 0], offsets[:, 1])
    bins = np.linspace(-math.pi, math.pi, _ANGLE_BINS, endpoint=False)
    table = np.interp(bins, theta, radius, period=2 * math.pi)
    return torch.from_numpy(table).to(device=points.device, dtype=torch.float32)


def normalised_radius(xy: torch.Tensor, oval: torch.Tensor) -> torch.Tensor:
    """|x - c| divided by the oval's radius in x's direction (c: the oval's centroid): 1 on the oval."""
    centre = oval.mean(0)
    table = _oval_radius_lookup(oval, centre)
    d = xy - centre
    theta = torch.atan2(d[..., 1], d[..., 0])
    position = (theta + math.pi) / (2 * math.pi) * _ANGLE_BINS
    low = position.floor()
    frac = position - low
    i0 = low.long() % _ANGLE_BINS
    i1 = (i0 + 1) % _ANGLE_BINS
    radius = table[i0] * (1 - frac) + table[i1] * frac
    return d.norm(dim=-1) / radius.clamp_min(1e-3)


def crop_box(
    landmarks: torch.Tensor, height: int, width: int, reach: float = CROP_REACH
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), x1/y1 exclusive: the oval scaled `reach` times about its centroid, clipped to
    the image. CROP_REACH: where the tone work may touch; WARP_REACH: where the warp may move pixels."""
    oval = landmarks[list(T.FACE_OVAL), :2].float()
    centre = oval.mean(0)
    far = centre + (oval - centre) * reach
    lo, hi = far.amin(0), far.amax(0)
    x0, y0 = max(0, math.floor(lo[0].item())), max(0, math.floor(lo[1].item()))
    x1, y1 = min(width, math.ceil(hi[0].item()) + 1), min(height, math.ceil(hi[1].item()) + 1)
    return x0, y0, x1, y1


def _face_field(xy: torch.Tensor, lm: torch.Tensor, amounts: WarpAmounts) -> torch.Tensor:
    """shrink_face + thinface at points `xy` [..., 2] inside the face (no fall-off)."""
    oval = lm[list(T.FACE_OVAL)]
    centre = oval.mean(0)
    field = torch.zeros_like(xy)
    if amounts.shrink_face > 0:
        field += (xy - centre) * (SHRINK_AT_100 * amounts.shrink_face)
    if amounts.thinface > 0:
        top, chin = lm[168], lm[152]
        length = (chin - top).norm().clamp_min(1.0)
        down = (chin - top) / length
        across = torch.stack([-down[1], down[0]])
        u = (xy - top) @ across  # signed distance from the centre line
        v = ((xy - top) @ down) / length  # 0 at the eyes' level, 1 at the chin
        half_width = ((oval - top) @ across).abs().max().clamp_min(1.0)
        lower = _smoothstep(-0.3, 0.7, v)
        toward_jaw = _smoothstep(0.0, 1.0, u.abs() / half_width)
        strength = THIN_AT_100 * amounts.thinface
        field += (u * strength * lower * toward_jaw).unsqueeze(-1) * across
        # and a little upward, toward the eyes: a narrowing with a lift is closer to a similarity, so
        # what sits beside the jaw is sheared less for the same slimming
        field += (v * length * strength * THIN_LIFT * lower).unsqueeze(-1) * down
    return field


def _spare_the_neck(field: torch.Tensor, xy: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
    """`field` [..., 2] at `xy` with its across-the-face part faded out below the chin (see NECK_START,
    NECK_HALF_WIDTH): the neck moves up with the chin instead of being squeezed by its inward pull."""
    top, chin = lm[168], lm[152]
    length = (chin - top).norm().clamp_min(1.0)
    down = (chin - top) / length
    across = torch.stack([-down[1], down[0]])
    oval = lm[list(T.FACE_OVAL)]
    half_width = ((oval - top) @ across).abs().max().clamp_min(1.0)
    u = ((xy - top) @ across) / half_width
    v = ((xy - top) @ down) / length
    below = _smoothstep(NECK_START, NECK_FULL, v)
    inside = 1.0 - _smoothstep(NECK_HALF_WIDTH[0], NECK_HALF_WIDTH[1], u.abs())
    sideways = field @ across
    return field - (below * inside * sideways).unsqueeze(-1) * across


def displacement_field(
    landmarks: torch.Tensor, height: int, width: int, amounts: WarpAmounts, *, border: float
) -> torch.Tensor:
    """The backward displacement [height, width, 2] (pixels, x then y) of one face on its crop.

    `landmarks` are in crop pixels; `border` is the width (px) of the taper to zero at the crop's edge
    (it matters only where the image's edge clips the crop: elsewhere the field is zero there already).
    """
    device = landmarks.device
    step = max(1.0, max(height, width) / _FIELD_MAX_SIDE, min(4.0, max(height, width) / 64))
    gh, gw = max(2, math.ceil((height - 1) / step) + 1), max(2, math.ceil((width - 1) / step) + 1)
    ys = torch.linspace(0, height - 1, gh, device=device)
    xs = torch.linspace(0, width - 1, gw, device=device)
    xy = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [gh, gw, 2]
    lm = landmarks[:, :2].float()
    field = torch.zeros_like(xy)

    if amounts.shrink_face > 0 or amounts.thinface > 0:
        oval = lm[list(T.FACE_OVAL)]
        centre = oval.mean(0)
        rho = normalised_radius(xy, oval)
        radius = _profile(rho)
        shell = _profile(torch.tensor(RING_END))
        scale = radius.clamp_max(shell) / rho.clamp_min(1e-6)
        decay = torch.where(rho > RING_END, radius / shell, torch.ones_like(radius))
        face = _face_field(centre + (xy - centre) * scale.unsqueeze(-1), lm, amounts) * decay.unsqueeze(-1)
        field += _spare_the_neck(face, xy, lm)

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
