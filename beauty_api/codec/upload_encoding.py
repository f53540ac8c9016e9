"""`SourceImage` -> the exact bytes to upload: the encoding the API accepts with the least loss.

Upload rules (the API takes JPEG/PNG, at most 2 MB, each side 49..4095 px):

1. A side under 49 px is refused up front (`ImageError`); we never upscale silently.
2. A side over 4095 px is scaled down (aspect kept, Lanczos) until it fits.
3. Lossless PNG when it fits the byte cap, with our own PNG writer (png_writer.py: faster than
   Pillow's encoder at nearly its size; figures in docs/development.md). A sampled size estimate
   skips the PNG attempt when it clearly cannot fit.
4. Otherwise JPEG at full resolution, quality 95 with 4:4:4 chroma, stepping down to 90 and 85
   only when the 95 size says that can succeed.
5. Still too big: scale down (from the original pixels, Lanczos) to the area the JPEG size
   predicts, then start again at step 3 (PNG is still preferred when it fits). For an over-size
   source, sampled estimates pick that smaller size up front when 4095 px cannot fit anyway.

Every step is deterministic: the same pixels give the same bytes (for a given zlib/libjpeg build),
which matters because the uploaded bytes identify a paid request in the journal and the cache.
The alpha channel is never uploaded; callers re-attach it to the result with `results.attach_alpha`.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from ..errors import ImageError
from .images import JPEG_QUALITY, MAX_SIDE, MAX_UPLOAD_BYTES, MIN_SIDE, EncodedImage, SourceImage, resize
from .png_writer import encode_png, estimate_png_bytes

# Bump when encode_for_upload() would send different pixels for the same input (other limits, another
# resize, another JPEG fallback): the request fingerprint covers it, so old results stop matching.
UPLOAD_POLICY_VERSION = 1
_JPEG_STEPS = ((90, 1.6), (85, 2.2))  # (quality, try it only if the q95 size <= cap * this)
_PNG_ESTIMATE_SLACK = 1.08  # try the PNG when the sampled estimate is within 8% of the cap (it is +-7%)
_SHRINK_TARGET = 0.85  # aim the byte-driven downscale at 85% of the cap
_MAX_SHRINK_ROUNDS = 8


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
        rgb = source.rgb if target == source.size else resize(source.rgb, target)
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
    if estimate_png_bytes(rgb) * area <= MAX_UPLOAD_BYTES * _PNG_ESTIMATE_SLACK:
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
        png = encode_png(rgb)
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


def _png_may_fit(rgb: np.ndarray) -> bool:
    """Whether a PNG attempt is worth it: certain from the raw size, else a sampled estimate."""
    height, width, _ = rgb.shape
    filtered_bytes = height * (width * 3 + 1)
    worst_case = filtered_bytes + filtered_bytes // 8000 * 5 + 1024  # stored blocks + chunk overhead
    if worst_case <= MAX_UPLOAD_BYTES:
        return True
    return estimate_png_bytes(rgb) <= MAX_UPLOAD_BYTES * _PNG_ESTIMATE_SLACK
