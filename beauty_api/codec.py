"""Image conversions: anything a user hands us -> `SourceImage` -> upload bytes, and result bytes -> arrays.

No HTTP here. torch is imported lazily (only when a tensor comes in or goes out), so the CLI and
the emulator run without it.

Upload rules (the API takes JPEG/PNG, at most 2 MB, each side 49..4095 px):

1. A side under 49 px is refused up front (`ImageError`); we never upscale silently.
2. A side over 4095 px is scaled down (aspect kept, Lanczos) until it fits.
3. Lossless PNG when it fits the byte cap. The PNG writer is our own (Average filter + zlib
   `Z_RLE`, rows filtered and deflated in two halves on two threads): on a 2-core machine Pillow's
   encoder needs ~160 ms for a 1024x1024 photo even at compress_level=1, ours ~45 ms, with files
   within a few % of Pillow's level 6. A sampled size estimate skips the PNG attempt when it
   clearly cannot fit.
4. Otherwise JPEG at full resolution, quality 95 with 4:4:4 chroma, stepping down to 90 and 85
   only when the 95 size says that can succeed.
5. Still too big: scale down (from the original pixels, Lanczos) to the area the JPEG size
   predicts, then start again at step 3 (PNG is still preferred when it fits). For an over-size
   source, sampled estimates pick that smaller size up front when 4095 px cannot fit anyway.

Every step is deterministic: the same pixels give the same bytes (for a given zlib/libjpeg build),
which matters because the uploaded bytes identify a paid request in the journal and the cache.
The alpha channel is never uploaded; callers re-attach it to the result with `attach_alpha`.
"""

from __future__ import annotations

import io
import math
import os
import struct
import sys
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

if TYPE_CHECKING:
    import torch

_T = TypeVar("_T")

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
_JPEG_STEPS = ((90, 1.6), (85, 2.2))  # (quality, try it only if the q95 size <= cap * this)
_FLOAT_TOLERANCE = 1e-3  # float pixels this far outside 0..1 are clipped silently
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG rows are filtered and deflated in two halves on two threads from this size on (see _png_idat).
# Four parts measured slower than two on a 2-core machine.
_PNG_SPLIT_BYTES = 512 * 1024
_PNG_ESTIMATE_SLACK = 1.08  # try the PNG when the sampled estimate is within 8% of the cap (it is +-7%)
_SHRINK_TARGET = 0.85  # aim the byte-driven downscale at 85% of the cap
_MAX_SHRINK_ROUNDS = 8

# Formats we decode, by magic bytes. Pillow is only ever asked to open one of these, so no
# exotic plugin (EPS via Ghostscript, ...) can be reached from downloaded bytes.
_SNIFF: tuple[tuple[bytes, int, str], ...] = (
    (_PNG_SIGNATURE, 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"WEBP", 8, "WEBP"),  # RIFF....WEBP, RIFF checked below
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
)
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


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
            raise ImageError(f"SourceImage.rgb must be an HxWx3 uint8 array, got {_describe(rgb)}")
        if not rgb.flags.c_contiguous:
            raise ImageError("SourceImage.rgb must be C-contiguous (use np.ascontiguousarray)")
        if alpha is not None and not (
            isinstance(alpha, np.ndarray) and alpha.dtype == np.uint8 and alpha.shape == rgb.shape[:2]
        ):
            raise ImageError(
                f"SourceImage.alpha must be an HxW uint8 array matching rgb {rgb.shape[:2]}, got {_describe(alpha)}"
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


# --------------------------------------------------------------------------------------------
# Input -> SourceImage


def images_from_input(image: Any) -> list[SourceImage]:
    """Normalise any supported image input to a list of `SourceImage`, one per batch item.

    Accepted: a torch tensor `[B,H,W,C]` or `[H,W,C]` (ComfyUI IMAGE, floats 0..1, or uint8);
    a numpy array `HxW`, `HxWxC` or `BxHxWxC` (uint8, uint16 or floats 0..1); a PIL image (any
    mode, EXIF orientation applied); a path to an image file (str / Path); encoded file bytes;
    or a list/tuple of these. C must be 1, 3 or 4. A 4-channel array/tensor always keeps its
    alpha (so a batch stays uniform); for PIL images and files alpha is kept only when it has
    some transparency.
    """
    if _is_tensor(image):
        return _split_batch(_tensor_to_uint8(image))
    if isinstance(image, np.ndarray):
        return _split_batch(_array_to_uint8(image))
    if isinstance(image, Image.Image):
        return [_source_from_pil(image)]
    if isinstance(image, (str, os.PathLike)):
        return [load_image_file(image)]
    if isinstance(image, (bytes, bytearray, memoryview)):
        return [_with_opened(io.BytesIO(bytes(image)), "image bytes", _source_from_pil)]
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
        return _with_opened(handle, str(file_path), _source_from_pil)


def _is_tensor(obj: Any) -> bool:
    torch_module = sys.modules.get("torch")  # a tensor implies torch is already imported
    return torch_module is not None and isinstance(obj, torch_module.Tensor)


def _describe(obj: Any) -> str:
    if isinstance(obj, np.ndarray) or _is_tensor(obj):
        return f"{type(obj).__name__} of shape {tuple(obj.shape)} and dtype {obj.dtype}"
    return type(obj).__name__


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
            f"{what} contains NaN values (often from a failed upstream step); fix the input before uploading"
        )
    if math.isinf(low) or math.isinf(high):
        raise ImageError(f"{what} contains infinite values; fix the input before uploading")
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
    rgb, alpha = _pil_to_arrays(_oriented(image), keep_alpha=True)
    return SourceImage(rgb, alpha)


def _oriented(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (phones store portraits rotated plus a tag)."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image)
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info


def _pil_to_arrays(image: Image.Image, keep_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
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


# --------------------------------------------------------------------------------------------
# Opening encoded images safely


def _sniff(head: bytes) -> str | None:
    for magic, offset, name in _SNIFF:
        if head[offset : offset + len(magic)] == magic and (name != "WEBP" or head[:4] == b"RIFF"):
            return name
    return None


def _not_an_image(head: bytes, what: str) -> ImageError:
    shown = head[:16].hex(" ")
    text_hint = ""
    if head and all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head[:16]):
        text_hint = " (it looks like text, e.g. an HTML or JSON error page)"
    return ImageError(
        f"{what} is not a PNG, JPEG or WEBP image (also accepted: GIF, BMP, TIFF); first bytes: {shown or 'none'}{text_hint}"
    )


def _with_opened(stream: BinaryIO, what: str, convert: Callable[[Image.Image], _T]) -> _T:
    """Sniff, open with only that format's plugin, check the size from the header, then decode."""
    head = stream.read(16)
    stream.seek(0)
    fmt = _sniff(head)
    if fmt is None:
        raise _not_an_image(head, what)
    try:
        with Image.open(stream, formats=[fmt]) as image:
            _check_decode_size(image.size, what)
            image.load()
            return convert(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{what} claims a size too large to decode safely ({exc}); refusing it as a possible decompression bomb"
        ) from exc
    except UnidentifiedImageError as exc:
        raise _not_an_image(head, what) from exc
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, MemoryError) as exc:
        raise ImageError(f"{what} could not be decoded as {fmt} (damaged or truncated?): {exc}") from exc


def _check_decode_size(size: tuple[int, int], what: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{what} has an invalid size {width} x {height}")
    if width * height > MAX_DECODE_PIXELS:
        raise ImageError(
            f"{what} is {width} x {height} px ({width * height / 1e6:.0f} MP), over the {MAX_DECODE_PIXELS / 1e6:.0f} MP "
            "limit; refusing to decode it (possible decompression bomb)"
        )


# --------------------------------------------------------------------------------------------
# Upload encoding


def encode_for_upload(source: SourceImage) -> EncodedImage:
    """The smallest-loss encoding the API accepts: PNG if it fits, else JPEG, downscaled only if needed."""
    width, height = source.size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(
            f"the image is {width} x {height} px; the Face Beauty Pro API needs more than 48 px on each side. "
            "Upscale it first (e.g. with an upscale node) and try again."
        )
    target = _fit_max_side(width, height)
    if target != source.size:
        target = _skip_hopeless_size(source.rgb, target)
    for _ in range(_MAX_SHRINK_ROUNDS):
        rgb = source.rgb if target == source.size else _resize(source.rgb, target)
        encoded, jpeg_best_size = _encode_fitting(rgb)
        if encoded is not None:
            data, is_png = encoded
            return EncodedImage(
                data=data,
                mime_type="image/png" if is_png else "image/jpeg",
                filename="image.png" if is_png else "image.jpg",
                size=target,
                source_size=source.size,
            )
        target = _shrink_for_bytes(target, jpeg_best_size)
    raise ImageError(f"could not encode the {width} x {height} image under {MAX_UPLOAD_BYTES} bytes")


def _fit_max_side(width: int, height: int) -> tuple[int, int]:
    """Scale (aspect kept) so both sides are <= MAX_SIDE; refuse shapes whose short side would vanish."""
    long_side = max(width, height)
    if long_side <= MAX_SIDE:
        return width, height
    scale = MAX_SIDE / long_side
    fitted = (min(MAX_SIDE, max(1, round(width * scale))), min(MAX_SIDE, max(1, round(height * scale))))
    if min(fitted) < MIN_SIDE:
        raise ImageError(
            f"the image is {width} x {height} px: its aspect ratio is too extreme for the API. Fitting the long side "
            f"under 4096 px makes the short side {min(fitted)} px, but each side must be more than 48 px. "
            "Crop it to a less elongated shape first."
        )
    return fitted


def _skip_hopeless_size(rgb: np.ndarray, target: tuple[int, int]) -> tuple[int, int]:
    """For an over-size source: go straight to a byte-driven size when sampled estimates show that
    neither PNG nor any allowed JPEG quality can fit at `target`, saving a large Lanczos resize
    (~0.6 s for 4096 -> 4095 px) and a full-size JPEG encode that would be thrown away."""
    height, width, _ = rgb.shape
    area = target[0] * target[1] / (width * height)
    jpeg_estimate = int(_estimate_jpeg_bytes(rgb, JPEG_QUALITY) * area)
    if jpeg_estimate <= MAX_UPLOAD_BYTES * _JPEG_STEPS[-1][1]:
        return target
    if _estimate_png_bytes(rgb) * area <= MAX_UPLOAD_BYTES * _PNG_ESTIMATE_SLACK:
        return target  # e.g. sharp line art: JPEG is large but PNG small
    return _shrink_for_bytes(target, jpeg_estimate)


def _shrink_for_bytes(size: tuple[int, int], jpeg_size: int) -> tuple[int, int]:
    """Next smaller size, from the area the measured JPEG size predicts (bytes ~ pixels)."""
    width, height = size
    linear = min(0.9, math.sqrt(_SHRINK_TARGET * MAX_UPLOAD_BYTES / jpeg_size))
    smaller = (max(1, math.floor(width * linear)), max(1, math.floor(height * linear)))
    if min(smaller) < MIN_SIDE:
        raise ImageError(
            f"cannot fit the image under {MAX_UPLOAD_BYTES} bytes without a side under {MIN_SIDE} px "
            f"(tried {width} x {height}); crop it or reduce its noise"
        )
    return smaller


def _encode_fitting(rgb: np.ndarray) -> tuple[tuple[bytes, bool] | None, int]:
    """((bytes, is_png), _) for the first encoding under the cap, else (None, JPEG q95 size)."""
    if _png_may_fit(rgb):
        png = _encode_png(rgb)
        if len(png) <= MAX_UPLOAD_BYTES:
            return (png, True), 0
    jpeg = _encode_jpeg(rgb, JPEG_QUALITY)
    best = len(jpeg)
    if best <= MAX_UPLOAD_BYTES:
        return (jpeg, False), best
    for quality, limit in _JPEG_STEPS:
        if best <= MAX_UPLOAD_BYTES * limit:  # lower quality can plausibly get there
            jpeg = _encode_jpeg(rgb, quality)
            if len(jpeg) <= MAX_UPLOAD_BYTES:
                return (jpeg, False), best
    return None, best


def _estimate_jpeg_bytes(rgb: np.ndarray, quality: int) -> int:
    """JPEG size predicted from ~1/16 of the rows in 8 strips (8-row aligned, like JPEG blocks).

    Without Huffman optimisation the code tables are fixed, so JPEG size is close to additive
    over 8x8 blocks and a row sample predicts the whole well.
    """
    height = rgb.shape[0]
    strips = 8
    strip_rows = max(8, height // (16 * strips) // 8 * 8)
    if strips * strip_rows >= height:
        return len(_encode_jpeg(rgb, quality))
    starts = np.linspace(0, height - strip_rows, strips).astype(int) // 8 * 8
    sample = np.concatenate([rgb[start : start + strip_rows] for start in starts])
    return int(len(_encode_jpeg(sample, quality)) * height / sample.shape[0])


def _encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality, subsampling=0, optimize=False)
    return buffer.getvalue()


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize of an HxW or HxWxC uint8 array to (width, height)."""
    return np.array(Image.fromarray(array).resize(size, Image.Resampling.LANCZOS))


# PNG writer ---------------------------------------------------------------------------------


def _avg_filter(rgb: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """PNG filter type 3 (Average) for every row, as (H, 1 + 3W) bytes ready for deflate.

    `previous` is the row above the first one (for sampling strips), zeros when absent.
    Average filtering is vectorised in uint8 arithmetic: floor((a + b) / 2) = a>>1 + b>>1 + (a&b&1).
    """
    height, width, _ = rgb.shape
    rows = rgb.reshape(height, width * 3)
    up = np.empty_like(rows)
    up[0] = 0 if previous is None else previous.reshape(-1)
    up[1:] = rows[:-1]
    prediction = np.empty_like(rows)
    left, above = rows[:, :-3], up[:, 3:]
    np.right_shift(left, 1, out=prediction[:, 3:])
    prediction[:, 3:] += above >> 1
    prediction[:, 3:] += left & above & 1
    np.right_shift(up[:, :3], 1, out=prediction[:, :3])
    filtered = np.empty((height, width * 3 + 1), np.uint8)
    filtered[:, 0] = 3
    np.subtract(rows, prediction, out=filtered[:, 1:])  # modulo 256, as PNG wants
    return filtered


def _deflate_part(part: np.ndarray, last: bool) -> bytes:
    """Raw deflate (Z_RLE) of one part; non-final parts end byte-aligned with a sync flush."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
    body = compressor.compress(memoryview(part).cast("B"))
    return body + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def _filter_and_deflate(rgb: np.ndarray, start: int, stop: int, last: bool) -> tuple[np.ndarray, bytes]:
    """Rows start..stop filtered (with the row above as context) and deflated."""
    previous = rgb[start - 1] if start > 0 else None
    filtered = _avg_filter(rgb[start:stop], previous)
    return filtered, _deflate_part(filtered, last)


def _png_idat(rgb: np.ndarray) -> bytes:
    """The zlib stream of the filtered rows, filtered and deflated in two halves on two threads.

    numpy and zlib both release the GIL, so the halves really run in parallel. The raw deflate
    streams concatenate into one valid stream (the first ends with a sync flush), and Z_RLE only
    looks one byte back, so the split costs nothing measurable in size. The split depends only on
    the image size, never on the core count, so the bytes are the same on every machine.
    """
    height, width, _ = rgb.shape
    halves = 2 if height >= 2 and height * (width * 3 + 1) >= _PNG_SPLIT_BYTES else 1
    bounds = [(i * height // halves, (i + 1) * height // halves, i == halves - 1) for i in range(halves)]
    if halves > 1 and (os.cpu_count() or 1) > 1:
        with ThreadPoolExecutor(max_workers=halves) as pool:
            results = list(pool.map(lambda b: _filter_and_deflate(rgb, *b), bounds))
    else:
        results = [_filter_and_deflate(rgb, *b) for b in bounds]
    checksum = 1
    for filtered, _ in results:
        checksum = zlib.adler32(memoryview(filtered).cast("B"), checksum)
    return b"\x78\x01" + b"".join(body for _, body in results) + struct.pack(">I", checksum)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def _encode_png(rgb: np.ndarray) -> bytes:
    """8-bit RGB PNG, no metadata."""
    height, width, _ = rgb.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", _png_idat(rgb)),
            _png_chunk(b"IEND", b""),
        )
    )


def _png_may_fit(rgb: np.ndarray) -> bool:
    """Whether a PNG attempt is worth it: certain from the raw size, else a sampled estimate."""
    height, width, _ = rgb.shape
    filtered_bytes = height * (width * 3 + 1)
    worst_case = filtered_bytes + filtered_bytes // 8000 * 5 + 1024  # stored blocks + chunk overhead
    if worst_case <= MAX_UPLOAD_BYTES:
        return True
    return _estimate_png_bytes(rgb) <= MAX_UPLOAD_BYTES * _PNG_ESTIMATE_SLACK


def _estimate_png_bytes(rgb: np.ndarray) -> int:
    """PNG size predicted from ~1/32 of the rows, in 8 strips spread over the image.

    Measured within -2%..+7% on photos, noise and upscaled portraits (1/16 was no better); flat
    graphics are over-estimated, which only matters near the cap, where they never are.
    """
    height, width, _ = rgb.shape
    strips = 8
    strip_rows = max(4, height // (32 * strips))
    if strips * strip_rows >= height:
        return len(_encode_png(rgb))
    starts = np.linspace(1, height - strip_rows, strips).astype(int)
    filtered = [_avg_filter(rgb[start : start + strip_rows], rgb[start - 1]) for start in starts]
    sample = np.concatenate(filtered)
    compressed = len(_deflate_part(sample, last=True))
    return int(compressed / sample.size * height * (width * 3 + 1)) + 64


# --------------------------------------------------------------------------------------------
# Results


def decode_image(data: bytes) -> np.ndarray:
    """Result bytes -> HxWx3 uint8 RGB.

    The format is sniffed from the magic bytes (PNG, JPEG, WEBP; GIF, BMP and TIFF are accepted
    too, first frame only), never taken from a content type. The size is checked from the header
    before any pixel is decoded. EXIF orientation is applied. An alpha channel in a result is
    dropped (RGB kept as stored, not composited): the caller re-attaches the input's own alpha.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"result image must be bytes, got {type(data).__name__}")
    return _with_opened(io.BytesIO(bytes(data)), "the result image", _decoded_rgb)


def _decoded_rgb(image: Image.Image) -> np.ndarray:
    rgb, _ = _pil_to_arrays(_oriented(image), keep_alpha=False)
    return rgb


def fit_to_size(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize to (width, height); the same object when it already has that size."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"cannot resize to {width} x {height}")
    if (rgb.shape[1], rgb.shape[0]) == (width, height):
        return rgb
    return _resize(np.ascontiguousarray(rgb), (width, height))


def attach_alpha(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """HxWx4 when alpha is given (alpha resized to rgb's size if needed), else rgb unchanged."""
    if alpha is None:
        return rgb
    height, width = rgb.shape[:2]
    if alpha.shape != (height, width):
        alpha = _resize(np.ascontiguousarray(alpha), (width, height))
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
        raise ImageError(f"expected HxWxC uint8 arrays (C = 1, 3 or 4), got {_describe(first)}")
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
        raise ImageError(f"cannot save {_describe(array)}: expected an HxW, HxWx3 or HxWx4 uint8 array")
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
        image.save(buffer, fmt, compress_level=1)  # a saved file favours speed: ~4x faster, a few % larger
    file_path.write_bytes(buffer.getvalue())
