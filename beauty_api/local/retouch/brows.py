"""Eyebrow removal: fill each brow from its border (push-pull diffusion), then give the fill skin texture.

Push-pull inpainting: average the known pixels (outside the brow) down an image pyramid until every
coarse pixel has a value, then come back up, filling each level's unknown part from the coarser level.
It is the steady state of diffusion from the hole's border, in a handful of cheap poolings. A fill is
flat, which reads as make-up rather than skin, so the fine detail of a patch of cheek is added to it.
Only pixels darker than the fill are the brow's hair and are replaced: the skin between the hairs,
highlights and light strands crossing the brow are kept, and the fill is never lighter on average
than the skin around it (an area lighter than the skin is an inverted brow, not a removed one).

Dark strands are kept by where they go: a hair strand, a lash or a glasses rim that crosses the brow
is a thin dark line that carries on well outside it, which brow hair does not. `crossing_lines`
finds thin dark ridges in eight orientations and keeps those reached, along ridges of about the same
orientation, from ridges lying well outside the brow (a geodesic reconstruction).
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F

TEXTURE_STRENGTH = 0.7  # how much of the forehead's fine detail is lent to the fill
# the lent detail is clipped to grain (0..1): a wrinkle, lash or rim edge in the cheek patch would
# otherwise be copied into the fill as a thin scratch-like line
TEXTURE_LIMIT = 0.02
# Only what is darker than the fill is brow: a pixel this much darker (0..1 luma) is replaced in full,
# one at the fill's level or lighter (skin between the hairs, a blond strand, a highlight) is kept.
HAIR_DARKER = (0.01, 0.06)
_LUMA = (0.299, 0.587, 0.114)
RIDGE_DARKER = 0.06  # a ridge: darker (0..1 luma) than the pixels on both sides of it by this much
RIDGE_WORK_SIZE = 64  # lines are looked for with the face at most this big (px)
_ORIENTATIONS = 8


def fill_from_border(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """`image` [1, C, H, W] with the pixels where `hole` [H, W] > 0.5 replaced by a smooth fill."""
    known = (hole <= 0.5).to(image.dtype)[None, None]
    levels = [(image * known, known)]
    while min(levels[-1][1].shape[-2:]) > 1 and bool((levels[-1][1] == 0).any()):
        values, weights = levels[-1]
        levels.append((F.avg_pool2d(values, 2, ceil_mode=True), F.avg_pool2d(weights, 2, ceil_mode=True)))
    values, weights = levels[-1]
    if not bool((weights > 0).any()):
        return image  # nothing known to fill from
    # the coarsest level may still have holes (a very wide hole): give them the known pixels' mean
    mean = values.sum(dim=(-2, -1), keepdim=True) / weights.sum(dim=(-2, -1), keepdim=True)
    filled = torch.where(weights > 0, values / weights.clamp_min(1e-6), mean)
    for values, weights in reversed(levels[:-1]):
        up = F.interpolate(filled, size=values.shape[-2:], mode="bilinear", align_corners=False)
        # values are premultiplied by the known fraction: known pixels stay, holes take the coarser estimate
        filled = values + (1.0 - weights) * up
    return filled


def _fine_detail(image: torch.Tensor) -> torch.Tensor:
    """The image minus a 5x5 box blur: the texture (pores, grain) without the shading."""
    blurred = F.avg_pool2d(F.pad(image, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return image - blurred


def _box(mask: torch.Tensor, pad: int) -> tuple[int, int, int, int] | None:
    rows = torch.nonzero(mask.amax(dim=1) > 0.02).flatten()
    cols = torch.nonzero(mask.amax(dim=0) > 0.02).flatten()
    if rows.numel() == 0:
        return None
    height, width = mask.shape
    y0, y1 = max(0, int(rows[0]) - pad), min(height, int(rows[-1]) + pad + 1)
    x0, x1 = max(0, int(cols[0]) - pad), min(width, int(cols[-1]) + pad + 1)
    return x0, y0, x1, y1


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """A bool [..., H, W] grown by one pixel in the 8 directions (cheaper than a 3x3 max-pool)."""
    rows = mask.clone()
    rows[..., 1:, :] |= mask[..., :-1, :]
    rows[..., :-1, :] |= mask[..., 1:, :]
    out = rows.clone()
    out[..., :, 1:] |= rows[..., :, :-1]
    out[..., :, :-1] |= rows[..., :, 1:]
    return out


@cache
def _ridge_kernels(widths: tuple[int, ...]) -> torch.Tensor:
    """[8 * (1 + 2 * len(widths)), 1, K, K]: per orientation, the mean of 3 taps along the line on
    its centre, then on each width's two sides (K: twice the reach plus one)."""
    reach = max(widths) + 2
    kernels = torch.zeros(_ORIENTATIONS, 1 + 2 * len(widths), 2 * reach + 1, 2 * reach + 1)
    for k in range(_ORIENTATIONS):
        tx, ty = math.cos(math.pi * k / _ORIENTATIONS), math.sin(math.pi * k / _ORIENTATIONS)
        sides = [(0.0, 0.0)] + [(s * w * -ty, s * w * tx) for w in widths for s in (1, -1)]
        for role, (nx, ny) in enumerate(sides):
            for step in (-1.5, 0.0, 1.5):
                kernels[k, role, reach + round(ny + step * ty), reach + round(nx + step * tx)] += 1.0 / 3.0
    return kernels.view(-1, 1, 2 * reach + 1, 2 * reach + 1)


def _ridges(luma: torch.Tensor, widths: tuple[int, ...]) -> torch.Tensor:
    """[8, H, W]: per orientation, whether each pixel of `luma` [H, W] is on a thin dark line there:
    the line's mean over 3 taps along it darker by RIDGE_DARKER than each side's, at some half-width."""
    kernels = _ridge_kernels(widths).to(luma.device)
    reach = kernels.shape[-1] // 2
    padded = F.pad(luma[None, None], (reach,) * 4, mode="replicate")
    taps = F.conv2d(padded, kernels)[0].view(_ORIENTATIONS, 1 + 2 * len(widths), *luma.shape)
    sides = torch.minimum(taps[:, 1::2], taps[:, 2::2])  # [8, widths, H, W]
    return (sides - taps[:, :1]).amax(1) > RIDGE_DARKER


def crossing_lines(luma: torch.Tensor, brow: torch.Tensor, face_size: float) -> torch.Tensor:
    """[H, W] bool: the thin dark lines in `luma` [H, W] that reach into `brow` [H, W] (bool) from well
    outside it (3% of `face_size` and more): strands, lashes, rims. Brow hair, which ends in the brow,
    is not among them. Found on a copy with the face at most RIDGE_WORK_SIZE px (darkest pixel kept)."""
    factor = max(1, math.ceil(face_size / RIDGE_WORK_SIZE))
    height, width = luma.shape
    if factor > 1:
        luma = -F.max_pool2d(-luma[None, None], factor, ceil_mode=True)[0, 0]
        brow = F.max_pool2d(brow[None, None].float(), factor, ceil_mode=True)[0, 0] > 0
    ridges = _ridges(luma, (1, 2))
    near = brow
    for _ in range(max(2, round(0.03 * face_size / factor))):
        near = _dilate(near)
    reached = ridges & ~near
    if not bool(reached.any()):
        return torch.zeros(height, width, dtype=torch.bool, device=luma.device)
    # geodesic reconstruction: grow along each orientation's own ridges until nothing changes
    grown = reached
    for _ in range(0, luma.shape[0] + luma.shape[1], 4):
        before = grown
        for _ in range(4):
            grown = _dilate(grown) & ridges
        if torch.equal(grown, before):
            break
    kept = grown.any(0)
    if factor > 1:
        kept = kept.repeat_interleave(factor, 0).repeat_interleave(factor, 1)[:height, :width]
    return _dilate(kept)


def lines_to_keep(crop: torch.Tensor, mask: torch.Tensor, face_size: float) -> torch.Tensor | None:
    """[H, W] bool: the `crossing_lines` of the brows in `mask` [H, W] (soft) within 10% of `face_size`
    around them in `crop` [1, 3, H, W]; None where the mask is empty. Both brows in one pass."""
    box = _box(mask, round(0.1 * face_size))
    if box is None:
        return None
    x0, y0, x1, y1 = box
    luma = torch.tensor(_LUMA, dtype=crop.dtype, device=crop.device).view(1, 3, 1, 1)
    keep = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)
    around = (crop[..., y0:y1, x0:x1] * luma).sum(1)[0]
    keep[y0:y1, x0:x1] = crossing_lines(around, mask[y0:y1, x0:x1] > 0.02, face_size)
    return keep


def remove_brow(
    crop: torch.Tensor,
    mask: torch.Tensor,
    amount: float,
    *,
    skin_colour: torch.Tensor,
    texture_from: tuple[float, float],
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Blend `crop` [1, 3, H, W] toward a skin fill of one brow inside the soft `mask` [H, W] by `amount`.

    Only the brow's hair is replaced: pixels darker than the fill (HAIR_DARKER); the skin between
    the hairs keeps its own texture, and lighter strands crossing the brow stay, as do the pixels
    where `keep` [H, W] (bool) is set: the dark lines that cross it (`lines_to_keep`).

    Only skin-coloured pixels around the brow feed the fill (a fringe of hair just above a brow
    must not be smeared into it): those within 0.12 of `skin_colour` [3] in every channel's mean.
    The fill gets the fine detail of the patch of the same size centred on `texture_from` (x, y),
    a point on the same side's cheek.
    """
    if amount <= 0:
        return crop
    pad = max(4, round(0.25 * (mask.shape[0] + mask.shape[1]) / 20))
    box = _box(mask, pad)
    if box is None:
        return crop
    x0, y0, x1, y1 = box
    patch = crop[..., y0:y1, x0:x1]
    hole = mask[y0:y1, x0:x1] > 0.02
    unknown = hole | ((patch[0] - skin_colour.view(3, 1, 1)).abs().mean(0) > 0.12)
    if (~unknown).sum() < 0.2 * (~hole).sum():  # hardly any skin around: fill from whatever is there
        unknown = hole
    fill = fill_from_border(patch, unknown.float())
    # the fill is no lighter on average than the skin it was filled from (a pale band reads as an
    # inverted brow): the border's mean bounds the hole's mean
    luma = torch.tensor(_LUMA, dtype=patch.dtype, device=patch.device).view(1, 3, 1, 1)
    known = ~unknown
    excess = (fill * luma).sum(1)[0][hole].mean() - (patch * luma).sum(1)[0][known].mean()
    if bool(known.any()) and bool(hole.any()) and float(excess) > 0:
        fill = fill - excess
    darker = ((fill - patch) * luma).sum(1, keepdim=True)
    t = ((darker - HAIR_DARKER[0]) / (HAIR_DARKER[1] - HAIR_DARKER[0])).clamp(0.0, 1.0)
    hair = t * t * (3.0 - 2.0 * t)
    if keep is not None:
        hair = hair * (~keep[y0:y1, x0:x1]).to(hair.dtype)
    ph, pw = y1 - y0, x1 - x0
    tx0, ty0 = round(texture_from[0] - pw / 2), round(texture_from[1] - ph / 2)
    if tx0 >= 0 and ty0 >= 0 and tx0 + pw <= crop.shape[-1] and ty0 + ph <= crop.shape[-2]:
        detail = _fine_detail(crop[..., ty0 : ty0 + ph, tx0 : tx0 + pw])
        fill = fill + TEXTURE_STRENGTH * detail.clamp(-TEXTURE_LIMIT, TEXTURE_LIMIT)
    out = crop.clone()
    weight = amount * mask[y0:y1, x0:x1] * hair
    out[..., y0:y1, x0:x1] = patch + weight * (fill.clamp(0.0, 1.0) - patch)
    return out
