"""Make the README's gallery of the local engine (docs/local_controls.jpg, docs/local_looks.jpg).

- local_controls.jpg: each of the six controls alone at 0, 50 and 100 on the two shared portraits
  (cropped to the face, so the change is visible at README size);
- local_looks.jpg: the contact sheet of the 35 looks (and "none") on the bundled portrait.

Everything is computed by the local engine on this machine (deterministic), so running this again
gives the same pictures. Run from the repository root:

    python tools/make_local_gallery.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beauty_api.local.retouch.engine import LocalEngine  # noqa: E402
from beauty_api.local.retouch.looks import apply_look  # noqa: E402
from beauty_api.params import FILTER_NAMES, SLIDER_NAMES, BeautyParams  # noqa: E402

DOCS = ROOT / "docs"
PORTRAITS = (
    ("astronaut", ROOT / "beauty_api" / "data" / "sample_portrait.png"),
    ("grace_hopper", ROOT / "tests" / "data" / "mediapipe_reference" / "portrait_grace_hopper_512x600.jpg"),
)
TILE = 200
LEVELS = (0, 50, 100)
BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def face_crop_box(engine: LocalEngine, rgb: np.ndarray) -> tuple[int, int, int, int]:
    """A square around the face (1.5x its size), clipped to the image."""
    face = engine.find_faces(rgb)[0]
    x0, y0, x1, y1 = face.box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.75 * face.size
    height, width = rgb.shape[:2]
    left, top = max(0, round(cx - half)), max(0, round(cy - half))
    side = min(round(2 * half), width - left, height - top)
    return left, top, left + side, top + side


def tile(rgb: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    return Image.fromarray(rgb).crop(box).resize((TILE, TILE), Image.Resampling.LANCZOS)


def sheet(tiles: list[list[Image.Image]], row_labels: list[str], column_labels: list[str]) -> Image.Image:
    """A grid of tiles with a label column on the left and a label row on top."""
    label_width, label_height = 130, 26
    rows, columns = len(tiles), len(tiles[0])
    canvas = Image.new("RGB", (label_width + columns * TILE, label_height + rows * TILE), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(15)
    for c, text in enumerate(column_labels):
        draw.text((label_width + c * TILE + 6, 5), text, fill=TEXT, font=font)
    for r, row in enumerate(tiles):
        draw.text((6, label_height + r * TILE + TILE // 2 - 8), row_labels[r], fill=TEXT, font=font)
        for c, picture in enumerate(row):
            canvas.paste(picture, (label_width + c * TILE, label_height + r * TILE))
    return canvas


def controls_sheet(engine: LocalEngine) -> Image.Image:
    images = [(name, np.asarray(Image.open(path).convert("RGB"))) for name, path in PORTRAITS]
    boxes = [face_crop_box(engine, rgb) for _, rgb in images]
    rows = []
    for control in SLIDER_NAMES:
        row = []
        for (_, rgb), box in zip(images, boxes, strict=True):
            for level in LEVELS:
                params = BeautyParams(**{**dict.fromkeys(SLIDER_NAMES, 0), control: level})
                row.append(tile(engine.retouch(rgb, params).image, box))
        rows.append(row)
    columns = [f"{name.split('_')[0]} {level}" for name, _ in images for level in LEVELS]
    return sheet(rows, list(SLIDER_NAMES), columns)


def looks_sheet(engine: LocalEngine, per_row: int = 6) -> Image.Image:
    rgb = np.asarray(Image.open(PORTRAITS[0][1]).convert("RGB"))
    box = face_crop_box(engine, rgb)
    names = ["none", *FILTER_NAMES]
    pictures = [tile(apply_look(rgb, number or None), box) for number in range(len(names))]
    label_height = 22
    rows = (len(pictures) + per_row - 1) // per_row
    canvas = Image.new("RGB", (per_row * TILE, rows * (TILE + label_height)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(14)
    for index, (name, picture) in enumerate(zip(names, pictures, strict=True)):
        x, y = (index % per_row) * TILE, (index // per_row) * (TILE + label_height)
        canvas.paste(picture, (x, y + label_height))
        draw.text((x + 6, y + 4), f"{index} {name}" if index else "none", fill=TEXT, font=font)
    return canvas


def main() -> int:
    engine = LocalEngine()
    DOCS.mkdir(exist_ok=True)
    for name, picture in (
        ("local_controls.jpg", controls_sheet(engine)),
        ("local_looks.jpg", looks_sheet(engine)),
    ):
        target = DOCS / name
        picture.save(target, quality=88, optimize=True)
        print(f"wrote {target.relative_to(ROOT)} ({picture.width}x{picture.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
