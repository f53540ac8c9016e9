"""Eyebrow removal: fill each brow from its border (push-pull diffusion), then give the fill skin texture.

Push-pull inpainting: average the known pixels (outside the brow) down an image pyramid until every
coarse pixel has a value, then come back up, filling each level's unknown part from the coarser level.
It is the steady state of diffusion from the hole's border, in a handful of cheap poolings. A fill is
flat, which reads as make-up rather than skin, so the fine detail of a patch of cheek is added to it.
Only pixels darker than the fill are the brow's hair and are replaced: the skin between the hairs,
highlights and light strands crossing the brow are kept, and the fill is never lighter on average
than the skin around it (an area lighter than the skin is an inverted brow, not a removed one).

Dark strands are kept by where they go: a hair strand, a lash or a glasses rim that crosses or
borders the brow is a thin dark line that carries on well outside it, which brow hair does not.
`crossing_lines` finds thin dark ridges in eight orientations and keeps those reached from ridges
lying well outside the brow, along ridges of about the same orientation and darkness (a geodesic
reconstruction), and draws them back at full size at their own width.
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F

TEXTURE_STRENGTH = 0.7  # how much of the cheek's fine detail is lent to the fill
# the lent detail is clipped to the patch's own grain, this many robust standard deviations: a
# wrinkle, lash or rim edge in the cheek patch would otherwise be copied into the fill as a thin
# scratch-like line, while a fixed clip flattened coarse-grained skin
TEXTURE_SIGMAS = 2.0
# Only what is darker than the fill is brow: a pixel this much darker (0..1 luma) is replaced in full,
# one at the fill's level or lighter (skin between the hairs, a blond strand, a highlight) is kept.
HAIR_DARKER = (0.01, 0.06)
_LUMA = (0.299, 0.587, 0.114)
RIDGE_DARKER = 0.06  # a ridge: darker (0..1 luma) than the pixels on both sides of it by this much
# a found line, drawn again at full size, is what is darker than this far from its core to its sides
# (a thick rim keeps its width, brow hair a little lighter than a strand lying on it goes)
LINE_EDGE = 0.3
# a line is followed onto ridges at most this much lighter (0..1 luma) than where it began
LEVEL_TOLERANCE = 0.1
# a line is followed this far (fraction of the face's size) from where it was found outside the brow:
# across a brow, or from either end of one along its border (a rim)
FOLLOW_REACH = 0.2
RIDGE_WORK_SIZE = 64  # lines are looked for with the face at most this big (px)
_ORIENTATIONS = 8
BEND_DARKER = 0.35  # a line bends inside a brow where it is darker than this fraction of the brow's luma


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


def _robust_deviation(values: torch.Tensor) -> torch.Tensor:
    """The standard deviation of `values`' bulk (1.4826 median absolute deviations): grain, not the
    few lines among it."""
    return 1.4826 * (values - values.median()).abs().median()


def _box(mask: torch.Tensor, pad: int) -> tuple[int, int, int, int] | None:
    rows = torch.nonzero(mask.amax(dim=1) > 0.02).flatten()
    cols = torch.nonzero(mask.amax(dim=0) > 0.02).flatten()
    if rows.numel() == 0:
        return None
    height, width = mask.shape
    y0, y1 = max(0, int(rows[0]) - pad), min(height, int(rows[-1]) + pad + 1)
    x0, x1 = max(0, int(cols[0]) - pad), min(width, int(cols[-1]) + pad + 1)
    return x0, y0, x1, y1


def _spread(levels: torch.Tensor, none: int) -> torch.Tensor:
    """[N, H, W]: each pixel the lowest of `levels` [N, H, W] in its 3x3 neighbourhood, `none` (the
    highest level) beyond the border. Shifted minima: far cheaper than a min-pool on tensors this small."""
    padded = F.pad(levels, (1, 1, 1, 1), value=none)
    rows = torch.minimum(torch.minimum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    return torch.minimum(torch.minimum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """A bool [..., H, W] grown by one pixel in the 8 directions."""
    outside = (~mask).reshape(-1, *mask.shape[-2:]).view(torch.uint8)
    return (_spread(outside, 1) == 0).view(mask.shape)


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


def _ridges(
    luma: torch.Tensor, widths: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where `luma` [H, W] has thin dark lines: per orientation [8, H, W], whether a pixel is on one
    (the mean of 3 taps along it darker by RIDGE_DARKER than each side's, at some half-width) and
    that mean; per pixel [H, W], the orientation where the line stands out most, and the luma
    LINE_EDGE of the way from the line to its sides there (what is darker belongs to the line)."""
    kernels = _ridge_kernels(widths).to(luma)
    reach = kernels.shape[-1] // 2
    padded = F.pad(luma[None, None], (reach,) * 4, mode="replicate")
    taps = F.conv2d(padded, kernels)[0].view(_ORIENTATIONS, 1 + 2 * len(widths), *luma.shape)
    sides = torch.minimum(taps[:, 1::2], taps[:, 2::2])  # [8, widths, H, W]
    contrast = (sides - taps[:, :1]).amax(1)  # [8, H, W]
    best, orientation = contrast.max(0)
    centres = taps[:, 0]
    edge = centres.gather(0, orientation[None])[0] + LINE_EDGE * best
    return contrast > RIDGE_DARKER, centres, orientation, edge


def crossing_lines(luma: torch.Tensor, brow: torch.Tensor, face_size: float) -> torch.Tensor:
    """[H, W] bool: the thin dark lines in `luma` [H, W] that reach into `brow` [H, W] (bool) from well
    outside it (3% of `face_size` and more): strands, lashes, rims. Brow hair, which ends in the brow,
    is not among them, nor is what is lighter than the line where it was found (LEVEL_TOLERANCE).
    Found on a copy with the face at most RIDGE_WORK_SIZE px (darkest pixel kept), then drawn at full
    size to the line's own width (a thick rim keeps its width, the brow hair beside a strand goes)."""
    factor = max(1, math.ceil(face_size / RIDGE_WORK_SIZE))
    height, width = luma.shape
    small, small_brow = luma, brow
    if factor > 1:
        small = -F.max_pool2d(-luma[None, None], factor, ceil_mode=True)[0, 0]
        small_brow = F.max_pool2d(brow[None, None].float(), factor, ceil_mode=True)[0, 0] > 0
    else:  # the darkest of each 2x2 as well: a line a pixel or two wide is not even when sampled
        small = -F.max_pool2d(F.pad(-luma[None, None], (0, 1, 0, 1), mode="replicate"), 2, stride=1)[0, 0]
    ridges, centres, orientation, edge = _ridges(small, (1, 2, 3))
    # on a blob or a thick line every orientation stands out, and growth would turn along any of
    # them: a line is followed in its best orientation or one next to it
    turn = (torch.arange(_ORIENTATIONS, device=luma.device).view(-1, 1, 1) - orientation) % _ORIENTATIONS
    aligned = ridges & ((turn <= 1) | (turn == _ORIENTATIONS - 1))
    near = small_brow
    for _ in range(max(2, round(0.03 * face_size / factor))):
        near = _dilate(near)
    reached = aligned & ~near
    if not bool(reached.any()):
        return torch.zeros(height, width, dtype=torch.bool, device=luma.device)
    # geodesic reconstruction, carrying each line's level (its luma where it was reached): grow
    # along ridges of the same orientation, no lighter than the level by LEVEL_TOLERANCE, for
    # FOLLOW_REACH. A line may bend (to a neighbouring orientation, as a rim curves round)
    # outside the brow, and inside it onto ridges far darker than the brow (in any orientation: a
    # thick rim); not onto brow hair, where a strand crosses it.
    # Levels in 1/250ths of luma, 255 for "on no kept line": on tensors this small, operations
    # cost by their count, and bytes are the cheapest
    none = 255
    brow_luma = small[small_brow].median() if bool(small_brow.any()) else small.median()
    dark = ridges & (small < BEND_DARKER * brow_luma)
    allowed = aligned | dark
    blocked = (~allowed).to(torch.uint8) * none  # where no line goes
    no_turn = (small_brow & ~dark.any(0)).to(torch.uint8) * none  # where none may bend
    scaled = (centres.clamp(0.0, 1.0) * 250).round().to(torch.uint8)
    floor = (scaled.int() - round(LEVEL_TOLERANCE * 250)).clamp(min=0).to(torch.uint8)
    levels = torch.where(reached, scaled, torch.full_like(scaled, none))
    steps = math.ceil(FOLLOW_REACH * face_size / factor)
    for start in range(0, steps, 4):
        before = levels
        for _ in range(min(4, steps - start)):
            # each orientation's 3x3 minimum, and the same of the orientations on either side
            ring = torch.cat([levels[-1:], levels, levels[:1]])
            spread = _spread(ring, none)
            turned = torch.maximum(torch.minimum(spread[:-2], spread[2:]), no_turn)
            grown = torch.maximum(torch.minimum(spread[1:-1], turned), blocked)
            # a pixel lighter than the line's level by more than the tolerance is no part of it
            grown = torch.maximum(grown, (grown < floor).view(torch.uint8) * none)
            levels = torch.minimum(levels, grown)  # a pixel once reached stays: the growth ends
        if torch.equal(levels, before):
            break
    level = levels.amin(0).float() / 250  # [H, W]
    kept = level < none / 250
    # at full size, each pixel on or within half a work pixel of the line takes the line's threshold
    # (the largest of the kept work pixels around it)
    threshold = torch.where(kept, torch.minimum(edge, level + LEVEL_TOLERANCE), -1.0)
    threshold = -_spread(-threshold[None], 2)[0]
    if factor > 1:
        threshold = threshold.repeat_interleave(factor, 0).repeat_interleave(factor, 1)[:height, :width]
        kept = kept.repeat_interleave(factor, 0).repeat_interleave(factor, 1)[:height, :width]
    for _ in range(max(1, factor // 2)):
        kept = _dilate(kept)
    return _dilate(kept & (luma < threshold))


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
        limit = TEXTURE_SIGMAS * _robust_deviation(detail)
        fill = fill + TEXTURE_STRENGTH * torch.maximum(torch.minimum(detail, limit), -limit)
    out = crop.clone()
    weight = amount * mask[y0:y1, x0:x1] * hair
    out[..., y0:y1, x0:x1] = patch + weight * (fill.clamp(0.0, 1.0) - patch)
    return out
