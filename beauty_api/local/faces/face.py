"""`Face`: what face analysis finds for one face, and what the region masks and the retouch consume."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class Face:
    """One analysed face. Coordinates are image pixels with the origin at the centre of the top-left pixel.

    `landmarks` is [478, 3] float32 (x, y, z) on the analysed image's device; z is in the same pixel
    scale as x (smaller = nearer the camera). `score` is the mesh's face-presence probability (0..1).
    `box` is the landmarks' bounding box (x0, y0, x1, y1). `roll` is the head's in-plane rotation in
    radians, positive when the face is turned clockwise on screen (from the subject's right eye to left).
    """

    landmarks: torch.Tensor
    score: float
    box: tuple[float, float, float, float]
    roll: float

    @property
    def size(self) -> float:
        """The face's size in pixels (the larger side of its box): a scale for feathering and effects."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))


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


def make_face(landmarks: torch.Tensor, score: float, roll: float) -> Face:
    """A Face from landmarks [478, 3] in image pixels: its box is the landmarks' bounding box."""
    lo = landmarks[:, :2].amin(0).tolist()
    hi = landmarks[:, :2].amax(0).tolist()
    return Face(landmarks, score, (lo[0], lo[1], hi[0], hi[1]), roll)
