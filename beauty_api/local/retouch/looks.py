"""The 35 looks: 3D colour LUTs of our own design, stored in `data/looks.npz` (made by tools/make_looks.py).

The API's exact filters are not published; these take only their names and numbers. A look is the
only whole-frame step of the local engine, so it must be cheap at 4K: it runs through Pillow's
`Color3DLUT` (C, trilinear interpolation of the 17^3 table, on 8-bit pixels), which measured
faster than torch's 3D `grid_sample` on the same table.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...params import FILTER_NAMES

if TYPE_CHECKING:
    from PIL import ImageFilter

LOOKS_FILE = Path(__file__).resolve().parents[1] / "data" / "looks.npz"


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


def apply_table(rgb: np.ndarray, table: np.ndarray | ImageFilter.Color3DLUT) -> np.ndarray:
    """A 3D LUT (a table, or a filter from `pillow_lut`) applied to an [H, W, 3] uint8 image: a new array."""
    from PIL import Image

    lut = pillow_lut(table) if isinstance(table, np.ndarray) else table
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    return np.asarray(image.filter(lut)).copy()


def apply_look(rgb: np.ndarray, number: int | None) -> np.ndarray:
    """Look `number` applied to an [H, W, 3] uint8 image (a new array); None ("none") returns `rgb`."""
    if number is None:
        return rgb
    return apply_table(rgb, _look_filter(number))
