"""Anything a user hands us (tensor, numpy array, PIL image, file path, file bytes) -> `SourceImage`."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import ExifTags, Image, ImageOps

from ..errors import ImageError
from .images import SourceImage, is_tensor
from .safe_open import peek_size, with_opened

if TYPE_CHECKING:
    import torch


_FLOAT_TOLERANCE = 1e-3  # float pixels this far outside 0..1 are clipped silently


def images_from_input(image: Any) -> list[SourceImage]:
    """Normalise any supported image input to a list of `SourceImage`, one per batch item.

    Accepted: a torch tensor `[B,H,W,C]` or `[H,W,C]` (ComfyUI IMAGE, floats 0..1, or uint8);
    a numpy array `HxW`, `HxWxC` or `BxHxWxC` (uint8, uint16 or floats 0..1); a PIL image (any
    mode, EXIF orientation applied); a path to an image file (str / Path); encoded file bytes;
    or a list/tuple of these. C must be 1, 3 or 4. A 4-channel array/tensor always keeps its
    alpha (so a batch stays uniform); for PIL images and files alpha is kept only when it has
    some transparency.
    """
    if is_tensor(image):
        return _split_batch(_tensor_to_uint8(image))
    if isinstance(image, np.ndarray):
        return _split_batch(_array_to_uint8(image))
    if isinstance(image, Image.Image):
        return [_source_from_pil(image)]
    if isinstance(image, (str, os.PathLike)):
        return [load_image_file(image)]
    if isinstance(image, (bytes, bytearray, memoryview)):
        return [with_opened(io.BytesIO(bytes(image)), "image bytes", _source_from_pil)]
    if isinstance(image, (list, tuple)):
        if not image:
            raise ImageError("no images given (empty list)")
        return [item for part in image for item in images_from_input(part)]
    raise ImageError(
        f"unsupported image input of type {type(image).__name__}; pass a tensor, numpy array, PIL image or file path"
    )


def load_image_file(path: str | os.PathLike[str]) -> SourceImage:
    """Read an image file (EXIF orientation applied, size checked before decoding)."""
    file_path = Path(path)
    try:
        handle = file_path.open("rb")
    except OSError as exc:
        raise ImageError(f"cannot read image file {file_path}: {exc.strerror or exc}") from exc
    with handle:
        return with_opened(handle, str(file_path), _source_from_pil)


def image_file_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) of an image file from its header (nothing decoded): a cheap check before a batch."""
    file_path = Path(path)
    try:
        handle = file_path.open("rb")
    except OSError as exc:
        raise ImageError(f"cannot read image file {file_path}: {exc.strerror or exc}") from exc
    with handle:
        return peek_size(handle, str(file_path))


def _check_shape(shape: tuple[int, ...], what: str) -> None:
    """Raise unless shape is [B,H,W,C] with B,H,W > 0 and C in 1, 3, 4."""
    if len(shape) != 4:
        raise ImageError(f"{what} must be [B,H,W,C] or [H,W,C], got shape {shape}")
    batch, height, width, channels = shape
    if batch == 0:
        raise ImageError(f"{what} is an empty batch (shape {shape})")
    if height == 0 or width == 0:
        raise ImageError(f"{what} has zero size (shape {shape})")
    if channels not in (1, 3, 4):
        raise ImageError(
            f"{what} has {channels} channels (shape {shape}); expected 1 (gray), 3 (RGB) or 4 (RGBA), channels last"
        )


def _check_float_range(low: float, high: float, what: str) -> None:
    """Refuse NaN/inf and values clearly outside 0..1; a tiny overshoot is clipped later."""
    if math.isnan(low) or math.isnan(high):
        raise ImageError(
            f"{what} contains NaN values (often from a failed upstream step); fix the input first (nothing was sent or retouched)"
        )
    if math.isinf(low) or math.isinf(high):
        raise ImageError(
            f"{what} contains infinite values; fix the input first (nothing was sent or retouched)"
        )
    if low >= -_FLOAT_TOLERANCE and high <= 1 + _FLOAT_TOLERANCE:
        return
    hint = "divide by 255" if low >= -_FLOAT_TOLERANCE and high <= 255 + _FLOAT_TOLERANCE else "rescale it"
    raise ImageError(
        f"{what} has float values from {low:.4g} to {high:.4g}, but images must be floats in 0..1; "
        f"scale it to 0..1 first ({hint})"
    )


def _tensor_to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """[B,H,W,C] uint8 numpy from a tensor; converts on the tensor's device, then copies uint8 to CPU."""
    import torch

    tensor = tensor.detach()
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    _check_shape(tuple(tensor.shape), "image tensor")
    if tensor.dtype == torch.uint8:
        converted = tensor
    elif tensor.is_floating_point():
        values = tensor.to(torch.float32)  # half/bfloat16 cannot hold x*255 exactly
        low, high = (v.item() for v in torch.aminmax(values))  # one pass; NaN propagates
        _check_float_range(low, high, "image tensor")
        scaled = values.mul(255.0)  # new tensor: the caller's is never modified
        converted = scaled.round_().clamp_(0.0, 255.0).to(torch.uint8)
    else:
        raise ImageError(f"image tensor has dtype {tensor.dtype}; expected floats in 0..1 (or uint8)")
    return converted.cpu().contiguous().numpy()


def _array_to_uint8(array: np.ndarray) -> np.ndarray:
    """[B,H,W,C] uint8 from a numpy array of any supported layout and dtype."""
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ImageError(f"image array must be HxW, HxWxC or BxHxWxC, got shape {array.shape}")
    _check_shape(array.shape, "image array")
    return _values_to_uint8(array, "image array")


def _values_to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint16:
        return _sixteen_to_eight(array)
    if array.dtype.kind == "f":
        _check_float_range(float(array.min()), float(array.max()), what)
        scaled = np.multiply(array, 255.0, dtype=np.float32)
        np.rint(scaled, out=scaled)
        np.clip(scaled, 0.0, 255.0, out=scaled)
        return scaled.astype(np.uint8)
    raise ImageError(f"{what} has dtype {array.dtype}; expected uint8, uint16 or floats in 0..1")


def _sixteen_to_eight(array: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255 with rounding (65535 -> 255, 32768 -> 128)."""
    wide = np.clip(array, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _split_batch(batch: np.ndarray) -> list[SourceImage]:
    """[B,H,W,C] uint8 -> one SourceImage per item (gray widened to RGB, alpha split off)."""
    channels = batch.shape[3]
    sources = []
    for item in batch:
        if channels == 3:
            sources.append(SourceImage(np.ascontiguousarray(item)))
        elif channels == 1:
            sources.append(SourceImage(np.repeat(item, 3, axis=2)))
        else:
            rgb = np.ascontiguousarray(item[:, :, :3])
            sources.append(SourceImage(rgb, np.ascontiguousarray(item[:, :, 3])))
    return sources


def _source_from_pil(image: Image.Image) -> SourceImage:
    rgb, alpha = pil_to_arrays(oriented(image), keep_alpha=True)
    return SourceImage(rgb, alpha)


def oriented(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (phones store portraits rotated plus a tag)."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image)
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info


def pil_to_arrays(image: Image.Image, keep_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode -> (HxWx3 uint8, HxW uint8 alpha or None).

    16/32-bit integer modes (I;16*, I) are read as 0..65535 and scaled; Pillow's own conversion
    would clip them at 255. Mode F goes through the float rules (0..1). Alpha is dropped when it
    is fully opaque, so an opaque RGBA file gives a plain RGB result.
    """
    mode = image.mode
    try:
        if mode.startswith("I"):
            return _gray_to_rgb(_sixteen_to_eight(np.asarray(image))), None
        if mode == "F":
            return _gray_to_rgb(_values_to_uint8(np.asarray(image), "image")), None
        if keep_alpha and _has_alpha(image):
            rgba = np.asarray(image.convert("RGBA"))
            alpha = np.ascontiguousarray(rgba[:, :, 3])
            return np.ascontiguousarray(rgba[:, :, :3]), (None if alpha.min() == 255 else alpha)
        rgb_image = image if mode == "RGB" else image.convert("RGB")
        return np.array(rgb_image), None
    except ImageError:
        raise
    except (ValueError, OSError) as exc:
        raise ImageError(f"cannot convert a {mode} image to RGB: {exc}") from exc


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)
