"""LocalEngine: the six controls and the 35 looks on this machine, one face crop at a time.

Per image: find the faces (on a copy at most ANALYSIS_MAX_SIDE px, landmarks scaled back), then for
each face work on a crop around it (1.45x the face oval, so the cost follows the face, not the
frame): whitening, brow removal and smoothing inside soft masks; then one warp on a wider crop
(WARP_REACH times the oval: the warp fades out slowly beside the face, so what touches the jaw is
carried along rather than sheared). Every effect fades to zero before its crop's border, so the crop
is written back as is. The look is the last step and the only one on the whole frame. Same input,
settings and torch thread count, same output: nothing here is random (1 and 2 threads may differ by
one level: float sums in another order), and the
8-bit input is only converted to float inside the crops.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from ...params import SLIDER_NAMES, BeautyParams
from ..faces.face import Face
from ..faces.limits import MAX_FACES, MIN_FACE
from ..faces.regions import region_mask
from .brows import fill_from_border, lines_to_keep, remove_brow
from .looks import apply_look
from .tone import smooth_skin, whiten_u8
from .warp import WARP_REACH, WarpAmounts, apply_displacement, crop_box, displacement_field

if TYPE_CHECKING:
    from ..faces.tracking import FaceTracker

ANALYSIS_MAX_SIDE = 2048  # faces are found on a copy this size at most (a 40 px face of 4096 keeps 20 px)
SKIN_FEATHER = 0.07  # skin mask feather, fraction of the face's size
SKIN_GROW = -0.035  # the skin mask stops this far inside its edges (eyes stay sharp, lips untouched)
BROW_GROW = 0.02
BROW_FEATHER = 0.035
LASH_REACH = 0.045  # the brow fill stays this far (fraction of the face's size) from the eyes' contours
WARP_BORDER = 0.08  # the warp's taper to zero at the crop's border, fraction of the face's size
# distance samples per side of a region's box (the field is smooth; edges stay within 0.25 of exact)
MASK_GRID = 48


@dataclass(frozen=True)
class LocalImageResult:
    """One retouched image and what was found: `faces` is None when no face control was set."""

    image: np.ndarray  # HxWx3 uint8
    faces: int | None
    seconds: float

    @property
    def note(self) -> str:
        """For reports: "no face", "2 faces", or why faces were not looked for."""
        if self.faces is None:
            return "no face control set"
        if self.faces == 0:
            return "no face"
        return f"{self.faces} face{'s' if self.faces > 1 else ''}"


def is_identity(params: BeautyParams) -> bool:
    """True when nothing would change: every slider 0 and no look."""
    return params.filter_type is None and not any(getattr(params, name) for name in SLIDER_NAMES)


def needs_faces(params: BeautyParams) -> bool:
    return any(getattr(params, name) for name in SLIDER_NAMES)


def _face_in_crop(face: Face, x0: int, y0: int) -> Face:
    offset = torch.tensor([x0, y0, 0.0], dtype=face.landmarks.dtype, device=face.landmarks.device)
    bx0, by0, bx1, by1 = face.box
    return dataclasses.replace(
        face, landmarks=face.landmarks - offset, box=(bx0 - x0, by0 - y0, bx1 - x0, by1 - y0)
    )


def _soft_mask(
    face: Face, height: int, width: int, region: str, *, feather: float, grow: float
) -> torch.Tensor:
    """`region_mask` of one face on its crop, its distance field sampled coarsely (MASK_GRID)."""
    return region_mask([face], height, width, region, feather=feather, grow=grow, grid=MASK_GRID)


def _cheek_colour(crop: torch.Tensor, face: Face) -> torch.Tensor:
    """The median colour [3] of two discs on the cheeks (around points 205 and 425): the skin's colour."""
    _, _, height, width = crop.shape
    ys = torch.arange(height, device=crop.device, dtype=torch.float32)[:, None]
    xs = torch.arange(width, device=crop.device, dtype=torch.float32)[None, :]
    radius2 = (0.06 * max(face.size, 1.0)) ** 2
    discs = torch.zeros(height, width, dtype=torch.bool, device=crop.device)
    for point in (205, 425):
        cx, cy = face.landmarks[point, 0], face.landmarks[point, 1]
        discs |= (xs - cx) ** 2 + (ys - cy) ** 2 <= radius2
    pixels = crop[0][:, discs] if bool(discs.any()) else crop[0].flatten(1)
    return pixels.median(dim=1).values


def _remove_brows(crop: torch.Tensor, face: Face, amount: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each brow filled with skin of the cheeks' colour, textured with a cheek's fine detail; and the
    brows' mask [H, W] times `amount` (what is skin now, for the whitening that follows).

    One mask for both brows, split at the nose bridge (point 168): each brow is filled on its own.
    """
    _, _, height, width = crop.shape
    size = max(face.size, 1.0)
    skin_colour = _cheek_colour(crop, face)
    both = _soft_mask(face, height, width, "brows", feather=BROW_FEATHER * size, grow=BROW_GROW * size)
    # lashes, lids and what lies on them (a glasses rim) border the brow from below: kept
    lids = _soft_mask(face, height, width, "eyes", feather=BROW_FEATHER * size, grow=LASH_REACH * size)
    both = both * (1.0 - lids)
    keep = lines_to_keep(crop, both, size)  # strands, lashes, rims that cross a brow
    split = min(width, max(0, round(float(face.landmarks[168, 0]))))
    for columns, cheek in ((slice(0, split), 205), (slice(split, width), 425)):
        mask = torch.zeros_like(both)
        mask[:, columns] = both[:, columns]
        point = face.landmarks[cheek]
        crop = remove_brow(
            crop,
            mask,
            amount,
            skin_colour=skin_colour,
            texture_from=(float(point[0]), float(point[1])),
            keep=keep,
        )
    return crop, both * amount


def retouch_face(rgb: np.ndarray, face: Face, params: BeautyParams, device: torch.device) -> None:
    """Retouch one face of `rgb` (HxWx3 uint8) in place, inside the face's crop."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = crop_box(face.landmarks, height, width)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    crop_u8 = rgb[y0:y1, x0:x1]
    local = _face_in_crop(face, x0, y0)
    local = dataclasses.replace(local, landmarks=local.landmarks.to(device))
    size = max(local.size, 1.0)
    ch, cw = y1 - y0, x1 - x0
    crop = torch.from_numpy(np.ascontiguousarray(crop_u8)).to(device).permute(2, 0, 1)[None].float() / 255.0
    skin = torch.zeros(0)
    if params.whitening or params.smoothing:
        skin = _soft_mask(local, ch, cw, "skin", feather=SKIN_FEATHER * size, grow=SKIN_GROW * size)
    if params.remove_eyebrow:
        # before whitening, from the skin as it is: a fill taken from whitened skin and then left
        # unwhitened (the skin mask excludes the brows) would not match the skin around it
        crop, brows = _remove_brows(crop, local, params.remove_eyebrow / 100.0)
        if params.whitening:
            # whiten the filled brows as much as the skin around them (the skin mask has holes there)
            around = fill_from_border(skin[None, None], (brows > 0.02).float())[0, 0]
            skin = skin + brows * (around - skin)
            crop_u8 = (crop[0] * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    if params.whitening:
        white = torch.from_numpy(whiten_u8(crop_u8, params.whitening)).to(device).permute(2, 0, 1)[None]
        crop = crop + skin * (white.float() / 255.0 - crop)
    if params.smoothing:
        crop = smooth_skin(crop, skin, params.smoothing / 100.0, size)
    amounts = WarpAmounts(params.thinface / 100.0, params.shrink_face / 100.0, params.enlarge_eye / 100.0)
    if amounts.any:
        crop, (x0, y0, x1, y1) = _warp(rgb, crop, (x0, y0), face, amounts, device)
    out = (crop[0] * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    rgb[y0:y1, x0:x1] = out


def _warp(
    rgb: np.ndarray,
    crop: torch.Tensor,
    origin: tuple[int, int],
    face: Face,
    amounts: WarpAmounts,
    device: torch.device,
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """The face's warp on its own, wider crop (the field fades out slowly beside the face), with the
    tone-retouched `crop` (float, placed at `origin`) pasted in first: one rounding to 8 bits at the end."""
    height, width = rgb.shape[:2]
    box = crop_box(face.landmarks, height, width, WARP_REACH)
    wx0, wy0, wx1, wy1 = box
    wide = torch.from_numpy(np.ascontiguousarray(rgb[wy0:wy1, wx0:wx1])).to(device)
    wide = wide.permute(2, 0, 1)[None].float() / 255.0
    ox, oy = origin[0] - wx0, origin[1] - wy0
    wide[..., oy : oy + crop.shape[-2], ox : ox + crop.shape[-1]] = crop
    local = _face_in_crop(face, wx0, wy0).landmarks.to(device)
    size = max(face.size, 1.0)
    field = displacement_field(local, wy1 - wy0, wx1 - wx0, amounts, border=WARP_BORDER * size)
    return apply_displacement(wide, field), box


def retouch_faces(rgb: np.ndarray, faces: Sequence[Face], params: BeautyParams, device=None) -> np.ndarray:
    """The whole retouch of one HxWx3 uint8 image with known faces: a new array (the input is untouched)."""
    if is_identity(params):
        return rgb
    out = np.array(rgb, dtype=np.uint8, copy=True)
    if needs_faces(params):
        target = torch.device(device) if device is not None else None
        for face in faces:
            retouch_face(out, face, params, target or face.landmarks.device)
    return apply_look(out, params.filter_type, threads=torch.get_num_threads())


def _scaled_face(face: Face, scale: float) -> Face:
    """A face found on a copy `1/scale` the size, in the original's pixels (centres at integers)."""
    lm = face.landmarks.clone()
    lm[:, :2] = (lm[:, :2] + 0.5) * scale - 0.5
    lm[:, 2] = lm[:, 2] * scale
    box = tuple((v + 0.5) * scale - 0.5 for v in face.box)
    return dataclasses.replace(face, landmarks=lm, box=box)  # type: ignore[arg-type]


class LocalEngine:
    """Finds faces and retouches them; holds the face-analysis models (loaded on first use).

    `max_faces`: at most this many faces per image (best first); `min_face`: the smallest face (px of
    the input) looked for, see faces/tiles.py."""

    def __init__(
        self,
        analyzer=None,
        *,
        device: torch.device | str | None = None,
        max_faces: int = MAX_FACES,
        min_face: float = MIN_FACE,
    ) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {max_faces}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.max_faces, self.min_face = max_faces, min_face
        self._analyzer = analyzer
        self._lock = threading.Lock()

    @property
    def analyzer(self):
        with self._lock:
            if self._analyzer is None:
                from ..faces.analysis import load_analyzer

                self._analyzer = load_analyzer(device=self.device)
            return self._analyzer

    def _configured(self, factor: int):
        """The analyzer with this engine's settings, for an analysis copy 1/`factor` the size."""
        return self.analyzer.configured(max_faces=self.max_faces, min_face=self.min_face / factor)

    def _analysis_input(self, rgb: np.ndarray) -> tuple[torch.Tensor, int]:
        """A uint8 frame -> HxWx3 float tensor on the device, at most ANALYSIS_MAX_SIDE px, and the
        factor back to the frame's pixels. Large frames are box-reduced by an integer factor in 8 bits
        (Pillow, before any float copy of the full frame exists)."""
        height, width = rgb.shape[:2]
        factor = max(1, math.ceil(max(height, width) / ANALYSIS_MAX_SIDE))
        if factor > 1:
            rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).reduce(factor))
        pixels = rgb if rgb.flags.writeable else np.array(rgb)  # torch refuses read-only arrays
        return torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device).float() / 255.0, factor

    def find_faces(self, rgb: np.ndarray) -> list[Face]:
        image, factor = self._analysis_input(rgb)
        faces = self._configured(factor).analyze(image)
        return [_scaled_face(face, factor) if factor != 1 else face for face in faces]

    def tracker(self, *, fps: float = 30.0) -> VideoTracker:
        """Follows the faces of one video, frame by frame (`faces(rgb)` per frame, in order)."""
        return VideoTracker(self, fps)

    def track_faces(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        """The faces of each frame of a video; frames are analysed one at a time (streamed)."""
        tracker = self.tracker()
        return [tracker.faces(frame) for frame in frames]

    def retouch(self, rgb: np.ndarray, params: BeautyParams) -> LocalImageResult:
        """One HxWx3 uint8 image; "no face" is a result (the look is still applied), never an error."""
        started = time.perf_counter()
        if is_identity(params):
            return LocalImageResult(rgb, None, 0.0)
        faces = self.find_faces(rgb) if needs_faces(params) else None
        with torch.inference_mode():
            image = retouch_faces(rgb, faces or [], params, self.device)
        return LocalImageResult(image, None if faces is None else len(faces), time.perf_counter() - started)

    def retouch_with_faces(
        self, rgb: np.ndarray, faces: list[Face], params: BeautyParams
    ) -> LocalImageResult:
        """One image whose faces are already known (tracked across a video's frames)."""
        started = time.perf_counter()
        with torch.inference_mode():
            image = retouch_faces(rgb, faces, params, self.device)
        return LocalImageResult(image, len(faces), time.perf_counter() - started)


class VideoTracker:
    """A LocalEngine's FaceTracker, on analysis copies of uint8 frames, faces in the frames' pixels."""

    def __init__(self, engine: LocalEngine, fps: float) -> None:
        self.engine, self.fps = engine, fps
        self._tracker: FaceTracker | None = None

    def faces(self, rgb: np.ndarray) -> list[Face]:
        image, factor = self.engine._analysis_input(rgb)
        if self._tracker is None:
            self._tracker = self.engine._configured(factor).tracker(fps=self.fps)
        faces = self._tracker.step(image)
        return [_scaled_face(face, factor) if factor != 1 else face for face in faces]


__all__ = ["LocalEngine", "LocalImageResult", "VideoTracker", "is_identity", "retouch_faces"]
