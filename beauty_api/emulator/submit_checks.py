"""Every documented check of a submit (fields, image size, type, resolution, face), raising `Refusal`."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .answers import Refusal
from .contract import MAX_IMAGE_BYTES, MAX_SIDE, MIN_SIDE, NO_FACE_STD, SLIDER_CODES, SLIDER_FIELDS
from .effect import FILTER_COUNT
from .multipart import SubmitRequest


def _check_slider(name: str, raw: str | None) -> int:
    if raw is None:
        return 50
    if re.fullmatch(r"[0-9]{1,3}", raw) and int(raw) <= 100:
        return int(raw)
    code = SLIDER_CODES.get(name, "ERROR_INVALID_PARAMETER")
    raise Refusal(code, f"{name} must be an integer from 0 to 100, got {raw!r}")


def _check_filter(raw: str | None) -> int | None:
    if raw is None:
        return None
    if re.fullmatch(r"[0-9]{1,2}", raw) and 1 <= int(raw) <= FILTER_COUNT:
        return int(raw)
    raise Refusal(
        "UNSUPPORTED_PARAMETER_VALUES", f"filter_type must be one of 1..{FILTER_COUNT}, got {raw!r}"
    )


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    return None


def _other_format(data: bytes) -> str | None:
    """Format name Pillow gives bytes that are not JPEG/PNG, or None if nothing recognises them."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format or "unknown"
    except Exception:
        return None


def decode_upload(data: bytes) -> np.ndarray:
    """Check an uploaded image as the API does (size, type, decoding, resolution, face) and decode it."""
    if len(data) > MAX_IMAGE_BYTES:
        raise Refusal(
            "FILE_SIZE_EXCEEDS_LIMIT",
            f"image is {len(data)} bytes; the limit is 2 MB (read as {MAX_IMAGE_BYTES} bytes)",
        )
    if _sniff(data) is None:
        other = _other_format(data)
        if other is not None:
            raise Refusal("UNSUPPORTED_FILE_TYPES", f"image format {other} is not supported; use JPEG or PNG")
        raise Refusal("FILE_DECODING_FAILURE", "image bytes are not a recognisable image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_resolution(*image.size)
            image.load()
            rgb = np.asarray(image.convert("RGB"))
    except Refusal:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... on broken files
        raise Refusal("FILE_DECODING_FAILURE", f"image could not be decoded ({type(exc).__name__})") from None
    if float(rgb[::4, ::4].std()) < NO_FACE_STD:
        raise Refusal("ERROR_NO_FACE_IN_FILE", "pic not has face")
    return rgb


def _check_resolution(width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise Refusal(
            "ERROR_LOW_RESOLUTION", f"image is {width}x{height}; each side must be larger than 48 px"
        )
    if max(width, height) > MAX_SIDE:
        raise Refusal(
            "FILE_RESOLUTION_EXCEEDS_LIMITS",
            f"image is {width}x{height}; each side must be smaller than 4096 px",
        )


@dataclass(frozen=True)
class ValidSubmit:
    task_type: str
    sliders: dict[str, int]
    filter_type: int | None
    rgb: np.ndarray


def validate_submit(request: SubmitRequest) -> ValidSubmit:
    """Every documented check of a submit, in the emulator's order; raises Refusal."""
    task_type = request.fields.get("task_type", "sync")
    if task_type not in ("async", "sync"):
        raise Refusal(
            "UNSUPPORTED_PARAMETER_VALUES", f"task_type must be 'async' or 'sync', got {task_type!r}"
        )
    if request.image is None or not request.image.data:
        raise Refusal("MISSING_PARAMETERS", "image is required (a multipart file part named 'image')")
    sliders = {name: _check_slider(name, request.fields.get(name)) for name in SLIDER_FIELDS}
    filter_type = _check_filter(request.fields.get("filter_type"))
    rgb = decode_upload(request.image.data)
    return ValidSubmit(task_type, sliders, filter_type, rgb)
