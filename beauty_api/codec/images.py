"""The image types every step shares, the API's size limits, and the one Lanczos resize."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ImageError

MAX_UPLOAD_BYTES = 2_000_000
"""The API's "2 MB", read conservatively (decimal megabytes)."""
MIN_SIDE = 49
"""The API wants each side larger than 48 px."""
MAX_SIDE = 4095
"""The API wants each side smaller than 4096 px."""
MAX_DECODE_PIXELS = 80_000_000
"""Inputs and results larger than this are refused before their pixels are decoded. It is below
Pillow's own DecompressionBombWarning threshold (~89.5 MP), so an image we accept never warns."""
JPEG_QUALITY = 95
"""The JPEG quality tried first for uploads, and used for saved .jpg/.webp files."""


@dataclass(frozen=True, eq=False)
class SourceImage:
    """One input image: RGB pixels to upload, and the alpha channel kept aside (never uploaded)."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None

    def __post_init__(self) -> None:
        rgb, alpha = self.rgb, self.alpha
        if not (
            isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        ):
            raise ImageError(f"SourceImage.rgb must be an HxWx3 uint8 array, got {describe(rgb)}")
        if not rgb.flags.c_contiguous:
            raise ImageError("SourceImage.rgb must be C-contiguous (use np.ascontiguousarray)")
        if alpha is not None and not (
            isinstance(alpha, np.ndarray) and alpha.dtype == np.uint8 and alpha.shape == rgb.shape[:2]
        ):
            raise ImageError(
                f"SourceImage.alpha must be an HxW uint8 array matching rgb {rgb.shape[:2]}, got {describe(alpha)}"
            )

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), PIL order."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    def __repr__(self) -> str:
        width, height = self.size
        return f"SourceImage({width}x{height}, alpha={'yes' if self.alpha is not None else 'no'})"


@dataclass(frozen=True)
class EncodedImage:
    """The exact bytes to upload, and what the caller needs to put the result back in place."""

    data: bytes
    mime_type: str
    filename: str
    size: tuple[int, int]
    source_size: tuple[int, int]

    @property
    def resized(self) -> bool:
        """True when the upload is smaller than the source (the result must be scaled back)."""
        return self.size != self.source_size

    def __repr__(self) -> str:  # never dump megabytes of bytes into a log
        return (
            f"EncodedImage({self.filename}, {len(self.data)} bytes, {self.size[0]}x{self.size[1]}, "
            f"source {self.source_size[0]}x{self.source_size[1]})"
        )


def is_tensor(obj: Any) -> bool:
    torch_module = sys.modules.get("torch")  # a tensor implies torch is already imported
    return torch_module is not None and isinstance(obj, torch_module.Tensor)


def describe(obj: Any) -> str:
    if isinstance(obj, np.ndarray) or is_tensor(obj):
        return f"{type(obj).__name__} of shape {tuple(obj.shape)} and dtype {obj.dtype}"
    return type(obj).__name__


def resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize of an HxW or HxWxC uint8 array to (width, height)."""
    return np.array(Image.fromarray(array).resize(size, Image.Resampling.LANCZOS))
