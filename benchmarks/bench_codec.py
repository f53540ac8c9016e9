"""Codec timings: upload encoding, decoding of the upload, tensor -> SourceImage.

Run: `python benchmarks/bench_codec.py`. Prints a table; no pass/fail exit status. Images are
synthesised with fixed seeds ("photo-like" = an upscaled smooth random field, a soft ripple and
mild noise), so runs are comparable across machines.
"""

from __future__ import annotations

import io
import os
import platform
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import PIL
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from beauty_api import codec

T = TypeVar("T")
GOAL_MS = 60.0


def photo_like(side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
    base = np.asarray(small.resize((side, side), Image.Resampling.BICUBIC), dtype=np.int16)
    ripple = (12 * np.sin(np.arange(side) * (512 / side) / 7.0)).astype(np.int16)[None, :, None]
    noise = rng.integers(-4, 5, (side, side, 3), dtype=np.int16)
    return np.clip(base + ripple + noise, 0, 255).astype(np.uint8)


def uniform_noise(side: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def median_ms(function: Callable[[], T], runs: int) -> tuple[float, T]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result  # type: ignore[return-value]


def pillow_png_ms(rgb: np.ndarray) -> float:
    def encode() -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()

    return median_ms(encode, 3)[0]


def main() -> None:
    print(
        f"cores: {os.cpu_count()}  python {platform.python_version()}  numpy {np.__version__}  "
        f"Pillow {PIL.__version__}  zlib {zlib.ZLIB_RUNTIME_VERSION}"
    )
    cases = [
        (f"photo {side}", photo_like(side), runs)
        for side, runs in ((512, 9), (1024, 9), (2048, 5), (4096, 3))
    ]
    cases.append(("noise 2048", uniform_noise(2048), 3))
    header = f"{'image':<12} {'encode ms':>10} {'format':>7} {'bytes':>10} {'uploaded':>11} {'decode ms':>10}"
    print(header)
    print("-" * len(header))
    encode_1024 = float("nan")
    for name, rgb, runs in cases:
        source = codec.SourceImage(rgb)
        encode_ms, upload = median_ms(lambda source=source: codec.encode_for_upload(source), runs)
        decode_ms, _ = median_ms(lambda upload=upload: codec.decode_image(upload.data), runs)
        fmt = upload.mime_type.split("/")[1].upper()
        resolution = f"{upload.size[0]}x{upload.size[1]}"
        print(
            f"{name:<12} {encode_ms:>10.1f} {fmt:>7} {len(upload.data):>10} {resolution:>11} {decode_ms:>10.1f}"
        )
        if name == "photo 1024":
            encode_1024 = encode_ms
    print()
    verdict = "PASS" if encode_1024 < GOAL_MS else "MISS"
    print(f"goal: encode 1024x1024 photo under {GOAL_MS:.0f} ms: {encode_1024:.1f} ms  {verdict}")
    print(
        f"reference: Pillow's own PNG encoder (compress_level=1) on the same 1024x1024 photo: "
        f"{pillow_png_ms(photo_like(1024)):.1f} ms"
    )
    try:
        import torch
    except ImportError:
        print("tensor -> SourceImage: skipped (torch not installed)")
        return
    tensor = torch.from_numpy(photo_like(1024)).to(torch.float32).div_(255.0)[None]
    convert_ms, _ = median_ms(lambda: codec.images_from_input(tensor), 9)
    print(
        f"tensor [1,1024,1024,3] float32 -> SourceImage: {convert_ms:.1f} ms (torch threads: {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
