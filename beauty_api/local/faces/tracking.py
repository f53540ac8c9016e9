"""FaceTracker: faces followed through a video one frame at a time (frames are streamed, never stacked).

Each followed face's ROI comes from its landmarks on the previous frame; a face the mesh no longer
recognises is dropped on its own, and while fewer faces are followed than `max_faces` allows the
detectors look again on every frame, so a face that enters mid-clip is followed from its first frame.
Landmarks are smoothed with a One Euro filter per face.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch

from . import motion as M
from .face import Face, make_face, to_nchw
from .roi import Roi, roi_from_landmarks
from .smoothing import OneEuroFilter

if TYPE_CHECKING:
    from collections.abc import Sequence

    from torch import fx


class Analyzer(Protocol):
    """What the tracker uses of FaceAnalyzer (analysis.py builds trackers: no import back)."""

    max_faces: int
    min_presence: float
    mesh: fx.GraphModule
    _lock: threading.Lock

    def _on(self, device: torch.device) -> None: ...

    def _mesh_many(
        self, work: Sequence[tuple[torch.Tensor, Sequence[Roi]]]
    ) -> tuple[list[torch.Tensor], list[float]]: ...

    def _analyze_many(
        self, images: Sequence[torch.Tensor], known: Sequence[Sequence[Roi]] = (), *, settle: bool = False
    ) -> list[list[tuple[Face, Roi]]]: ...


# A followed ROI is kept while the new one is this close (fractions of its side / radians): a still face
# then sees the very same crop every frame, so its landmarks are identical.
# (The ROI of a face's own landmarks settles within these in two or three passes.)
ROI_KEEP_SHIFT, ROI_KEEP_SCALE, ROI_KEEP_ANGLE = 0.01, 0.05, 0.02


STEADY_BETA = 20.0  # the One Euro filter's speed response in the frame that moves with the face


@dataclass
class _Track:
    roi: Roi
    filter: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(beta=STEADY_BETA))
    offset: torch.Tensor = field(default_factory=lambda: torch.zeros(3))  # how far the face moved (px)
    window: tuple[int, int, int, int] | None = None
    before: torch.Tensor | None = None  # the window's pixels on the previous frame

    def follow(self, x: torch.Tensor) -> None:
        """Adds the face's motion since the previous frame, measured on the pixels; when the pixels
        do not tell, the smoothing starts again (no lag behind a face that turned or jumped)."""
        if self.window is None or self.before is None:
            return
        after, step = M.patch(x, self.window)
        moved = M.shift(self.before, after, step)
        if moved is None:
            self.filter = OneEuroFilter(beta=STEADY_BETA)
        else:
            self.offset = self.offset + torch.tensor([moved[0], moved[1], 0.0])

    def remember(self, x: torch.Tensor, box: tuple[float, float, float, float]) -> None:
        self.window = M.window(box, x.shape[2], x.shape[3])
        self.before = M.patch(x, self.window)[0]


def _close(a: Roi, b: Roi) -> bool:
    shift = ((a.cx - b.cx) ** 2 + (a.cy - b.cy) ** 2) ** 0.5
    return (
        shift <= ROI_KEEP_SHIFT * a.side
        and abs(a.side - b.side) <= ROI_KEEP_SCALE * a.side
        and abs(a.angle - b.angle) <= ROI_KEEP_ANGLE
    )


class FaceTracker:
    """Follows the faces of one video: call `step(frame)` for each frame, in order."""

    def __init__(self, analyzer: Analyzer, *, fps: float = 30.0) -> None:
        self.analyzer = analyzer
        self.dt = 1.0 / fps
        self.tracks: list[_Track] = []

    def step(self, frame: torch.Tensor) -> list[Face]:
        """The faces of the next frame (HxWx3 float 0..1), followed ones first, then new ones."""
        a = self.analyzer
        x = to_nchw(frame)
        with a._lock, torch.inference_mode():
            a._on(x.device)
            raw: list[tuple[torch.Tensor, float, Roi]] = []
            if self.tracks:
                landmarks, presence = a._mesh_many([(x, [t.roi for t in self.tracks])])
                kept = []
                for track, lm, p in zip(self.tracks, landmarks, presence, strict=True):
                    if p >= a.min_presence:
                        kept.append(track)
                        raw.append((lm, p, track.roi))
                self.tracks = kept
            if len(self.tracks) < a.max_faces:
                for face, roi in a._analyze_many([x], [[t.roi for t in self.tracks]], settle=True)[0]:
                    self.tracks.append(_Track(roi))
                    raw.append((face.landmarks, face.score, roi))
            faces = []
            for track, (lm, score, roi) in zip(self.tracks, raw, strict=True):
                face = make_face(lm, score, roi.angle)
                track.follow(x)
                offset = track.offset.to(lm)
                steady = track.filter(lm - offset, self.dt, face.size) + offset
                faces.append(make_face(steady, score, roi.angle))
                track.remember(x, face.box)
                new_roi = roi_from_landmarks(lm)
                if not _close(track.roi, new_roi):
                    track.roi = new_roi
            return faces
