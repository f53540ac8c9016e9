"""The emulator's stand-in retouching: visible, deterministic, fast, and NOT the real effect.

The real API detects the face and retouches it with models nobody outside AILabTools has. The
emulator only needs a result that (a) visibly depends on every parameter, so a wrong or missing
form field shows up in a test or in the demo, (b) is byte-identical for the same image and
parameters, so caching and resume can be tested, and (c) costs well under 100 ms for a
1024x1024 image. It assumes a centred portrait and touches fixed regions:

- whitening lifts every value toward white (a tone curve);
- smoothing blends in a box blur;
- thinface squeezes the picture horizontally toward the centre, shrink_face in both directions
  (the borders stay where they are, so nothing is smeared in from outside);
- enlarge_eye magnifies a disc in the upper middle, where the eyes of a centred portrait are;
- remove_eyebrow blurs a horizontal band above that;
- filter 1 is black and white, filters 2..35 each apply their own colour gains, contrast,
  saturation and lift (15 "Chaplin" is a high-contrast black and white).

Every slider at 0 and no filter returns the input unchanged.

When torch is present the emulator answers with the local engine's real retouching instead
(`render`, effect "local"): the demo, the example thumbnails and the README pictures then show
what the sliders do. The stand-in stays for a Python without torch (and for the test suite,
which only needs a fast, visible, deterministic answer).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

SLIDER_DEFAULT = 50

# filter number: (red gain, green gain, blue gain, contrast, saturation, lift)
_FILTERS: dict[int, tuple[float, float, float, float, float, float]] = {
    1: (1.00, 1.00, 1.00, 1.00, 0.00, 0),  # Black and White
    2: (0.97, 1.00, 1.04, 0.92, 0.80, 4),  # Calm
    3: (1.08, 1.04, 0.94, 1.05, 1.15, 6),  # Sunny Day
    4: (1.04, 1.00, 0.92, 1.10, 0.95, 0),  # Journey
    5: (1.05, 1.02, 1.00, 0.95, 1.00, 10),  # Beautify Skin
    6: (1.06, 0.98, 0.90, 1.15, 0.85, -4),  # Hong Kong Style
    7: (1.00, 1.02, 1.06, 0.90, 0.90, 8),  # Aesthetic
    8: (1.08, 0.98, 1.04, 1.00, 1.10, 6),  # Lovely
    9: (0.96, 1.00, 1.05, 1.20, 0.75, -6),  # New York
    10: (1.10, 0.96, 1.02, 0.98, 1.05, 8),  # Sakura
    11: (1.03, 1.03, 1.03, 1.02, 1.20, 5),  # Seventeen
    12: (1.02, 1.02, 1.02, 0.80, 0.95, 14),  # Soft Light
    13: (1.07, 1.02, 0.90, 0.95, 0.90, 6),  # Afternoon Tea
    14: (1.04, 1.04, 1.04, 0.98, 1.00, 16),  # Brighten Skin
    15: (1.00, 1.00, 1.00, 1.35, 0.00, -6),  # Chaplin
    16: (1.06, 1.00, 1.06, 1.05, 1.25, 2),  # Floral
    17: (1.10, 1.00, 0.85, 0.90, 0.55, 6),  # Memories
    18: (0.92, 1.00, 1.12, 1.05, 0.85, 6),  # Ice Beauty
    19: (1.05, 0.98, 1.00, 1.08, 0.90, 2),  # Paris
    20: (1.02, 0.98, 0.92, 1.10, 0.60, -2),  # Time
    21: (1.05, 1.05, 0.92, 1.30, 1.30, -10),  # LOMO
    22: (1.15, 1.00, 0.80, 0.95, 0.30, 4),  # Old Times
    23: (0.98, 1.06, 0.98, 1.00, 1.10, 6),  # Early Spring
    24: (1.02, 0.98, 1.02, 0.92, 0.80, 0),  # Story
    25: (1.06, 1.02, 1.00, 1.10, 1.35, 0),  # Abao Color
    26: (1.00, 1.00, 1.00, 0.85, 1.00, 20),  # Fill Light
    27: (1.12, 1.02, 0.88, 1.00, 1.05, 2),  # Warm
    28: (1.05, 0.97, 1.03, 1.15, 1.40, -4),  # Gorgeous
    29: (1.02, 0.94, 1.10, 0.98, 0.95, 6),  # Lavender
    30: (1.00, 0.98, 0.98, 1.25, 0.70, -8),  # Chanel
    31: (0.96, 1.02, 1.02, 1.12, 0.85, -2),  # Prague
    32: (1.08, 1.00, 0.90, 0.85, 0.45, 10),  # Old Dreams
    33: (1.10, 0.98, 0.98, 1.00, 1.10, 8),  # Peach Blossom
    34: (1.10, 0.95, 1.05, 1.00, 1.05, 6),  # Pink
    35: (0.96, 1.00, 1.04, 0.75, 0.70, 18),  # Misty Rain
}
FILTER_COUNT = len(_FILTERS)

_LUMA = (0.299, 0.587, 0.114)

# Which retouching the emulator answers with: "local" (the offline engine, needs torch), "stand-in"
# (this module's effect), or "auto" (local when torch is importable, else the stand-in). The
# environment variable overrides "auto" (the test suite sets it to "stand-in" for speed).
EFFECTS = ("auto", "local", "stand-in")
EFFECT_ENV = "FACE_BEAUTY_EMULATOR_EFFECT"

FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
}


@dataclass(frozen=True)
class EncodedResult:
    """A result image as the emulator serves it."""

    data: bytes
    mime_type: str
    extension: str
    size: tuple[int, int]  # (width, height)


def apply_effect(rgb: np.ndarray, sliders: Mapping[str, int], filter_type: int | None = None) -> np.ndarray:
    """The stand-in retouch of an `[H, W, 3]` uint8 image; sliders missing from `sliders` count as 50."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] uint8 array, got {rgb.dtype} {rgb.shape}")
    if filter_type is not None and filter_type not in _FILTERS:
        raise ValueError(f"filter_type must be 1..{FILTER_COUNT} or None, got {filter_type!r}")

    def level(name: str) -> float:
        return float(sliders.get(name, SLIDER_DEFAULT)) / 100.0

    out = _squeeze(rgb, level("thinface"), level("shrink_face"))
    out = _enlarge_eyes(out, level("enlarge_eye"))
    image = Image.fromarray(np.ascontiguousarray(out), "RGB")
    image = _smooth(image, level("smoothing"))
    image = _remove_eyebrows(image, level("remove_eyebrow"))
    image = _recolour(image, level("whitening"), filter_type)
    return np.array(image, dtype=np.uint8)


def resolve_effect(choice: str = "auto") -> str:
    """The effect an emulator created with `choice` uses: "local" or "stand-in" (see EFFECTS)."""
    if choice not in EFFECTS:
        raise ValueError(f"effect must be one of {', '.join(EFFECTS)}, got {choice!r}")
    if choice == "auto":
        choice = os.environ.get(EFFECT_ENV) or "auto"
        if choice not in EFFECTS:
            raise ValueError(f"{EFFECT_ENV} must be one of {', '.join(EFFECTS)}, got {choice!r}")
    if choice == "auto":
        choice = "local" if local_engine_available() else "stand-in"
    return choice


def local_engine_available() -> bool:
    """True when torch and kornia (>= 0.7.1) can be imported: the local engine's own needs."""
    from ..local.needs import missing

    return not missing()


_engine_lock = threading.Lock()
_engine: list[object] = []


def warm_up_local_engine() -> None:
    """Import torch and load the face models now, so the first submit is answered as fast as the
    rest (a cold first render takes seconds, which would make the first task look done at once)."""
    render(np.full((128, 128, 3), 128, dtype=np.uint8), {}, None, "local")


def render(rgb: np.ndarray, sliders: Mapping[str, int], filter_type: int | None, effect: str) -> np.ndarray:
    """The emulator's answer: the local engine's retouch (`effect` "local") or the stand-in."""
    if effect != "local":
        return apply_effect(rgb, sliders, filter_type)
    from ..local.retouch.engine import LocalEngine
    from ..params import SLIDER_NAMES, BeautyParams

    params = BeautyParams(
        **{name: int(sliders.get(name, SLIDER_DEFAULT)) for name in SLIDER_NAMES}, filter_type=filter_type
    )
    with _engine_lock:  # one engine (models loaded once) shared by the server's threads
        if not _engine:
            _engine.append(LocalEngine())
        engine = _engine[0]
        assert isinstance(engine, LocalEngine)
        return engine.retouch(rgb, params).image


def encode_result(rgb: np.ndarray, fmt: str = "PNG", scale: float = 1.0) -> EncodedResult:
    """Encode the result as the CDN or a sync answer carries it, optionally resized by `scale`."""
    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise ValueError(f"result format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    image = Image.fromarray(rgb, "RGB")
    if scale != 1.0:
        width = max(1, round(image.width * scale))
        height = max(1, round(image.height * scale))
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    if fmt == "PNG":
        image.save(buffer, "PNG", compress_level=1)
    elif fmt == "JPEG":
        image.save(buffer, "JPEG", quality=92)
    else:
        image.save(buffer, "WEBP", quality=90, method=0)
    mime_type, extension = FORMATS[fmt]
    return EncodedResult(buffer.getvalue(), mime_type, extension, image.size)


def _pinch(length: int, strength: float) -> np.ndarray:
    """Source indices that pull content toward the centre by up to `strength`, ends fixed."""
    centre = (length - 1) / 2.0
    radius = max(centre, 1.0)
    d = np.arange(length, dtype=np.float32) - centre
    src = centre + d * (1.0 + strength * (1.0 - np.abs(d) / radius))
    return np.clip(np.rint(src), 0, length - 1).astype(np.intp)


def _squeeze(rgb: np.ndarray, thin: float, shrink: float) -> np.ndarray:
    kx = 0.25 * thin + 0.15 * shrink
    ky = 0.15 * shrink
    if kx == 0 and ky == 0:
        return rgb
    height, width = rgb.shape[:2]
    rows = rgb[_pinch(height, ky)] if ky else rgb
    return np.take(rows, _pinch(width, kx), axis=1)


def _enlarge_eyes(rgb: np.ndarray, amount: float) -> np.ndarray:
    if amount == 0:
        return rgb
    height, width = rgb.shape[:2]
    radius = max(2.0, 0.22 * min(height, width))
    cy, cx = 0.42 * (height - 1), 0.5 * (width - 1)
    top, bottom = max(0, int(cy - radius)), min(height, int(cy + radius) + 1)
    left, right = max(0, int(cx - radius)), min(width, int(cx + radius) + 1)
    ys = np.arange(top, bottom, dtype=np.float32)[:, None] - cy
    xs = np.arange(left, right, dtype=np.float32)[None, :] - cx
    r2 = (ys * ys + xs * xs) / (radius * radius)
    factor = np.where(r2 < 1.0, 1.0 - 0.35 * amount * (1.0 - r2), 1.0)
    src_y = np.clip(np.rint(cy + ys * factor), 0, height - 1).astype(np.intp)
    src_x = np.clip(np.rint(cx + xs * factor), 0, width - 1).astype(np.intp)
    out = rgb.copy()
    out[top:bottom, left:right] = rgb[src_y, src_x]
    return out


def _soft(image: Image.Image, divisor: int) -> Image.Image:
    """A cheap, deterministic blur: shrink by about min(size)/divisor, then scale back up."""
    factor = max(2, min(image.size) // divisor)
    return image.reduce(factor).resize(image.size, Image.Resampling.BILINEAR)


def _smooth(image: Image.Image, amount: float) -> Image.Image:
    if amount == 0:
        return image
    return Image.blend(image, _soft(image, 170), 0.7 * amount)


def _remove_eyebrows(image: Image.Image, amount: float) -> Image.Image:
    if amount == 0:
        return image
    width, height = image.size
    top = int(0.29 * height)
    left = int(0.25 * width)
    box = (left, top, max(left + 1, int(0.75 * width)), max(top + 1, int(0.36 * height)))
    band = image.crop(box)
    out = image.copy()
    out.paste(Image.blend(band, _soft(band, 3), 0.9 * amount), box[:2])
    return out


def _recolour(image: Image.Image, whitening: float, filter_type: int | None) -> Image.Image:
    """Whitening (a lift toward white) followed by the filter, folded into one affine colour matrix."""
    if filter_type is None:
        if whitening == 0:
            return image
        lut = [min(255, round(v + (255 - v) * 0.4 * whitening)) for v in range(256)]
        return image.point(lut * 3)
    red, green, blue, contrast, saturation, lift = _FILTERS[filter_type]
    keep = 1.0 - 0.4 * whitening  # whitening: x -> keep * x + (1 - keep) * 255
    rows: list[float] = []
    for channel, gain in enumerate((red, green, blue)):
        # saturation mixes each channel with luma; then gain, then contrast around 128, then lift
        weights = [(1.0 - saturation) * luma for luma in _LUMA]
        weights[channel] += saturation
        scale = contrast * gain
        linear = [scale * weight for weight in weights]
        offset = 128.0 * (1.0 - contrast) + lift + (1.0 - keep) * 255.0 * sum(linear)
        rows += [keep * value for value in linear] + [offset]
    return image.convert("RGB", tuple(rows))
