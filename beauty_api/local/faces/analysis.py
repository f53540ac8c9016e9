"""Face analysis: detect faces, run the 478-point mesh twice per face, and track faces over frames.

Pipeline per image (MediaPipe's conventions, see roi.py): letterbox to 128x128 -> BlazeFace -> weighted
NMS -> rotated ROI from each box and its eye keypoints -> 256x256 crop -> mesh -> a second mesh pass whose
ROI comes from the first pass's landmarks (it rescues hard faces) -> landmarks back to image pixels.
Faces of one image go through the mesh as one batch. "No face" is an empty list, never an exception.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import fx

from . import detector as D
from .face import Face
from .models import DETECTOR_FILE, MESH_FILE, load_model
from .roi import Roi, crop, project, roi_from_box, roi_from_landmarks
from .smoothing import OneEuroFilter

MESH_SIZE = 256
NUM_OUTPUT_LANDMARKS = 478
MIN_PRESENCE = 0.5  # mesh face-presence probability under which a face is dropped (or a track lost)
# A tracked ROI is kept while the new one is this close (fractions of its side / radians): a still face
# then sees the very same crop every frame, so its landmarks are identical.
# (The ROI of a face's own landmarks settles within these in two or three passes.)
ROI_KEEP_SHIFT, ROI_KEEP_SCALE, ROI_KEEP_ANGLE = 0.01, 0.05, 0.02


def to_nchw(image: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """A ComfyUI-style image (HxWxC or 1xHxWxC, float 0..1) as [1, 3, H, W] float32."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(
                f"analyze() takes one image, got a batch of {image.shape[0]}: use track() or a loop"
            )
        image = image[0]
    if image.dim() != 3 or image.shape[-1] < 3:
        raise ValueError(f"expected an image of shape HxWx3 (float 0..1), got {tuple(image.shape)}")
    x = image[..., :3].to(device=device or image.device, dtype=torch.float32)
    return x.permute(2, 0, 1).unsqueeze(0)


@dataclass
class _Track:
    roi: Roi
    filter: OneEuroFilter = field(default_factory=OneEuroFilter)


def _close(a: Roi, b: Roi) -> bool:
    shift = ((a.cx - b.cx) ** 2 + (a.cy - b.cy) ** 2) ** 0.5
    return (
        shift <= ROI_KEEP_SHIFT * a.side
        and abs(a.side - b.side) <= ROI_KEEP_SCALE * a.side
        and abs(a.angle - b.angle) <= ROI_KEEP_ANGLE
    )


def _face(landmarks: torch.Tensor, score: float, roi: Roi) -> Face:
    lo = landmarks[:, :2].amin(0).tolist()
    hi = landmarks[:, :2].amax(0).tolist()
    return Face(landmarks, score, (lo[0], lo[1], hi[0], hi[1]), roi.angle)


class FaceAnalyzer:
    """Finds faces and their 478 landmarks. Build one with `load_analyzer()` (models load once).

    `max_faces` caps the faces per image (largest detection scores first); `second_pass` re-runs the mesh
    on the ROI of its own landmarks (MediaPipe's tracking ROI); `min_presence` drops faces the mesh does
    not recognise. Results are on the analysed image's device; the models follow it.
    """

    def __init__(
        self,
        detector: fx.GraphModule,
        mesh: fx.GraphModule,
        *,
        max_faces: int = 4,
        second_pass: bool = True,
        min_presence: float = MIN_PRESENCE,
    ) -> None:
        self.detector, self.mesh = detector, mesh
        self.max_faces, self.second_pass, self.min_presence = max_faces, second_pass, min_presence
        self._lock = threading.Lock()

    # -- models --------------------------------------------------------------------------------------
    def _on(self, device: torch.device) -> None:
        if next(self.detector.buffers()).device != device:
            self.detector.to(device)
            self.mesh.to(device)

    def detect(self, image_nchw: torch.Tensor) -> list[D.Detection]:
        """Face detections in image pixels, best first (before `max_faces`)."""
        return self._detect_many([image_nchw])[0]

    def _detect_many(self, images: Sequence[torch.Tensor]) -> list[list[D.Detection]]:
        squares = []
        for x in images:
            _, _, h, w = x.shape
            squares.append(crop(x, [Roi(w / 2, h / 2, max(h, w), 0.0)], D.INPUT_SIZE, border="zeros"))
        regressors, logits = self.detector(torch.cat(squares) * 2.0 - 1.0)
        found = []
        for i, x in enumerate(images):
            scores, rows = D.decode(regressors[i], logits[i, :, 0])
            found.append(D.to_image(D.weighted_nms(scores.cpu(), rows.cpu()), x.shape[2], x.shape[3]))
        return found

    def mesh_pass(
        self, image_nchw: torch.Tensor, rois: Sequence[Roi]
    ) -> tuple[list[torch.Tensor], list[float]]:
        """One batched mesh run: landmarks [478, 3] in image pixels and presence per roi."""
        return self._mesh_many([(image_nchw, rois)])

    def _mesh_many(
        self, work: Sequence[tuple[torch.Tensor, Sequence[Roi]]]
    ) -> tuple[list[torch.Tensor], list[float]]:
        """The mesh on every roi of every image in one batch; results in the order given."""
        rois = [roi for _, image_rois in work for roi in image_rois]
        if not rois:
            return [], []
        crops = torch.cat([crop(x, list(r), MESH_SIZE, border="border") for x, r in work if r])
        raw, presence_logit = self.mesh(crops)[:2]
        raw = raw.reshape(len(rois), NUM_OUTPUT_LANDMARKS, 3)
        presence = torch.sigmoid(presence_logit.reshape(-1)).tolist()
        return [project(raw[i], roi, MESH_SIZE) for i, roi in enumerate(rois)], presence

    # -- public --------------------------------------------------------------------------------------
    def analyze(self, image: torch.Tensor) -> list[Face]:
        """Faces in one image (HxWx3 float 0..1, any device), best detection first; [] when none."""
        x = to_nchw(image)
        with self._lock, torch.inference_mode():
            self._on(x.device)
            return [face for face, _ in self._analyze_many([x])[0]]

    def analyze_batch(self, images: torch.Tensor, *, chunk: int = 8) -> list[list[Face]]:
        """`analyze` for each image of a BxHxWx3 batch (independent images, not a video): the detector
        and the mesh each run once per `chunk` images, on all their faces together."""
        if images.dim() == 3:
            images = images.unsqueeze(0)
        out: list[list[Face]] = []
        with self._lock, torch.inference_mode():
            for start in range(0, images.shape[0], chunk):
                xs = [to_nchw(frame) for frame in images[start : start + chunk]]
                self._on(xs[0].device)
                out += [[face for face, _ in found] for found in self._analyze_many(xs)]
        return out

    def _analyze(self, x: torch.Tensor) -> list[tuple[Face, Roi]]:
        return self._analyze_many([x])[0]

    def _analyze_many(self, images: Sequence[torch.Tensor]) -> list[list[tuple[Face, Roi]]]:
        detections = self._detect_many(images)
        rois = [
            [roi_from_box(d.box, d.keypoints[0], d.keypoints[1]) for d in dets[: max(0, self.max_faces)]]
            for dets in detections
        ]
        landmarks, presence = self._mesh_many(list(zip(images, rois, strict=True)))
        if self.second_pass and landmarks:
            refined = iter([roi_from_landmarks(lm) for lm in landmarks])
            rois = [[next(refined) for _ in image_rois] for image_rois in rois]
            landmarks, presence = self._mesh_many(list(zip(images, rois, strict=True)))
        results, k = [], 0
        for image_rois in rois:
            faces = []
            for roi in image_rois:
                if presence[k] >= self.min_presence:
                    faces.append((_face(landmarks[k], presence[k], roi), roi))
                k += 1
            results.append(faces)
        return results

    def track(self, frames: torch.Tensor, *, fps: float = 30.0) -> list[list[Face]]:
        """Faces in each frame of a video batch (BxHxWx3): each frame's ROI comes from the previous
        frame's landmarks, detection runs again only when a face is lost, and landmarks are smoothed
        with a One Euro filter (`fps` sets its time step)."""
        if frames.dim() == 3:
            frames = frames.unsqueeze(0)
        dt = 1.0 / fps
        results: list[list[Face]] = []
        tracks: list[_Track] = []
        with self._lock, torch.inference_mode():
            for frame in frames:
                x = to_nchw(frame)
                self._on(x.device)
                raw: list[tuple[torch.Tensor, float, Roi]] = []
                if tracks:
                    landmarks, presence = self.mesh_pass(x, [t.roi for t in tracks])
                    if min(presence) >= self.min_presence:
                        raw = [(lm, p, t.roi) for lm, p, t in zip(landmarks, presence, tracks, strict=True)]
                    else:
                        tracks = []
                if not tracks:
                    found = self._analyze(x)
                    tracks = [_Track(roi) for _, roi in found]
                    raw = [(f.landmarks, f.score, roi) for f, roi in found]
                faces = []
                for track, (lm, score, roi) in zip(tracks, raw, strict=True):
                    face = _face(lm, score, roi)
                    smoothed = track.filter(lm, dt, face.size)
                    faces.append(_face(smoothed, score, roi))
                    new_roi = roi_from_landmarks(lm)
                    if not _close(track.roi, new_roi):
                        track.roi = new_roi
                results.append(faces)
        return results


_cache: dict[tuple[str, str], FaceAnalyzer] = {}
_cache_lock = threading.Lock()


def load_analyzer(
    device: torch.device | str | None = None, *, models_dir: Path | None = None
) -> FaceAnalyzer:
    """The process-wide analyzer for `device` (default CPU); models are read and checked once."""
    dev = torch.device(device or "cpu")
    key = (str(dev), str(models_dir or ""))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = FaceAnalyzer(
                load_model(DETECTOR_FILE, dev, models_dir), load_model(MESH_FILE, dev, models_dir)
            )
        return _cache[key]
