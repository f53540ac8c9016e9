"""Result bytes -> arrays: decode, fit back to the source size, re-attach alpha, to a tensor, save."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import ImageError
from .image_input import oriented, pil_to_arrays
from .images import JPEG_QUALITY, describe, resize
from .safe_open import with_opened

if TYPE_CHECKING:
    import torch


_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def decode_image(data: bytes) -> np.ndarray:
    """Result bytes -> HxWx3 uint8 RGB.

    The format is sniffed from the magic bytes (PNG, JPEG, WEBP; GIF, BMP and TIFF are accepted
    too, first frame only), never taken from a content type. The size is checked from the header
    before any pixel is decoded. EXIF orientation is applied. An alpha channel in a result is
    dropped (RGB kept as stored, not composited): the caller re-attaches the input's own alpha.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"result image must be bytes, got {type(data).__name__}")
    return with_opened(io.BytesIO(bytes(data)), "the result image", _decoded_rgb, downloaded=True)


def _decoded_rgb(image: Image.Image) -> np.ndarray:
    rgb, _ = pil_to_arrays(oriented(image), keep_alpha=False)
    return rgb


def fit_to_size(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize to (width, height); the same object when it already has that size."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"cannot resize to {width} x {height}")
    if (rgb.shape[1], rgb.shape[0]) == (width, height):
        return rgb
    return resize(np.ascontiguousarray(rgb), (width, height))


def attach_alpha(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """HxWx4 when alpha is given (alpha resized to rgb's size if needed), else rgb unchanged."""
    if alpha is None:
        return rgb
    height, width = rgb.shape[:2]
    if alpha.shape != (height, width):
        alpha = resize(np.ascontiguousarray(alpha), (width, height))
    return np.concatenate((rgb, alpha[:, :, None]), axis=2)


def to_comfy_tensor(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 HxWxC arrays -> float32 [B,H,W,C] tensor in 0..1 on the CPU (ComfyUI IMAGE)."""
    import torch

    if len(arrays) == 0:
        raise ImageError("no images to convert to a tensor")
    shapes = sorted({tuple(array.shape) for array in arrays})
    if len(shapes) > 1:
        raise ImageError(
            f"images in one batch must share a shape, got {', '.join(map(str, shapes[:6]))}; resize them first"
        )
    first = arrays[0]
    if first.ndim != 3 or first.shape[2] not in (1, 3, 4) or any(a.dtype != np.uint8 for a in arrays):
        raise ImageError(f"expected HxWxC uint8 arrays (C = 1, 3 or 4), got {describe(first)}")
    return torch.from_numpy(np.stack(arrays)).to(torch.float32).div_(255.0)


def save_image(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write an HxW / HxWx3 / HxWx4 uint8 array; the format comes from the suffix (JPEG drops alpha)."""
    file_path = Path(path)
    fmt = _SAVE_FORMATS.get(file_path.suffix.lower())
    if fmt is None:
        raise ImageError(f"cannot save {file_path.name}: use a .png, .jpg, .jpeg or .webp file name")
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] not in (1, 3, 4))
    ):
        raise ImageError(f"cannot save {describe(array)}: expected an HxW, HxWx3 or HxWx4 uint8 array")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    image = Image.fromarray(np.ascontiguousarray(array))
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image = image.convert("RGB") if image.mode == "RGBA" else image
        image.save(buffer, fmt, quality=JPEG_QUALITY, subsampling=0)
    elif fmt == "WEBP":
        image.save(buffer, fmt, quality=JPEG_QUALITY)
    else:
        image.save(buffer, fmt, compress_level=1)  # a saved file favours speed over a few % of size
    file_path.write_bytes(buffer.getvalue())
