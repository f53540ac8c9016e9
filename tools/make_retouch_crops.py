"""Make docs/local/*.jpg: 100% crops, input beside output, of what issue 19 asked to look at closely.

- warp_grid.jpg: Grace Hopper's face on a textured grid, thinface 100 + shrink_face 100;
- warp_earring.jpg: a gold hoop drawn beside her jaw, the issue's sliders;
- warp_jaw.jpg: the jaw and neck of the real portrait, the issue's sliders;
- warp_mouth_rings.jpg: rings drawn around the mouth, thinface 80 with smoothing 90 and enlarge_eye 70;
- brows.jpg: both portraits' brows, remove_eyebrow 100 and the issue's sliders with remove_eyebrow 100
  (Grace Hopper's glasses rim lies along her brows: it is kept);
- brows_strand.jpg: a dark hair strand drawn across each brow of both portraits, and a dark arc along
  the astronaut's brows' lower border (as a glasses rim runs), remove_eyebrow 100.
The issue's sliders: smoothing 90, thinface 80, enlarge_eye 70, the others 50. Faces are Google's
reference landmarks (tests/data), so the pictures do not depend on the detector. Deterministic.
Run from the repository root: `python tools/make_retouch_crops.py`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from local_helpers import face_on_grid, portrait, reference_faces  # noqa: E402

from beauty_api.local.faces import topology as T  # noqa: E402
from beauty_api.local.faces.regions import region_mask  # noqa: E402
from beauty_api.local.retouch.engine import retouch_faces  # noqa: E402
from beauty_api.params import SLIDER_NAMES, BeautyParams  # noqa: E402

OUT = ROOT / "docs" / "local"
ZERO = dict.fromkeys(SLIDER_NAMES, 0)
ISSUE = BeautyParams(
    whitening=50, smoothing=90, thinface=80, shrink_face=50, enlarge_eye=70, remove_eyebrow=50
)


def pair(before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    gap = np.full((y1 - y0, 4, 3), 255, dtype=np.uint8)
    return np.concatenate([before[y0:y1, x0:x1], gap, after[y0:y1, x0:x1]], axis=1)


def save(name: str, rows: list[np.ndarray]) -> None:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    Image.fromarray(np.concatenate(padded, axis=0)).save(OUT / name, quality=88)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    face = reference_faces("grace_hopper")[0]
    lm = face.landmarks[:, :2]
    oval = lm[list(T.FACE_OVAL)]
    centre = oval.mean(0)

    grid = face_on_grid("grace_hopper", face)
    warped = retouch_faces(grid, [face], BeautyParams(**{**ZERO, "thinface": 100, "shrink_face": 100}))
    jaw_x, jaw_y = (int(v) for v in lm[172])
    save("warp_grid.jpg", [pair(grid, warped, (max(0, jaw_x - 130), jaw_y - 120, jaw_x + 150, jaw_y + 110))])

    rgb = np.array(portrait("grace_hopper"))
    hoop = Image.fromarray(rgb)
    draw = ImageDraw.Draw(hoop)
    ex, ey = (float(v) for v in centre + (lm[172] - centre) * 1.12)
    radius = 0.07 * face.size
    draw.ellipse((ex - radius, ey, ex + radius, ey + 2 * radius), outline=(212, 175, 55), width=3)
    earring = np.asarray(hoop)
    save(
        "warp_earring.jpg",
        [
            pair(
                earring,
                retouch_faces(earring, [face], ISSUE),
                (int(ex - 70), int(ey - 60), int(ex + 70), int(ey + 2 * radius + 40)),
            )
        ],
    )

    chin_x, chin_y = (int(v) for v in lm[152])
    save(
        "warp_jaw.jpg",
        [
            pair(
                rgb,
                retouch_faces(rgb, [face], ISSUE),
                (chin_x - 140, chin_y - 120, chin_x + 140, chin_y + 60),
            )
        ],
    )

    rings = Image.fromarray(rgb)
    draw = ImageDraw.Draw(rings)
    mx, my = (float(v) for v in (lm[13] + lm[14]) / 2)
    for k in range(1, 8):
        r = 0.06 * face.size * k
        draw.ellipse(
            (mx - r, my - r, mx + r, my + r), outline=(20, 20, 20) if k % 2 else (240, 240, 240), width=2
        )
    ringed = np.asarray(rings)
    sliders = BeautyParams(**{**ZERO, "thinface": 80, "smoothing": 90, "enlarge_eye": 70})
    save(
        "warp_mouth_rings.jpg",
        [
            pair(
                ringed,
                retouch_faces(ringed, [face], sliders),
                (int(mx - 150), int(my - 110), int(mx + 150), int(my + 120)),
            )
        ],
    )

    rows = []
    for name in ("astronaut", "grace_hopper"):
        image, found = np.array(portrait(name)), reference_faces(name)[0]
        brows = found.landmarks[list(T.LEFT_BROW) + list(T.RIGHT_BROW), :2]
        (bx0, by0), (bx1, by1) = brows.amin(0).int().tolist(), brows.amax(0).int().tolist()
        box = (bx0 - 12, by0 - 18, bx1 + 12, by1 + 22)
        for params in (
            BeautyParams(**{**ZERO, "remove_eyebrow": 100}),
            dataclasses.replace(ISSUE, remove_eyebrow=100),
        ):
            rows.append(pair(image, retouch_faces(image, [found], params), box))
    save("brows.jpg", rows)

    rows = []
    for name in ("astronaut", "grace_hopper"):
        image, found = np.array(portrait(name)), reference_faces(name)[0]
        lm = found.landmarks[:, :2]
        streaked = Image.fromarray(image)
        draw = ImageDraw.Draw(streaked)
        for side in (T.LEFT_BROW, T.RIGHT_BROW):
            # a slanted strand through the brow's middle, 0.25 face sizes above and below it
            cx, cy = (float(v) for v in lm[list(side)].mean(0))
            reach = 0.25 * found.size
            draw.line(
                (cx - 0.3 * reach, cy - reach, cx + 0.3 * reach, cy + reach), fill=(40, 32, 28), width=3
            )
        strand = np.asarray(streaked)
        brows = lm[list(T.LEFT_BROW) + list(T.RIGHT_BROW)]
        (bx0, by0), (bx1, by1) = brows.amin(0).int().tolist(), brows.amax(0).int().tolist()
        box = (bx0 - 12, by0 - 18, bx1 + 12, by1 + 22)
        rows.append(
            pair(strand, retouch_faces(strand, [found], BeautyParams(**{**ZERO, "remove_eyebrow": 100})), box)
        )
    # an arc 3 px wide along the astronaut's brows' lower border, as a glasses rim runs
    image, found = np.array(portrait("astronaut")), reference_faces("astronaut")[0]
    lm = found.landmarks[:, :2]
    rimmed = Image.fromarray(image)
    draw = ImageDraw.Draw(rimmed)
    for side in ("left_brow", "right_brow"):
        ys, xs = torch.nonzero(region_mask([found], *image.shape[:2], side) > 0.5).float().unbind(1)
        cx, lower = float(xs.mean()), float(ys.quantile(0.9))  # as tests/test_local_brows.py draws it
        xs = np.linspace(cx - 0.35 * found.size, cx + 0.35 * found.size, 60)
        draw.line([(x, lower + 0.2 * (x - cx) ** 2 / found.size) for x in xs], fill=(40, 32, 28), width=3)
    rim = np.asarray(rimmed)
    brows = lm[list(T.LEFT_BROW) + list(T.RIGHT_BROW)]
    (bx0, by0), (bx1, by1) = brows.amin(0).int().tolist(), brows.amax(0).int().tolist()
    box = (bx0 - 12, by0 - 18, bx1 + 12, by1 + 22)
    rows.append(pair(rim, retouch_faces(rim, [found], BeautyParams(**{**ZERO, "remove_eyebrow": 100})), box))
    save("brows_strand.jpg", rows)


if __name__ == "__main__":
    main()
