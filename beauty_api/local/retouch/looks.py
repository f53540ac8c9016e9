"""The 35 looks: 3D colour LUTs of our own design, stored in `data/looks.npz` (made by tools/make_looks.py).

The API's exact filters are not published; these take only their names and numbers. A look is the
only whole-frame step of the local engine, so it must be cheap at 4K: it runs through Pillow's
`Color3DLUT` (C, trilinear interpolation of the 17^3 table, on 8-bit pixels), which measured
faster than torch's 3D `grid_sample` on the same table. Pillow lets go of the GIL while it filters,
so a large image is filtered in horizontal bands on the engine's threads (pixel by pixel: the
same output however many).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...params import FILTER_NAMES

if TYPE_CHECKING:
    from PIL import ImageFilter

LOOKS_FILE = Path(__file__).resolve().parents[1] / "data" / "looks.npz"
BAND_MIN_PIXELS = 65536  # a band smaller than this costs more to hand to a thread than it saves


@cache
def _tables() -> np.ndarray:
    """[35, N, N, N, 3] float32 in 0..1, indexed (blue, green, red, channel)."""
    if not LOOKS_FILE.is_file():
        raise FileNotFoundError(
            f"The looks data file is missing: {LOOKS_FILE}. Reinstall the pack, or run "
            "`python tools/make_looks.py` in its folder to generate it."
        )
    with np.load(LOOKS_FILE) as data:
        names = [str(name) for name in data["names"]]
        luts = decode_tables(data["deltas"]).astype(np.float32) / 65535.0
    if names != list(FILTER_NAMES):
        raise ValueError(f"{LOOKS_FILE} does not list the 35 filters in the API's order; regenerate it.")
    return luts


def encode_tables(luts: np.ndarray) -> np.ndarray:
    """uint16 LUTs [K, N, N, N, 3] -> int16 differences along the three grid axes, losslessly.

    The tables are smooth, so their differences are small numbers that deflate to a quarter of the
    tables' size: the registry's zip has a size limit (docs/development.md, The registry package)."""
    deltas = luts.astype(np.int32)
    for axis in (1, 2, 3):
        deltas = np.diff(deltas, axis=axis, prepend=0)
    if deltas.min() < np.iinfo(np.int16).min or deltas.max() > np.iinfo(np.int16).max:
        raise ValueError("the looks' tables change too steeply to store as int16 differences")
    return deltas.astype(np.int16)


def decode_tables(deltas: np.ndarray) -> np.ndarray:
    """The inverse of `encode_tables`: the uint16 LUTs back, bit for bit."""
    luts = deltas.astype(np.int32)
    for axis in (1, 2, 3):
        luts = np.cumsum(luts, axis=axis)
    return luts.astype(np.uint16)


def look_table(number: int) -> np.ndarray:
    """The LUT of look `number` (1..35): [N, N, N, 3] float32, indexed (blue, green, red, channel)."""
    if not 1 <= number <= len(FILTER_NAMES):
        raise ValueError(f"look number {number} is not in 1..{len(FILTER_NAMES)}")
    return _tables()[number - 1]


@cache
def _look_filter(number: int) -> ImageFilter.Color3DLUT:
    return pillow_lut(look_table(number))


def pillow_lut(table: np.ndarray) -> ImageFilter.Color3DLUT:
    """A [N, N, N, 3] (blue, green, red, channel) table as Pillow's trilinear 3D LUT filter."""
    from PIL import ImageFilter

    return ImageFilter.Color3DLUT(table.shape[0], table.reshape(-1).tolist(), channels=3)


def apply_table(
    rgb: np.ndarray, table: np.ndarray | ImageFilter.Color3DLUT, *, threads: int = 1
) -> np.ndarray:
    """A 3D LUT (a table, or a filter from `pillow_lut`) applied to an [H, W, 3] uint8 image: a new
    array, filtered in up to `threads` bands at once."""
    lut = pillow_lut(table) if isinstance(table, np.ndarray) else table
    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    bands = max(1, min(threads, height, height * width // BAND_MIN_PIXELS))
    if bands == 1:
        return np.array(_filtered(rgb, lut))
    out = np.empty_like(rgb)
    edges = [height * k // bands for k in range(bands + 1)]

    def band(k: int) -> None:
        rows = slice(edges[k], edges[k + 1])
        out[rows] = _filtered(rgb[rows], lut)

    list(_band_pool(bands).map(band, range(bands)))
    return out


def _filtered(rgb: np.ndarray, lut: ImageFilter.Color3DLUT) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb, "RGB").filter(lut))


@cache
def _band_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="face-beauty-look")


def apply_look(rgb: np.ndarray, number: int | None, *, threads: int = 1) -> np.ndarray:
    """Look `number` applied to an [H, W, 3] uint8 image (a new array); None ("none") returns `rgb`.
    `threads`: how many bands are filtered at once (the engine passes torch's thread count)."""
    if number is None:
        return rgb
    return apply_table(rgb, _look_filter(number), threads=threads)
