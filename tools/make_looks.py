"""Generate the 35 looks of the local engine: `beauty_api/local/data/looks.npz`.

The API's own filters are not published, so every look here is our own design, inspired by
its name only. Each look is a recipe of a few monotone colour steps (white balance, exposure,
contrast curve, fade, saturation, split toning, channel mixing) evaluated on a 17x17x17 grid of
RGB values and stored as a 3D LUT (uint16, blue-major like Pillow's Color3DLUT). Everything is
plain numpy arithmetic, so running this again gives byte-identical data:

    python tools/make_looks.py            # writes the file
    python tools/make_looks.py --check    # fails if the stored file differs from the recipes

Design rules the tests check: every look differs from the others and from "none"; on a grey
ramp luminance never goes down and never flattens into bands (every curve is strictly
increasing); mid-greys are never pushed to pure black or white.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beauty_api.local.retouch.looks import decode_tables, encode_tables  # noqa: E402
from beauty_api.params import FILTER_NAMES  # noqa: E402

OUTPUT = ROOT / "beauty_api" / "local" / "data" / "looks.npz"
GRID = 17
LUMA = np.array([0.2126, 0.7152, 0.0722])


@dataclass(frozen=True)
class Recipe:
    """One look: each field is a gentle, monotone step; defaults are "leave alone"."""

    temperature: float = 0.0  # + warmer (more red, less blue), - cooler
    tint: float = 0.0  # + magenta, - green
    exposure: float = 0.0  # stops
    gamma: float = 1.0  # > 1 brightens mid-tones
    contrast: float = 0.0  # S-curve strength, -0.5..0.8 (negative flattens)
    fade: float = 0.0  # lifts blacks and lowers whites, 0..0.2
    saturation: float = 1.0
    vibrance: float = 0.0  # saturates the dull colours more than the vivid ones
    shadows: tuple[float, float, float] = (0.0, 0.0, 0.0)  # tint added in the shadows
    highlights: tuple[float, float, float] = (0.0, 0.0, 0.0)  # tint added in the highlights
    mono: tuple[float, float, float] | None = None  # channel mixer weights: a monochrome look
    mono_tone: tuple[float, float, float] = (0.0, 0.0, 0.0)  # tint of a monochrome look (sepia...)
    red_to_pink: float = 0.0  # moves reds toward pink (rosy looks)


RECIPES: dict[str, Recipe] = {
    "Black and White": Recipe(mono=(0.30, 0.59, 0.11), contrast=0.15),
    "Calm": Recipe(temperature=-0.04, saturation=0.78, contrast=-0.15, fade=0.04),
    "Sunny Day": Recipe(temperature=0.10, exposure=0.15, saturation=1.15, contrast=0.15),
    "Journey": Recipe(temperature=0.06, saturation=0.90, contrast=0.25, shadows=(0.0, 0.02, 0.04)),
    "Beautify Skin": Recipe(exposure=0.12, gamma=1.08, tint=0.03, contrast=-0.10, vibrance=0.1),
    "Hong Kong Style": Recipe(
        temperature=0.06, saturation=0.85, contrast=0.35, shadows=(0.0, 0.04, 0.03), fade=0.03
    ),
    "Aesthetic": Recipe(temperature=-0.03, saturation=0.80, fade=0.08, highlights=(0.03, 0.0, 0.03)),
    "Lovely": Recipe(tint=0.06, exposure=0.08, saturation=1.10, highlights=(0.04, 0.0, 0.02)),
    "New York": Recipe(temperature=-0.05, saturation=0.70, contrast=0.45, shadows=(0.0, 0.01, 0.04)),
    "Sakura": Recipe(tint=0.08, red_to_pink=0.5, exposure=0.10, highlights=(0.04, 0.0, 0.03)),
    "Seventeen": Recipe(exposure=0.10, saturation=1.25, vibrance=0.2, contrast=0.10),
    "Soft Light": Recipe(contrast=-0.35, fade=0.06, exposure=0.08, gamma=1.05),
    "Afternoon Tea": Recipe(temperature=0.12, saturation=0.88, fade=0.05, shadows=(0.03, 0.01, 0.0)),
    "Brighten Skin": Recipe(exposure=0.22, gamma=1.12, contrast=-0.05, temperature=0.02),
    "Chaplin": Recipe(mono=(0.35, 0.50, 0.15), contrast=0.60, fade=0.02),
    "Floral": Recipe(saturation=1.30, tint=0.04, highlights=(0.02, 0.03, 0.0), vibrance=0.15),
    "Memories": Recipe(temperature=0.10, saturation=0.55, fade=0.10, contrast=-0.10),
    "Ice Beauty": Recipe(temperature=-0.14, exposure=0.10, saturation=0.85, highlights=(0.0, 0.02, 0.05)),
    "Paris": Recipe(tint=0.04, temperature=0.03, contrast=0.20, fade=0.05, shadows=(0.03, 0.0, 0.04)),
    "Time": Recipe(temperature=0.05, saturation=0.60, contrast=0.25, shadows=(0.02, 0.02, 0.0)),
    "LOMO": Recipe(contrast=0.55, saturation=1.35, shadows=(0.0, 0.0, 0.06), highlights=(0.04, 0.04, 0.0)),
    "Old Times": Recipe(mono=(0.30, 0.59, 0.11), mono_tone=(0.09, 0.03, -0.07), fade=0.08),
    "Early Spring": Recipe(tint=-0.05, saturation=1.10, exposure=0.08, highlights=(0.0, 0.03, 0.01)),
    "Story": Recipe(temperature=0.03, saturation=0.75, contrast=0.10, fade=0.12),
    "Abao Color": Recipe(saturation=1.45, contrast=0.25, temperature=0.02, vibrance=0.25),
    "Fill Light": Recipe(gamma=1.30, contrast=-0.20, exposure=0.05),
    "Warm": Recipe(temperature=0.18, saturation=1.05),
    "Gorgeous": Recipe(saturation=1.40, contrast=0.40, tint=0.03, vibrance=0.1),
    "Lavender": Recipe(tint=0.06, temperature=-0.08, saturation=0.90, highlights=(0.03, 0.0, 0.05)),
    "Chanel": Recipe(saturation=0.55, contrast=0.50, fade=0.03, temperature=-0.02),
    "Prague": Recipe(
        temperature=-0.06, tint=-0.03, saturation=0.80, contrast=0.30, shadows=(0.0, 0.03, 0.03)
    ),
    "Old Dreams": Recipe(temperature=0.08, saturation=0.45, fade=0.14, highlights=(0.03, 0.02, 0.0)),
    "Peach Blossom": Recipe(temperature=0.07, tint=0.05, red_to_pink=0.3, exposure=0.10, saturation=1.05),
    "Pink": Recipe(tint=0.10, red_to_pink=0.7, highlights=(0.05, 0.0, 0.03)),
    "Misty Rain": Recipe(temperature=-0.07, saturation=0.65, contrast=-0.40, fade=0.16, exposure=0.05),
}


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ LUMA


def s_curve(x: np.ndarray, strength: float) -> np.ndarray:
    """Strictly increasing contrast curve through (0,0), (0.5,0.5), (1,1); negative flattens."""
    if strength == 0:
        return x
    smooth = x * x * (3.0 - 2.0 * x)  # smoothstep: slope 0 at the ends, 1.5 in the middle
    if strength > 0:  # blend toward smoothstep; the blend keeps a positive slope everywhere
        return (1.0 - strength) * x + strength * smooth
    # flatter: blend toward the inverse of smoothstep (steep ends, flat middle), kept gentle
    inverse = 0.5 - np.sin(np.arcsin(np.clip(1.0 - 2.0 * x, -1.0, 1.0)) / 3.0)
    return (1.0 + strength) * x - strength * inverse


def apply_recipe(rgb: np.ndarray, recipe: Recipe) -> np.ndarray:
    """The look of `recipe` on an [..., 3] array of RGB values in 0..1."""
    out = rgb.astype(np.float64)
    if recipe.mono is not None:
        grey = out @ np.asarray(recipe.mono)
        out = np.repeat(grey[..., None], 3, axis=-1)
    # white balance: temperature along red-blue, tint along green-magenta
    gains = np.array(
        [
            1.0 + recipe.temperature + 0.5 * recipe.tint,
            1.0 - recipe.tint,
            1.0 - recipe.temperature + 0.5 * recipe.tint,
        ]
    )
    out = out * gains / gains.max() * (1.0 + 0.5 * (gains.max() - 1.0))
    # exposure as a curve through (0, 0) and (1, 1) with slope 2**exposure at black: brightens
    # like a gain in the shadows and rolls the highlights off instead of clipping them
    out = 1.0 - (1.0 - np.clip(out, 0.0, 1.0)) ** (2.0**recipe.exposure)
    out = out ** (1.0 / recipe.gamma)
    out = s_curve(out, recipe.contrast)
    grey = luminance(out)[..., None]
    chroma = out - grey
    if recipe.vibrance:
        vividness = np.abs(chroma).max(axis=-1, keepdims=True)
        chroma = chroma * (1.0 + recipe.vibrance * (1.0 - np.clip(vividness * 3.0, 0.0, 1.0)))
    out = grey + chroma * recipe.saturation
    if recipe.red_to_pink:
        redness = np.clip(out[..., 0:1] - np.maximum(out[..., 1:2], out[..., 2:3]), 0.0, 1.0)
        out = out + recipe.red_to_pink * redness * np.array([0.0, -0.15, 0.35])
    weight_shadow = (1.0 - grey) ** 2
    weight_light = grey**2
    out = out + weight_shadow * np.asarray(recipe.shadows) + weight_light * np.asarray(recipe.highlights)
    if recipe.mono is not None:
        out = out + 4.0 * grey * (1.0 - grey) * np.asarray(recipe.mono_tone)
    out = recipe.fade + (1.0 - 2.0 * recipe.fade) * out
    return soft_clip(out)


def soft_clip(x: np.ndarray, knee: float = 0.08) -> np.ndarray:
    """Identity in the middle, rolled off smoothly near 0 and 1: strictly increasing and never flat.

    A hard clip would turn every value a tint pushed past white into one band of 255s.
    """
    top = 1.0 - knee
    x = np.where(x > top, top + knee * np.tanh((x - top) / knee), x)
    return np.where(x < knee, knee - knee * np.tanh((knee - x) / knee), x)


def build_luts() -> np.ndarray:
    """[35, 17, 17, 17, 3] uint16 (blue, green, red, channel), in the API's filter order."""
    if list(RECIPES) != list(FILTER_NAMES):
        raise SystemExit("RECIPES must list exactly the API's 35 filter names, in order")
    axis = np.linspace(0.0, 1.0, GRID)
    blue, green, red = np.meshgrid(axis, axis, axis, indexing="ij")
    grid = np.stack([red, green, blue], axis=-1)
    luts = [apply_recipe(grid, RECIPES[name]) for name in FILTER_NAMES]
    return np.rint(np.stack(luts) * 65535.0).astype(np.uint16)


def encoded(luts: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, deltas=encode_tables(luts), names=np.array(FILTER_NAMES))
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the stored file, write nothing")
    args = parser.parse_args(argv)
    luts = build_luts()
    if args.check:
        with np.load(OUTPUT) as stored:
            same = np.array_equal(decode_tables(stored["deltas"]), luts)
        print("looks.npz is up to date" if same else "looks.npz differs from the recipes: regenerate it")
        return 0 if same else 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_bytes(encoded(luts))
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({OUTPUT.stat().st_size // 1024} KiB, {len(luts)} looks)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
