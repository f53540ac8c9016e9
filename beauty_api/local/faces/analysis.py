"""Face analysis: detect faces, run the 478-point mesh twice per face, and track faces over frames.

Pipeline per image (MediaPipe's conventions, see roi.py): letterbox to 128x128 -> BlazeFace -> weighted
NMS -> rotated ROI from each box and its eye keypoints -> 256x256 crop -> mesh -> landmarks back to image
pixels. Where the detector's crop was off (the ROI of the landmarks found in it lies far from it, or the
mesh was unsure), a second mesh pass runs on the landmarks' ROI: it rescues hard faces, while a face
found well costs one pass, as in MediaPipe's image mode. Faces of one image go through the mesh as one
batch. "No face" is an empty list, never an exception.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import fx

from ...clock import CancelCheck
from ...clock import check_cancel as raise_if_cancelled
from . import detector as D
from .face import Face, make_face, to_nchw
from .limits import MAX_FACES, MIN_FACE
from .models import DETECTOR_FILE, FULL_RANGE_DETECTOR_FILE, MESH_FILE, load_model
from .roi import Roi, crop, normalize_angle, project, roi_from_box, roi_from_landmarks
from .tiles import detect_in_tiles, tile_rois
from .tracking import FaceTracker

MESH_SIZE = 256
NUM_OUTPUT_LANDMARKS = 478
MIN_PRESENCE = 0.5  # mesh face-presence probability under which a face is dropped (or a track lost)
# A first pass is kept when its landmarks' ROI is this close to the detector's crop (fractions of the
# crop's side, the side's ratio, radians) and the mesh is this sure: a second pass on such a crop moves
# the points by about 1 % of the side (docs/local-engine.md), far from a face the crop missed.
REPASS_SHIFT, REPASS_SCALE, REPASS_ANGLE, REPASS_PRESENCE = 0.10, 1.25, 0.35, 0.9


def needs_second_pass(first: Roi, refined: Roi, presence: float) -> bool:
    """Whether the mesh must run again on `refined` (its landmarks' ROI) after a pass on `first`."""
    shift = ((first.cx - refined.cx) ** 2 + (first.cy - refined.cy) ** 2) ** 0.5
    ratio = refined.side / max(first.side, 1e-6)
    turn = abs(normalize_angle(refined.angle - first.angle))
    return (
        presence < REPASS_PRESENCE
        or shift > REPASS_SHIFT * first.side
        or not 1 / REPASS_SCALE <= ratio <= REPASS_SCALE
        or turn > REPASS_ANGLE
    )


def _inside(detection: D.Detection, roi: Roi) -> bool:
    """Whether a detection's centre lies within half a side of a followed face's ROI centre."""
    x0, y0, x1, y1 = detection.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return abs(cx - roi.cx) < roi.side / 3 and abs(cy - roi.cy) < roi.side / 3


class FaceAnalyzer:
    """Finds faces and their 478 landmarks. Build one with `load_analyzer()` (models load once).

    `max_faces` caps the faces per image (best detection scores first); `min_face` (px) is the smallest
    face searched for with the full-range detector in tiles (`full_range`; None: the whole frame only,
    faces down to about a tenth of its long side); `second_pass` re-runs the mesh on the ROI of its own
    landmarks (MediaPipe's tracking ROI); `min_presence` drops faces the mesh does not recognise.
    Results are on the analysed image's device; the models follow it. `configured()` gives a copy with
    other settings and the same models.
    """

    def __init__(
        self,
        detector: fx.GraphModule,
        mesh: fx.GraphModule,
        *,
        full_range: fx.GraphModule | None = None,
        max_faces: int = MAX_FACES,
        min_face: float = MIN_FACE,
        second_pass: bool = True,
        min_presence: float = MIN_PRESENCE,
    ) -> None:
        self.detector, self.mesh, self.full_range = detector, mesh, full_range
        self.max_faces, self.min_face = max_faces, min_face
        self.second_pass, self.min_presence = second_pass, min_presence
        self._lock = threading.Lock()

    def configured(self, **settings: object) -> FaceAnalyzer:
        """This analyzer's models with other settings (max_faces, min_face, second_pass, min_presence)."""
        current: dict[str, object] = {
            "full_range": self.full_range,
            "max_faces": self.max_faces,
            "min_face": self.min_face,
            "second_pass": self.second_pass,
            "min_presence": self.min_presence,
        }
        unknown = set(settings) - set(current)
        if unknown:
            raise TypeError(f"unknown analyzer settings: {', '.join(sorted(unknown))}")
        return FaceAnalyzer(self.detector, self.mesh, **{**current, **settings})  # type: ignore[arg-type]

    # -- models --------------------------------------------------------------------------------------
    def _on(self, device: torch.device) -> None:
        if next(self.detector.buffers()).device != device:
            for model in (self.detector, self.mesh, self.full_range):
                if model is not None:
                    model.to(device)

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
            whole = D.to_image(D.weighted_nms(scores.cpu(), rows.cpu()), x.shape[2], x.shape[3])
            tiles = tile_rois(x.shape[2], x.shape[3], self.min_face) if self.full_range is not None else []
            if tiles and self.full_range is not None:
                whole = D.merge([whole, detect_in_tiles(self.full_range, x, tiles)])
            found.append(whole)
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

    def _analyze_many(
        self, images: Sequence[torch.Tensor], known: Sequence[Sequence[Roi]] = (), *, settle: bool = False
    ) -> list[list[tuple[Face, Roi]]]:
        """Detect, then mesh each new face; `known[i]`: faces of image i already followed (a tracker's),
        whose detections are skipped and which count against `max_faces`. Each face comes with the
        crop its landmarks were found in. `settle` (a tracker's new faces) runs the second pass on
        every face: a track's next frames are meshed on its landmarks' ROI, so its first frame is too
        (else a still face would move between its first two frames)."""
        detections = self._detect_many(images)
        rois = []
        for i, dets in enumerate(detections):
            taken = list(known[i]) if i < len(known) else []
            new = [
                roi_from_box(d.box, d.keypoints[0], d.keypoints[1])
                for d in dets
                if not any(_inside(d, roi) for roi in taken)
            ]
            rois.append(new[: max(0, self.max_faces - len(taken))])
        landmarks, presence = self._mesh_many(list(zip(images, rois, strict=True)))
        rolls = [roi.angle for image_rois in rois for roi in image_rois]
        if self.second_pass and landmarks:
            landmarks, presence, rois, rolls = self._second_pass(images, rois, landmarks, presence, settle)
        results, k = [], 0
        for image_rois in rois:
            faces = []
            for roi in image_rois:
                if presence[k] >= self.min_presence:
                    faces.append((make_face(landmarks[k], presence[k], rolls[k]), roi))
                k += 1
            results.append(faces)
        return results

    def _second_pass(
        self,
        images: Sequence[torch.Tensor],
        rois: list[list[Roi]],
        landmarks: list[torch.Tensor],
        presence: list[float],
        settle: bool,
    ) -> tuple[list[torch.Tensor], list[float], list[list[Roi]], list[float]]:
        """The mesh again, in one batch, on the faces whose first crop was off (`needs_second_pass`),
        or on all with `settle`: their landmarks and crops are replaced by the second pass's. Also
        each face's roll: the angle of its first-pass landmarks' eye line (as before a second pass)."""
        refined = [roi_from_landmarks(lm) for lm in landmarks]
        first = [roi for image_rois in rois for roi in image_rois]
        crops = list(first)
        redo = [
            k for k in range(len(first)) if settle or needs_second_pass(first[k], refined[k], presence[k])
        ]
        owner = [i for i, image_rois in enumerate(rois) for _ in image_rois]
        if redo:
            work = [(images[i], [refined[k] for k in redo if owner[k] == i]) for i in range(len(images))]
            again, again_presence = self._mesh_many(work)  # image by image: the order of `redo`
            for k, lm, p in zip(redo, again, again_presence, strict=True):
                landmarks[k], presence[k], crops[k] = lm, p, refined[k]
        it = iter(crops)
        return (
            landmarks,
            presence,
            [[next(it) for _ in image_rois] for image_rois in rois],
            [r.angle for r in refined],
        )

    def track(
        self, frames: torch.Tensor, *, fps: float = 30.0, check_cancel: CancelCheck | None = None
    ) -> list[list[Face]]:
        """Faces in each frame of a video batch (BxHxWx3): see `tracker()`, which streams frames."""
        if frames.dim() == 3:
            frames = frames.unsqueeze(0)
        tracker = self.tracker(fps=fps)
        out = []
        for frame in frames:
            raise_if_cancelled(check_cancel)
            out.append(tracker.step(frame))
        return out

    def tracker(self, *, fps: float = 30.0) -> FaceTracker:
        """A video's face tracker: `step(frame)` per frame, in order (tracking.py)."""
        return FaceTracker(self, fps=fps)


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
                load_model(DETECTOR_FILE, dev, models_dir),
                load_model(MESH_FILE, dev, models_dir),
                full_range=load_model(FULL_RANGE_DETECTOR_FILE, dev, models_dir),
            )
        return _cache[key]
