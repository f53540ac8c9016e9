"""Skin tone: smoothing (an edge-preserving guided filter with texture blended back) and whitening
(a lightness curve in CIE L*a*b*), each applied inside a soft skin mask.

Smoothing uses the fast guided filter (He and Sun): each channel guides itself, its linear
coefficients are computed on a decimated copy of a large face and applied to the full-resolution
crop, so edges stay sharp at any size while the cost follows the face, not the pixel count. Its box
means are running sums (the cost does not grow with the radius): written here rather than taken
from kornia's `guided_blur`, which gives the same blur (tested) at several times the cost on a
face-sized crop. A fraction of the removed detail is added back: pores stay, blotches go, and skin
does not look plastic.

Whitening is a per-colour mapping, so it is baked into a 17^3 LUT per strength (computed once with
kornia's Lab conversion) and applied to the 8-bit crop by Pillow, like the looks.
"""

from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from PIL import ImageFilter

# smoothing
SMOOTH_RADIUS = 0.028  # guided-filter window radius, as a fraction of the face's size
SMOOTH_EPS = 0.015  # regularisation (intensity^2): variations below ~0.1 are smoothed, edges above kept
TEXTURE_KEPT = 0.2  # fraction of the removed fine detail added back at full strength
SMOOTH_WORK_SIZE = 320  # the filter's coefficients are computed with the face about this many px wide

# whitening, at 100
WHITEN_LIFT = 1.6  # strength of the log-like lightness curve (mid-tones gain the most)
WHITEN_YELLOW_CUT = 0.12  # fraction of b* (yellow) removed
WHITEN_CHROMA_KEPT = 0.85  # a* and b* are scaled by this (skin a touch paler, not pinker)
LUT_SIZE = 17


def smooth_skin(crop: torch.Tensor, mask: torch.Tensor, amount: float, face_size: float) -> torch.Tensor:
    """Edge-preserving smoothing of `crop` [1, 3, H, W] (0..1) inside `mask` [H, W], `amount` 0..1."""
    if amount <= 0:
        return crop
    radius = max(1, round(SMOOTH_RADIUS * face_size))
    subsample = max(1, math.ceil(face_size / SMOOTH_WORK_SIZE))
    base = self_guided_filter(crop[0], radius, SMOOTH_EPS, subsample)[None]
    smoothed = base + TEXTURE_KEPT * (crop - base)
    return crop + (amount * mask) * (smoothed - crop)


def self_guided_filter(image: torch.Tensor, radius: int, eps: float, subsample: int = 1) -> torch.Tensor:
    """The guided filter of each channel of `image` [C, H, W] by itself: flat areas smoothed, edges
    (variation above about sqrt(eps)) kept. With `subsample` > 1 its coefficients come from every
    `subsample`-th pixel and are upsampled (the fast guided filter)."""
    low, r = image, radius
    if subsample > 1:
        first = (subsample - 1) // 2
        low, r = image[:, first::subsample, first::subsample], max(1, round(radius / subsample))
    channels = low.shape[0]
    means = box_mean(torch.cat([low, low * low]), r)
    mean = means[:channels]
    variance = (means[channels:] - mean * mean).clamp_min(0.0)
    a = variance / (variance + eps)
    coefficients = box_mean(torch.cat([a, mean - a * mean]), r)
    if subsample > 1:
        coefficients = F.interpolate(
            coefficients[None], size=image.shape[-2:], mode="bilinear", align_corners=False
        )[0]
    return coefficients[:channels] * image + coefficients[channels:]


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The mean of the (2 radius + 1)^2 window around each pixel of `x` [C, H, W], edge pixels repeated
    outside. Running sums along each axis: the same cost for any radius."""
    size = 2 * radius + 1

    def along_rows(t: torch.Tensor) -> torch.Tensor:
        sums = F.pad(t, (radius + 1, radius), mode="replicate").cumsum(-1)
        return (sums[..., size:] - sums[..., :-size]) / size

    return along_rows(along_rows(x).transpose(-1, -2)).transpose(-1, -2)


def _lab_curve(lab: torch.Tensor, amount: float) -> torch.Tensor:
    """The whitening curve on [..., 3] Lab values: L lifted most in mid-tones, yellow reduced a little."""
    lightness = lab[..., 0] / 100.0
    lift = WHITEN_LIFT * amount
    curved = torch.log1p(lift * lightness) / np.log1p(lift) if lift > 0 else lightness
    a = lab[..., 1] * (1.0 - (1.0 - WHITEN_CHROMA_KEPT) * amount)
    b = lab[..., 2] * (1.0 - (1.0 - WHITEN_CHROMA_KEPT) * amount)
    b = torch.where(b > 0, b * (1.0 - WHITEN_YELLOW_CUT * amount), b)
    return torch.stack([curved * 100.0, a, b], dim=-1)


@cache
def whitening_table(level: int) -> np.ndarray:
    """The whitening LUT for slider `level` (1..100): [17, 17, 17, 3] float32 (blue, green, red, channel)."""
    import kornia.color

    axis = torch.linspace(0.0, 1.0, LUT_SIZE, dtype=torch.float64)
    blue, green, red = torch.meshgrid(axis, axis, axis, indexing="ij")
    rgb = torch.stack([red, green, blue], dim=0).reshape(1, 3, LUT_SIZE**2, LUT_SIZE).float()
    lab = kornia.color.rgb_to_lab(rgb).permute(0, 2, 3, 1)
    out = kornia.color.lab_to_rgb(_lab_curve(lab, level / 100.0).permute(0, 3, 1, 2), clip=True)
    table = out.permute(0, 2, 3, 1).reshape(LUT_SIZE, LUT_SIZE, LUT_SIZE, 3)
    return table.clamp(0.0, 1.0).numpy().astype(np.float32)


@cache
def _whitening_filter(level: int) -> ImageFilter.Color3DLUT:
    from .looks import pillow_lut

    return pillow_lut(whitening_table(level))


def whiten_u8(rgb: np.ndarray, level: int) -> np.ndarray:
    """The whitening curve at slider `level` on an [H, W, 3] uint8 crop (the whole crop; mask it after)."""
    from .looks import apply_table

    return rgb if level <= 0 else apply_table(rgb, _whitening_filter(level))
