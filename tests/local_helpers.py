"""Shared by the local-engine tests: the shared portraits, their reference faces, the face analyzer
(loaded once per session) and the measurements of the issue's "measured, not eyeballed" list.

Not a test module. Landmarks measured on an OUTPUT image come from the face analyzer when it is
available; before it existed, the warp's own inverse stood in (`measured_faces` says which).
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from beauty_api.local.faces import topology as T
from beauty_api.local.faces.face import Face
from beauty_api.local.faces.regions import region_mask
from beauty_api.local.retouch.warp import normalised_radius

DATA = Path(__file__).resolve().parent / "data" / "mediapipe_reference"
ROOT = Path(__file__).resolve().parents[1]
PORTRAITS = {
    "astronaut": (ROOT / "beauty_api" / "data" / "sample_portrait.png", "portrait_astronaut_512.png"),
    "grace_hopper": (DATA / "portrait_grace_hopper_512x600.jpg", "portrait_grace_hopper_512x600.jpg"),
}


@cache
def _reference() -> dict:
    return json.loads((DATA / "mediapipe_face_reference.json").read_text(encoding="utf-8"))


def face_from_landmarks(landmarks: torch.Tensor) -> Face:
    lo, hi = landmarks[:, :2].amin(0), landmarks[:, :2].amax(0)
    return Face(landmarks, 1.0, (lo[0].item(), lo[1].item(), hi[0].item(), hi[1].item()), 0.0)


@cache
def portrait(name: str) -> np.ndarray:
    """A shared portrait as HxWx3 uint8 (read-only: tests copy before changing it)."""
    array = np.asarray(Image.open(PORTRAITS[name][0]).convert("RGB"))
    array.setflags(write=False)
    return array


def reference_faces(name: str) -> list[Face]:
    """Google's own landmarks for a shared portrait (from the reference JSON)."""
    entry = _reference()["images"][PORTRAITS[name][1]]
    return [
        face_from_landmarks(torch.tensor(face["mesh478"]["landmarks_px_xyz"], dtype=torch.float32))
        for face in entry["faces"]
    ]


# -- measurements -------------------------------------------------------------------------------


def polygon_area(points: torch.Tensor) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(0.5 * (x * torch.roll(y, -1) - torch.roll(x, -1) * y).sum().abs())


def jaw_width(face: Face) -> float:
    return float((face.landmarks[172, :2] - face.landmarks[397, :2]).norm())


def pupil_distance(face: Face) -> float:
    lm = face.landmarks
    return float((lm[T.RIGHT_IRIS_CENTER, :2] - lm[T.LEFT_IRIS_CENTER, :2]).norm())


def oval_area(face: Face) -> float:
    return polygon_area(face.landmarks[list(T.FACE_OVAL), :2])


def eye_areas(face: Face) -> tuple[float, float]:
    lm = face.landmarks[:, :2]
    return polygon_area(lm[list(T.RIGHT_EYE)]), polygon_area(lm[list(T.LEFT_EYE)])


def _luma(rgb: np.ndarray) -> torch.Tensor:
    image = torch.from_numpy(np.array(rgb, dtype=np.float32)) / 255.0
    return image @ torch.tensor([0.299, 0.587, 0.114])


def high_frequency_energy(rgb: np.ndarray, mask: torch.Tensor) -> float:
    """Mean squared (luma minus its Gaussian blur, sigma 2 px) inside `mask` (weights 0..1)."""
    import kornia.filters

    luma = _luma(rgb)[None, None]
    blurred = kornia.filters.gaussian_blur2d(luma, (13, 13), (2.0, 2.0), border_type="reflect")
    detail = (luma - blurred)[0, 0]
    return float((detail.square() * mask).sum() / mask.sum())


def cheek_mask(face: Face, height: int, width: int) -> torch.Tensor:
    """Two discs on the cheeks (around points 205 and 425), 7% of the face's size in radius."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    mask = torch.zeros(height, width)
    for point in (205, 425):
        cx, cy = face.landmarks[point, :2]
        mask[(xs - cx) ** 2 + (ys - cy) ** 2 <= (0.07 * face.size) ** 2] = 1.0
    return mask


def mean_lightness(rgb: np.ndarray, mask: torch.Tensor) -> float:
    """Mean CIE L* inside `mask`."""
    import kornia.color

    image = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0
    lightness = kornia.color.rgb_to_lab(image)[0, 0]
    return float((lightness * mask).sum() / mask.sum())


def brow_contrast(rgb: np.ndarray, face: Face, original: np.ndarray) -> float:
    """|mean luma in the brows - mean luma of the skin around them| in `rgb`.

    "Around": a ring 1.5% to 5% of the face's size outside the brows, without the eyes, and only
    where `original` is skin-coloured (luma within 0.12 of the cheeks' median), so a fringe of hair
    just above a brow does not count as its surroundings. The same pixels are used before and after.
    """
    height, width = rgb.shape[:2]
    size = face.size
    brows = region_mask([face], height, width, "brows", grow=-0.005 * size) > 0.5
    ring = (region_mask([face], height, width, "brows", grow=0.05 * size) > 0.5) & ~(
        region_mask([face], height, width, "brows", grow=0.015 * size) > 0.5
    )
    ring &= ~(region_mask([face], height, width, "eyes", grow=0.03 * size) > 0.5)
    before = _luma(original)
    skin_luma = before[cheek_mask(face, height, width) > 0].median()
    ring &= (before - skin_luma).abs() < 0.12
    luma = _luma(rgb)
    return float((luma[brows].mean() - luma[ring].mean()).abs())


def lightness(rgb: np.ndarray) -> torch.Tensor:
    """CIE L* [H, W] of an HxWx3 uint8 image."""
    import kornia.color

    image = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0
    return kornia.color.rgb_to_lab(image)[0, 0]


def brow_and_skin_beside(
    original: np.ndarray,
    face: Face,
    side: str = "brows",
    *,
    ring: tuple[float, float] = (0.015, 0.05),
    eyes: float = 0.03,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[H, W] bool each: a brow region ("brows", "left_brow", "right_brow"), shrunk by half a percent
    of the face's size, and the skin beside it: the ring `ring` (fractions of the face's size) outside
    it, without the eyes grown by `eyes`, only where `original` is within 12 L* of the cheeks' median
    (no fringe of hair). Taken from the input, so the same pixels are measured before and after."""
    height, width = original.shape[:2]
    size = face.size
    brow = region_mask([face], height, width, side, grow=-0.005 * size) > 0.5
    beside = (region_mask([face], height, width, side, grow=ring[1] * size) > 0.5) & ~(
        region_mask([face], height, width, side, grow=ring[0] * size) > 0.5
    )
    beside &= ~(region_mask([face], height, width, "eyes", grow=eyes * size) > 0.5)
    before = lightness(original)
    beside &= (before - before[cheek_mask(face, height, width) > 0].median()).abs() < 12
    return brow, beside


def brow_lightness(
    rgb: np.ndarray, face: Face, original: np.ndarray, side: str, skip: torch.Tensor | None = None
) -> float:
    """Mean L* of a brow region (`brow_and_skin_beside`) minus that of the skin beside it, in `rgb`:
    negative for a brow darker than the skin, positive for an area lighter than it (an inverted brow).
    Pixels where `skip` [H, W] (bool) is set count in neither (a glasses rim that is meant to stay)."""
    brow, ring = brow_and_skin_beside(original, face, side)
    if skip is not None:
        brow, ring = brow & ~skip, ring & ~skip
    after = lightness(rgb)
    return float(after[brow].mean() - after[ring].mean())


def kept_lines(rgb: np.ndarray, face: Face) -> torch.Tensor:
    """[H, W] bool: the dark lines crossing or bordering the brows of `rgb` that brow removal keeps
    (strands, lashes, a glasses rim), as the engine finds them (`lines_to_keep`)."""
    from beauty_api.local.retouch.brows import lines_to_keep
    from beauty_api.local.retouch.engine import BROW_GROW

    height, width = rgb.shape[:2]
    image = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0
    brows = region_mask([face], height, width, "brows", grow=BROW_GROW * face.size)
    keep = lines_to_keep(image, brows, face.size)
    return torch.zeros(height, width, dtype=torch.bool) if keep is None else keep


def far_outside_face(face: Face, height: int, width: int, reach: float | None = None) -> torch.Tensor:
    """Pixels farther than 25% of the face's size outside its oval; with `reach`, pixels farther from the
    oval's centroid than `reach` times the oval's radius in their direction (where a warp has faded out)."""
    if reach is None:
        return region_mask([face], height, width, "face", grow=0.25 * face.size) == 0
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    xy = torch.stack([xs, ys], dim=-1).float()
    return normalised_radius(xy, face.landmarks[list(T.FACE_OVAL), :2].float()) >= reach


def mean_level_difference(a: np.ndarray, b: np.ndarray, where: torch.Tensor) -> float:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
    return float(torch.from_numpy(diff)[where].float().mean())


def shifted(rgb: np.ndarray, dx: int) -> np.ndarray:
    """`rgb` moved `dx` px to the right (edge pixels repeated on the left)."""
    image = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    moved = F.pad(image, (dx, 0, 0, 0), mode="replicate")[..., : rgb.shape[1]]
    return moved[0].permute(1, 2, 0).round().to(torch.uint8).numpy()


def move_points(points: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """The warp's inverse, for measurements: where points [N, 2] (crop px) end up after the warp: solve p' + field(p') = p by fixed-point steps."""
    height, width = field.shape[:2]
    volume = field.permute(2, 0, 1).unsqueeze(0)
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=field.device)
    moved = points.clone()
    for _ in range(8):
        grid = (moved * scale - 1.0).view(1, 1, -1, 2)
        shift = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
        moved = points - shift[0, :, 0].T
    return moved


def retouch_video(engine: object, frames: list[np.ndarray], params: object) -> list[object]:
    """Frames retouched as the product does a video: LocalBackend with the frames as its video."""
    from beauty_api.codec import SourceImage
    from beauty_api.local.retouch.backend import LocalBackend

    sources = [SourceImage(np.ascontiguousarray(frame), None) for frame in frames]
    backend = LocalBackend(engine, video=sources)  # type: ignore[arg-type]
    return [backend.retouch(source, params, index=i) for i, source in enumerate(sources)]  # type: ignore[arg-type]


# -- the warp's test image: a real face on a textured grid, the warp read back by block matching ---------


def textured_grid(height: int, width: int, *, seed: int = 0, spacing: int = 16) -> np.ndarray:
    """HxWx3 uint8: smooth random texture (every block unique, for matching) under a dark grid (for eyes;
    `spacing` 0: none. A block matcher follows a grid line's edges rather than the block's centre)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, height, width, generator=generator)
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    for _ in range(2):
        noise = F.conv2d(
            F.pad(noise, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3
        )
        noise = F.conv2d(
            F.pad(noise, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3
        )
    texture = 0.35 + 1.6 * (noise - noise.mean())
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    lines = (
        (((ys % spacing) < 2) | ((xs % spacing) < 2)) if spacing else torch.zeros_like(ys, dtype=torch.bool)
    )
    texture = torch.where(lines, texture * 0.3, texture + 0.25)
    return (texture[0].permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def face_on_grid(name: str, face: Face, *, reach: float = 1.0, spacing: int = 16) -> np.ndarray:
    """Portrait `name` with everything beyond `reach` oval radii of `face` replaced by `textured_grid`
    (a 2 px feather): what sits beside the face is a pattern whose every shear shows and can be read."""
    rgb = portrait(name)
    height, width = rgb.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    oval = face.landmarks[list(T.FACE_OVAL), :2].float()
    rho = normalised_radius(torch.stack([xs, ys], dim=-1).float(), oval)
    radius = float((oval - oval.mean(0)).norm(dim=-1).mean())
    keep = ((reach - rho) * radius / 2.0 + 0.5).clamp(0, 1)[..., None].numpy()
    out = keep * rgb + (1 - keep) * textured_grid(height, width, spacing=spacing)
    return (out + 0.5).astype(np.uint8)


def block_displacement(
    before: np.ndarray, after: np.ndarray, points: torch.Tensor, *, half: int = 7, search: int = 12
) -> torch.Tensor:
    """Where each output block came from: d [N, 2] with after(p) ~ before(p + d) for `points` [N, 2]
    (x, y, integer pixels at least half + search + 1 from the border): the least sum of squared
    differences over integer shifts, then three Lucas-Kanade steps on the bilinearly sampled `before`
    (a parabola through the costs is biased toward whole pixels by up to 0.25 px)."""
    a = torch.from_numpy(np.asarray(before, dtype=np.float32)).permute(2, 0, 1)
    b = torch.from_numpy(np.asarray(after, dtype=np.float32)).permute(2, 0, 1)
    offsets = torch.arange(-half, half + 1)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    px, py = points[:, 0].long(), points[:, 1].long()
    target = b[:, py[:, None, None] + dy, px[:, None, None] + dx]  # [3, N, k, k]
    shifts = torch.arange(-search, search + 1)
    cost = torch.empty(points.shape[0], shifts.numel(), shifts.numel())
    for i, sy in enumerate(shifts.tolist()):
        for j, sx in enumerate(shifts.tolist()):
            source = a[:, py[:, None, None] + dy + sy, px[:, None, None] + dx + sx]
            cost[:, i, j] = (source - target).square().sum(dim=(0, 2, 3))
    flat = cost.flatten(1).argmin(dim=1)
    shift = torch.stack([shifts[flat % shifts.numel()], shifts[flat // shifts.numel()]], dim=-1).float()
    height, width = a.shape[-2:]
    scale = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)])
    block = torch.stack([dx, dy], dim=-1).float()  # [k, k, 2]
    grad_x = torch.gradient(a, dim=2)[0]
    grad_y = torch.gradient(a, dim=1)[0]
    stack = torch.cat([a, grad_x, grad_y])[None]  # [1, 9, H, W]
    for _ in range(3):
        where = points[:, None, None, :] + shift[:, None, None, :] + block  # [N, k, k, 2]
        grid = (where * scale - 1.0).view(1, -1, block.shape[1], 2)
        sampled = F.grid_sample(stack, grid, mode="bilinear", align_corners=True)[0]
        sampled = sampled.view(9, points.shape[0], *block.shape[:2])
        value, gx, gy = sampled[:3], sampled[3:6], sampled[6:]
        residual = target - value
        sxx, sxy, syy = (gx * gx).sum((0, 2, 3)), (gx * gy).sum((0, 2, 3)), (gy * gy).sum((0, 2, 3))
        bx, by = (gx * residual).sum((0, 2, 3)), (gy * residual).sum((0, 2, 3))
        det = (sxx * syy - sxy * sxy).clamp_min(1e-6)
        step = torch.stack([(syy * bx - sxy * by) / det, (sxx * by - sxy * bx) / det], dim=-1)
        shift = shift + step.clamp(-1.0, 1.0)
    return shift


def stretch_ratio(jacobian: torch.Tensor) -> torch.Tensor:
    """The ratio of the two singular values of each 2x2 `jacobian` [..., 2, 2] (1: no shear)."""
    a, b, c, d = jacobian[..., 0, 0], jacobian[..., 0, 1], jacobian[..., 1, 0], jacobian[..., 1, 1]
    conformal = torch.hypot((a + d) / 2, (c - b) / 2)
    anticonformal = torch.hypot((a - d) / 2, (b + c) / 2)
    return (conformal + anticonformal) / (conformal - anticonformal).clamp_min(1e-6)


def field_jacobian(field: torch.Tensor) -> torch.Tensor:
    """I + the gradient of a backward displacement `field` [H, W, 2]: [H, W, 2, 2] (rows: x, y; columns:
    d/dx, d/dy), the Jacobian of the map from output to source pixels."""
    d_dx = torch.gradient(field, dim=1)[0]
    d_dy = torch.gradient(field, dim=0)[0]
    return torch.stack([d_dx, d_dy], dim=-1) + torch.eye(2)


def turning_angles(points: torch.Tensor) -> torch.Tensor:
    """|turning angle| in degrees at each vertex of the closed polygon `points` [N, 2]."""
    edges = torch.roll(points, -1, 0) - points
    heading = torch.atan2(edges[:, 1], edges[:, 0])
    turn = torch.remainder(heading - torch.roll(heading, 1, 0) + math.pi, 2 * math.pi) - math.pi
    return torch.rad2deg(turn).abs()


GROUP_SIZE = (1536, 864)
GROUP_FACE_WIDTHS = (150, 112, 84, 64, 50, 40)  # face box widths in px, one per portrait


@cache
def group_picture() -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """Six portraits in one 1536x864 picture, faces 150 down to 40 px wide, on a textured background:
    (HxWx3 uint8, the expected face boxes). Composed from the two shared portraits (alternately)."""
    width, height = GROUP_SIZE
    rng = np.random.default_rng(19)
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    background = np.array([150.0, 140.0, 125.0]) * (0.75 + 0.35 * rows) + rng.normal(0, 6, (height, width, 3))
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    boxes = []
    names = ("grace_hopper", "astronaut")
    for k, face_width in enumerate(GROUP_FACE_WIDTHS):
        name = names[k % 2]
        (face,) = reference_faces(name)
        x0, y0, x1, y1 = face.box
        fw, fh = x1 - x0, y1 - y0
        scale = face_width / fw
        # the head and shoulders: 0.8 face widths either side, 0.7 above, 1.1 below
        box = (max(0.0, x0 - 0.8 * fw), max(0.0, y0 - 0.7 * fh), x1 + 0.8 * fw, y1 + 1.1 * fh)
        source = Image.fromarray(np.asarray(portrait(name)))
        box = (box[0], box[1], min(box[2], source.width), min(box[3], source.height))
        size = (round((box[2] - box[0]) * scale), round((box[3] - box[1]) * scale))
        piece = source.resize(size, Image.Resampling.LANCZOS, box=box)
        cx, cy = (k % 3 + 0.5) * width / 3, (k // 3 + 0.5) * height / 2
        left, top = round(cx - size[0] / 2), round(cy - size[1] / 2)
        canvas.paste(piece, (left, top))
        fx0, fy0 = left + (x0 - box[0]) * scale, top + (y0 - box[1]) * scale
        boxes.append((fx0, fy0, fx0 + fw * scale, fy0 + fh * scale))
    array = np.asarray(canvas)
    array.setflags(write=False)
    return array, boxes
