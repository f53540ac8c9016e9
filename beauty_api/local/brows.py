"""Eyebrow removal: fill each brow from its border (push-pull diffusion), then give the fill skin texture.

Push-pull inpainting: average the known pixels (outside the brow) down an image pyramid until every
coarse pixel has a value, then come back up, filling each level's unknown part from the coarser level.
It is the steady state of diffusion from the hole's border, in a handful of cheap poolings. A fill is
flat, which reads as make-up rather than skin, so the fine detail of the skin just above the brow
(the forehead, shifted down by one and a half brow heights) is added to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEXTURE_STRENGTH = 0.7  # how much of the forehead's fine detail is lent to the fill


def fill_from_border(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """`image` [1, C, H, W] with the pixels where `hole` [H, W] > 0.5 replaced by a smooth fill."""
    known = (hole <= 0.5).to(image.dtype)[None, None]
    levels = [(image * known, known)]
    while min(levels[-1][1].shape[-2:]) > 1 and bool((levels[-1][1] == 0).any()):
        values, weights = levels[-1]
        levels.append((F.avg_pool2d(values, 2, ceil_mode=True), F.avg_pool2d(weights, 2, ceil_mode=True)))
    values, weights = levels[-1]
    filled = values / weights.clamp_min(1e-6)
    for values, weights in reversed(levels[:-1]):
        up = F.interpolate(filled, size=values.shape[-2:], mode="bilinear", align_corners=False)
        # values are premultiplied by the known fraction: known pixels stay, holes take the coarser estimate
        filled = values + (1.0 - weights) * up
    return filled


def _fine_detail(image: torch.Tensor) -> torch.Tensor:
    """The image minus a 5x5 box blur: the texture (pores, grain) without the shading."""
    blurred = F.avg_pool2d(F.pad(image, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return image - blurred


def remove_brows(crop: torch.Tensor, mask: torch.Tensor, amount: float, brow_height: float) -> torch.Tensor:
    """Blend `crop` [1, 3, H, W] toward a skin fill of the brows inside the soft `mask` [H, W] by `amount`."""
    if amount <= 0:
        return crop
    rows = torch.nonzero(mask.amax(dim=1) > 0.02).flatten()
    cols = torch.nonzero(mask.amax(dim=0) > 0.02).flatten()
    if rows.numel() == 0:
        return crop
    pad = 4
    y0, y1 = max(0, int(rows[0]) - pad), min(crop.shape[-2], int(rows[-1]) + pad + 1)
    x0, x1 = max(0, int(cols[0]) - pad), min(crop.shape[-1], int(cols[-1]) + pad + 1)
    patch = crop[..., y0:y1, x0:x1]
    hole = mask[y0:y1, x0:x1] > 0.02
    fill = fill_from_border(patch, hole.float())
    shift = max(1, round(1.5 * brow_height))
    source_top = max(0, y0 - shift)
    donor = crop[..., source_top : source_top + (y1 - y0), x0:x1]
    if donor.shape[-2] == y1 - y0:
        fill = fill + TEXTURE_STRENGTH * _fine_detail(donor)
    out = crop.clone()
    weight = amount * mask[y0:y1, x0:x1]
    out[..., y0:y1, x0:x1] = patch + weight * (fill.clamp(0.0, 1.0) - patch)
    return out
