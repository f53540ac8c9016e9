"""BlazeFace short-range post-processing: SSD anchors, box/keypoint decoding, weighted non-max suppression.

Follows MediaPipe's face_detection_short_range graph: 896 anchors (16x16x2 + 8x8x6), offsets / 128,
score = sigmoid(clip(logit, -100, 100)) > 0.5, weighted NMS with IoU > 0.3. Coordinates are normalised
to the 128x128 letterboxed square until `to_image` maps them to image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

INPUT_SIZE = 128
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


def decode(regressors: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw outputs [896, 16], [896] -> (scores [K], rows [K, 16]: box x0 y0 x1 y1 then 6 keypoints x, y)
    for the anchors above the threshold, normalised to the letterboxed square."""
    scores = torch.sigmoid(logits.clamp(-100.0, 100.0))
    keep = scores > SCORE_THRESHOLD
    if not bool(keep.any()):
        return scores[:0], regressors[:0]
    r = regressors[keep].double() / INPUT_SIZE
    a = anchors().to(r.device)[keep]
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
    ox, oy = (width - side) / 2, (height - side) / 2
    dets = []
    for score, row in merged:
        xy = row.tolist()
        pts = [(xy[i] * side + ox, xy[i + 1] * side + oy) for i in range(0, len(xy), 2)]
        box = (pts[0][0], pts[0][1], pts[1][0], pts[1][1])
        dets.append(Detection(score, box, tuple(pts[2:])))
    return dets
