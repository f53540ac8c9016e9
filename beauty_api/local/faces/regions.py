"""Soft masks of face regions (face oval, skin, eyes, brows, lips), rasterised from mesh landmarks in torch.

Each region is a set of polygons from `topology`. A mask is built from the polygons' signed distance
field (negative inside), so growing, shrinking and feathering are exact in pixels, and subtracting
regions (skin = oval minus eyes, brows, lips and nostrils) is a max of distances. The field is
computed only around each region of each face (a brow's box, not the face's) and, for large faces,
on a coarser grid that is upsampled (a distance field is smooth, so this keeps edges in place to a
fraction of a pixel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import topology as T
from .face import Face

REGIONS = ("face", "skin", "eyes", "left_eye", "right_eye", "brows", "left_brow", "right_brow", "lips")

_MAX_GRID = 128  # the distance field is evaluated on at most this many samples per side
_CHUNK = 65536  # pixels per distance evaluation (bounds temporary memory)

# region -> (polygons united, polygons subtracted)
_REGION_POLYGONS: dict[str, tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]] = {
    "face": ((T.FACE_OVAL,), ()),
    "skin": (
        (T.FACE_OVAL,),
        (
            T.LEFT_EYE,
            T.RIGHT_EYE,
            T.LEFT_BROW,
            T.RIGHT_BROW,
            T.LIPS_OUTER,
            T.LEFT_NOSTRIL,
            T.RIGHT_NOSTRIL,
        ),
    ),
    "eyes": ((T.LEFT_EYE, T.RIGHT_EYE), ()),
    "left_eye": ((T.LEFT_EYE,), ()),
    "right_eye": ((T.RIGHT_EYE,), ()),
    "brows": ((T.LEFT_BROW, T.RIGHT_BROW), ()),
    "left_brow": ((T.LEFT_BROW,), ()),
    "right_brow": ((T.RIGHT_BROW,), ()),
    "lips": ((T.LIPS_OUTER,), ()),
}


def polygon_signed_distance(points: torch.Tensor, polygon: torch.Tensor) -> torch.Tensor:
    """Signed distance in pixels from `points` [P, 2] to a closed `polygon` [V, 2] (negative inside)."""
    ax, ay = polygon[:, 0], polygon[:, 1]
    bx, by = torch.roll(ax, -1), torch.roll(ay, -1)
    ex, ey = bx - ax, by - ay
    inv_len2 = 1.0 / (ex * ex + ey * ey).clamp_min(1e-12)
    px, py = points[:, 0:1], points[:, 1:2]
    dx, dy = px - ax, py - ay  # [P, V]
    t = ((dx * ex + dy * ey) * inv_len2).clamp_(0.0, 1.0)
    dx.sub_(t * ex)
    dy.sub_(t * ey)
    dist = (dx * dx + dy * dy).amin(dim=1).sqrt_()
    # Even-odd rule: count the edges crossed by a ray from each point towards +x.
    straddles = (ay > py) != (by > py)
    slope = ex / torch.where(ey == 0, torch.ones_like(ey), ey)
    crossed = straddles & (px < ax + (py - ay) * slope)
    inside = crossed.sum(dim=1) % 2 == 1
    return torch.where(inside, -dist, dist)


def _region_distance(
    points: torch.Tensor, landmarks: torch.Tensor, region: str, margin: float
) -> torch.Tensor:
    """Signed distance of `region` at `points`. A subtracted polygon (a hole) is evaluated only within
    `margin` px of its box: farther away the hole cannot change the mask, whose edge is then the
    oval's or lies `margin` px inside it anyway."""
    united, subtracted = _REGION_POLYGONS[region]
    sd = torch.stack([polygon_signed_distance(points, landmarks[list(p)]) for p in united]).amin(0)
    for poly in subtracted:
        hole = landmarks[list(poly)]
        lo, hi = hole.amin(0) - margin, hole.amax(0) + margin
        near = ((points >= lo) & (points <= hi)).all(dim=1).nonzero().squeeze(1)
        if len(near):
            sd[near] = torch.maximum(sd[near], -polygon_signed_distance(points[near], hole))
    return sd


def _face_distance_field(
    landmarks: torch.Tensor, region: str, x0: int, y0: int, x1: int, y1: int, margin: float, grid: int
) -> torch.Tensor:
    """The region's signed distance on pixels [y0, y1) x [x0, x1), via a coarse grid when the box is
    larger than `grid` samples per side."""
    w, h = x1 - x0, y1 - y0
    step = max(1.0, max(w, h) / grid)
    gw, gh = max(2, math.ceil((w - 1) / step) + 1), max(2, math.ceil((h - 1) / step) + 1)
    dev = landmarks.device
    xs = x0 + torch.arange(gw, device=dev, dtype=torch.float32) * step
    ys = y0 + torch.arange(gh, device=dev, dtype=torch.float32) * step
    points = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1).reshape(-1, 2)
    lm = landmarks[:, :2].float()
    margin += 2 * step  # the coarse field is interpolated between samples one step apart
    chunks = range(0, len(points), _CHUNK)
    sd = torch.cat([_region_distance(points[i : i + _CHUNK], lm, region, margin) for i in chunks])
    sd = sd.reshape(1, 1, gh, gw)
    if step == 1.0:
        return sd[0, 0, :h, :w]
    # Sample the coarse field at every pixel (align_corners=True maps grid sample k to pixel k * step).
    px = torch.arange(w, device=dev, dtype=torch.float32) / step / (gw - 1) * 2 - 1
    py = torch.arange(h, device=dev, dtype=torch.float32) / step / (gh - 1) * 2 - 1
    sample = torch.stack(torch.meshgrid(py, px, indexing="ij")[::-1], dim=-1).unsqueeze(0)
    return F.grid_sample(sd, sample, mode="bilinear", padding_mode="border", align_corners=True)[0, 0]


def _ramp(sd: torch.Tensor, feather: float) -> torch.Tensor:
    """Distance -> coverage: a one-pixel anti-aliased edge, or a smoothstep `feather` pixels wide."""
    if feather <= 1.0:
        return (0.5 - sd).clamp(0.0, 1.0)
    t = (0.5 - sd / feather).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def region_mask(
    faces: Sequence[Face],
    height: int,
    width: int,
    region: str,
    *,
    feather: float = 0.0,
    grow: float = 0.0,
    device: torch.device | str | None = None,
    grid: int = _MAX_GRID,
) -> torch.Tensor:
    """A soft [height, width] float32 mask (0..1) of `region` over all `faces` (their union).

    `grow` and `feather` are in PIXELS of the image (use `Face.size` to scale them per face): `grow`
    moves the edge outward (negative shrinks); `feather` is the width of a smooth transition centred on
    the (grown) edge; 0 gives a one-pixel anti-aliased edge. `device` defaults to the landmarks' device
    (CPU when there is no face). No face gives an all-zero mask. `grid`: at most this many distance
    samples per side of each region's box, interpolated between (fewer is faster; the field is smooth).
    """
    if region not in _REGION_POLYGONS:
        raise ValueError(f"unknown face region {region!r}: choose one of {', '.join(REGIONS)}")
    if device is None:
        device = faces[0].landmarks.device if faces else "cpu"
    mask = torch.zeros(height, width, dtype=torch.float32, device=device)
    feather = max(0.0, float(feather))
    margin = max(0.0, float(grow)) + feather / 2 + 2
    united = sorted({index for polygon in _REGION_POLYGONS[region][0] for index in polygon})
    for face in faces:
        lm = face.landmarks.to(device=device, dtype=torch.float32)
        # the field is needed only around the region itself (a brow's box, not the whole face's)
        lo = lm[united, :2].amin(0) - margin
        hi = lm[united, :2].amax(0) + margin
        x0, y0 = max(0, math.floor(lo[0].item())), max(0, math.floor(lo[1].item()))
        x1, y1 = min(width, math.ceil(hi[0].item()) + 1), min(height, math.ceil(hi[1].item()) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        reach = abs(float(grow)) + feather / 2 + 2
        sd = _face_distance_field(lm, region, x0, y0, x1, y1, reach, max(2, grid)) - float(grow)
        patch = mask[y0:y1, x0:x1]
        torch.maximum(patch, _ramp(sd, feather), out=patch)
    return mask
