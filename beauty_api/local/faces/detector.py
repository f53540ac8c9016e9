"""BlazeFace post-processing: SSD anchors, box/keypoint decoding, weighted non-max suppression.

Short range (the whole frame, 128x128) follows MediaPipe's face_detection_short_range graph: 896 anchors
(16x16x2 + 8x8x6), offsets / 128, score = sigmoid(clip(logit, -100, 100)) > 0.5, weighted NMS with
IoU > 0.3. Full range (tiles.py: small faces, 192x192) follows face_detection_full_range_common: 2304
anchors (48x48x1, stride 4), offsets / 192, the same score and NMS. Coordinates are normalised to the
model's square until `in_square` / `to_image` map them to image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

INPUT_SIZE = 128
FULL_RANGE_INPUT_SIZE = 192
SCORE_THRESHOLD = 0.5
NMS_IOU = 0.3
NUM_KEYPOINTS = 6  # 0 subject's right eye (image left), 1 left eye, 2 nose tip, 3 mouth, 4/5 ear tragions


@dataclass(frozen=True)
class Detection:
    """A detected face: score, box (x0, y0, x1, y1) and 6 keypoints [(x, y)], in image pixels."""

    score: float
    box: tuple[float, float, float, float]
    keypoints: tuple[tuple[float, float], ...]


@lru_cache(maxsize=1)
def anchors() -> torch.Tensor:
    """Anchor centres [896, 2] in normalised coordinates: strides 8, 16, 16, 16; 2 then 6 per cell."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        c = torch.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], dim=-1).reshape(-1, 1, 2)
        centres.append(c.expand(-1, per_cell, -1).reshape(-1, 2))
    return torch.cat(centres).to(torch.float64)


@lru_cache(maxsize=1)
def full_range_anchors() -> torch.Tensor:
    """The full-range model's anchor centres [2304, 2]: one per cell of a 48x48 grid (stride 4)."""
    grid = FULL_RANGE_INPUT_SIZE // 4
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], dim=-1).reshape(-1, 2).to(torch.float64)


def decode(
    regressors: torch.Tensor, logits: torch.Tensor, *, full_range: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw outputs [A, 16], [A] -> (scores [K], rows [K, 16]: box x0 y0 x1 y1 then 6 keypoints x, y)
    for the anchors above the threshold, normalised to the model's square."""
    scores = torch.sigmoid(logits.clamp(-100.0, 100.0))
    keep = scores > SCORE_THRESHOLD
    if not bool(keep.any()):
        return scores[:0], regressors[:0]
    r = regressors[keep].double() / (FULL_RANGE_INPUT_SIZE if full_range else INPUT_SIZE)
    a = (full_range_anchors() if full_range else anchors()).to(r.device)[keep]
    cx, cy, w, h = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1], r[:, 2], r[:, 3]
    box = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    kps = r[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + a[:, None, :]
    return scores[keep].double(), torch.cat([box, kps.reshape(-1, 2 * NUM_KEYPOINTS)], dim=1)


def _iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    lo = torch.maximum(box[:2], boxes[:, :2])
    hi = torch.minimum(box[2:4], boxes[:, 2:4])
    inter = (hi - lo).clamp_min(0).prod(dim=1)
    area = (box[2:4] - box[:2]).clamp_min(0).prod()
    areas = (boxes[:, 2:4] - boxes[:, :2]).clamp_min(0).prod(dim=1)
    return inter / (area + areas - inter).clamp_min(1e-12)


def weighted_nms(scores: torch.Tensor, rows: torch.Tensor) -> list[tuple[float, torch.Tensor]]:
    """MediaPipe's weighted NMS: each cluster (IoU > 0.3 with its best) becomes the score-weighted mean
    of its boxes and keypoints, keeping the best score. Best first."""
    order = torch.argsort(scores, descending=True, stable=True)
    scores, rows = scores[order], rows[order]
    out: list[tuple[float, torch.Tensor]] = []
    while len(scores):
        overlap = _iou(rows[0, :4], rows[:, :4]) > NMS_IOU
        overlap[0] = True
        w = scores[overlap]
        out.append((float(scores[0]), (rows[overlap] * w[:, None]).sum(0) / w.sum()))
        scores, rows = scores[~overlap], rows[~overlap]
    return out


def to_image(merged: list[tuple[float, torch.Tensor]], height: int, width: int) -> list[Detection]:
    """Letterbox removal: normalised square coordinates -> image pixels (the square is centred)."""
    side = max(height, width)
    return in_square(merged, (width - side) / 2, (height - side) / 2, side)


def in_square(merged: list[tuple[float, torch.Tensor]], ox: float, oy: float, side: float) -> list[Detection]:
    """Normalised coordinates of a square whose top-left corner is (ox, oy) in the image -> image pixels."""
    dets = []
    for score, row in merged:
        xy = row.tolist()
        pts = [(xy[i] * side + ox, xy[i + 1] * side + oy) for i in range(0, len(xy), 2)]
        box = (pts[0][0], pts[0][1], pts[1][0], pts[1][1])
        dets.append(Detection(score, box, tuple(pts[2:])))
    return dets


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge(passes: list[list[Detection]]) -> list[Detection]:
    """Detections of several passes (whole frame, tiles) as one list: where boxes of different passes
    overlap (IoU > 0.3, or one holds most of the other) the best score is kept. Best first."""
    kept: list[Detection] = []
    for det in sorted((d for found in passes for d in found), key=lambda d: -d.score):
        if all(box_iou(det.box, k.box) <= NMS_IOU and _contained(det.box, k.box) < 0.7 for k in kept):
            kept.append(det)
    return kept


def _contained(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """The share of the smaller box that lies inside the other one."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return inter / smaller if smaller > 0 else 0.0
