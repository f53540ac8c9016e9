"""Skin tone: smoothing (an edge-preserving guided filter with texture blended back) and whitening
(a lightness curve in CIE L*a*b*), each applied inside a soft skin mask.

Smoothing uses the fast guided filter (kornia's `guided_blur` with `subsample`): its linear
coefficients are computed on a decimated copy and applied to the full-resolution crop, so edges stay
sharp at any size while the cost follows the face, not the pixel count. A fraction of the removed
detail is added back: pores stay, blotches go, and skin does not look plastic.

Whitening is a per-colour mapping, so it is baked into a 17^3 LUT per strength (computed once with
kornia's Lab conversion) and applied to the 8-bit crop by Pillow, like the looks.
"""

from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

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
    import kornia.filters

    if amount <= 0:
        return crop
    radius = max(1, round(SMOOTH_RADIUS * face_size))
    subsample = max(1, math.ceil(face_size / SMOOTH_WORK_SIZE))
    channels = crop.transpose(0, 1)  # [3, 1, H, W]: each channel is its own guide (cheap, no 3x3 solve)
    extra: dict[str, Any] = {"separable": True} if _has_separable() else {}  # kornia >= 0.9: faster
    base = kornia.filters.guided_blur(
        channels, channels, 2 * radius + 1, SMOOTH_EPS, subsample=subsample, **extra
    )
    base = base.transpose(0, 1)
    smoothed = base + TEXTURE_KEPT * (crop - base)
    return crop + (amount * mask) * (smoothed - crop)


@cache
def _has_separable() -> bool:
    """Whether this kornia's guided_blur takes `separable` (0.9 on); 0.7.1 to 0.8 give the same blur."""
    import inspect

    import kornia.filters

    return "separable" in inspect.signature(kornia.filters.guided_blur).parameters


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
