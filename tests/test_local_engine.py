"""The local engine, measured on the shared portraits (the issue's "measured, not eyeballed" list).

Landmarks on every output are measured by the face analyzer itself. One exception is documented
in `test_thinface_on_the_reference_landmarks`: on the Grace Hopper portrait the mesh model keeps
the jaw at its learned width whatever the pixels do (measured: 0.995 of the original width even at
twice thinface's strength), so there the slimming is checked on Google's reference landmarks moved
by the engine's own displacement field.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from local_helpers import (
    PORTRAITS,
    brow_contrast,
    brow_lightness,
    cheek_mask,
    eye_areas,
    face_from_landmarks,
    far_outside_face,
    high_frequency_energy,
    jaw_width,
    kept_lines,
    mean_level_difference,
    mean_lightness,
    move_points,
    oval_area,
    portrait,
    pupil_distance,
    reference_faces,
    retouch_video,
    shifted,
)
from PIL import Image

from beauty_api.local.faces.regions import region_mask
from beauty_api.local.retouch.engine import LocalEngine, retouch_faces
from beauty_api.local.retouch.looks import apply_look
from beauty_api.local.retouch.warp import WARP_REACH, WarpAmounts, crop_box, displacement_field
from beauty_api.params import SLIDER_NAMES, BeautyParams

ZERO = dict.fromkeys(SLIDER_NAMES, 0)
NAMES = tuple(PORTRAITS)
WARP_CONTROLS = ("thinface", "shrink_face", "enlarge_eye")


def only(control: str, level: int = 100, filter_type: object = None) -> BeautyParams:
    return BeautyParams(**{**ZERO, control: level}, filter_type=filter_type)


@pytest.fixture(scope="module")
def engine() -> LocalEngine:
    return LocalEngine()


@cache
def _engine() -> LocalEngine:
    return LocalEngine()


@cache
def faces_of(name: str):
    return _engine().find_faces(portrait(name))


@cache
def retouched(name: str, control: str) -> np.ndarray:
    """`control` alone at 100 on portrait `name` (computed once per test session)."""
    return _engine().retouch(portrait(name), only(control)).image


def measured(image: np.ndarray):
    faces = _engine().find_faces(image)
    assert len(faces) == 1, "the analyzer finds the one face of the retouched portrait"
    return faces[0]


@pytest.mark.parametrize("name", NAMES)
def test_all_zero_and_no_look_returns_the_input(engine: LocalEngine, name: str) -> None:
    rgb = portrait(name)
    result = engine.retouch(rgb, BeautyParams(**ZERO))
    assert np.abs(result.image.astype(int) - rgb).max() <= 1
    # the per-face path itself is an identity too when every control is 0 (no drift from float round trips)
    crop_path = retouch_faces(rgb, faces_of(name), BeautyParams(**ZERO))
    assert np.abs(crop_path.astype(int) - rgb).max() <= 1


def test_the_analyzer_finds_the_portraits_faces_where_google_does() -> None:
    for name in NAMES:
        found = faces_of(name)[0].landmarks[:, :2]
        reference = reference_faces(name)[0].landmarks[:, :2]
        assert (found - reference).abs().max() < 3.0, name


def test_thinface_narrows_the_lower_face_and_keeps_the_eyes() -> None:
    before, after = faces_of("astronaut")[0], measured(retouched("astronaut", "thinface"))
    assert jaw_width(after) <= 0.95 * jaw_width(before)
    assert abs(pupil_distance(after) / pupil_distance(before) - 1) <= 0.02


@pytest.mark.parametrize("name", NAMES)
def test_thinface_on_the_reference_landmarks(name: str) -> None:
    rgb = portrait(name)
    face = reference_faces(name)[0]
    x0, y0, x1, y1 = crop_box(face.landmarks, *rgb.shape[:2], WARP_REACH)
    origin = torch.tensor([float(x0), float(y0)])
    local = face.landmarks.clone()
    local[:, :2] -= origin
    field = displacement_field(local, y1 - y0, x1 - x0, WarpAmounts(thinface=1.0), border=0.08 * face.size)
    moved = face.landmarks.clone()
    moved[:, :2] = move_points(local[:, :2], field) + origin
    after = face_from_landmarks(moved)
    assert jaw_width(after) <= 0.95 * jaw_width(face)
    assert abs(pupil_distance(after) / pupil_distance(face) - 1) <= 0.02


@pytest.mark.parametrize("name", NAMES)
def test_shrink_face_makes_the_oval_smaller(name: str) -> None:
    before, after = faces_of(name)[0], measured(retouched(name, "shrink_face"))
    assert oval_area(after) <= 0.94 * oval_area(before)


@pytest.mark.parametrize("name", NAMES)
def test_enlarge_eye_enlarges_each_eye_and_keeps_the_pupils_apart(name: str) -> None:
    before, after = faces_of(name)[0], measured(retouched(name, "enlarge_eye"))
    for grown, original in zip(eye_areas(after), eye_areas(before), strict=True):
        assert grown >= 1.12 * original
    assert abs(pupil_distance(after) / pupil_distance(before) - 1) <= 0.02


@pytest.mark.parametrize("name", NAMES)
def test_smoothing_removes_cheek_texture_and_keeps_the_eyes_sharp(name: str) -> None:
    rgb, out, face = portrait(name), retouched(name, "smoothing"), faces_of(name)[0]
    height, width = rgb.shape[:2]
    cheeks = cheek_mask(face, height, width)
    eyes = (region_mask([face], height, width, "eyes") > 0.5).float()
    assert high_frequency_energy(out, cheeks) <= 0.5 * high_frequency_energy(rgb, cheeks)
    assert high_frequency_energy(out, eyes) >= 0.7 * high_frequency_energy(rgb, eyes)


@pytest.mark.parametrize("name", NAMES)
def test_whitening_lightens_the_cheeks(name: str) -> None:
    rgb, out, face = portrait(name), retouched(name, "whitening"), faces_of(name)[0]
    cheeks = cheek_mask(face, *rgb.shape[:2])
    assert mean_lightness(out, cheeks) >= mean_lightness(rgb, cheeks) + 4.0


@pytest.mark.parametrize("name", NAMES)
def test_remove_eyebrow_blends_the_brows_into_the_skin(name: str) -> None:
    rgb, out, face = portrait(name), retouched(name, "remove_eyebrow"), faces_of(name)[0]
    assert brow_contrast(out, face, rgb) <= 0.4 * brow_contrast(rgb, face, rgb)


@pytest.mark.parametrize(
    "sliders",
    [{"remove_eyebrow": 100}, {"remove_eyebrow": 100, "whitening": 50, "smoothing": 90}],
    ids=["brows", "brows+whitening+smoothing"],
)
@pytest.mark.parametrize("name", NAMES)
def test_removed_brows_match_the_skin_beside_them_in_lightness(name: str, sliders: dict) -> None:
    """Issue 19: contrast down by at least 60% and never inverted (no more than 2 L* lighter)."""
    rgb, face = portrait(name), faces_of(name)[0]
    out = _engine().retouch(rgb, BeautyParams(**{**ZERO, **sliders})).image
    # the lines that are meant to stay (Grace Hopper's glasses rim borders her brows) are no brow
    # hair: left out of the measure, before and after alike, so an output that kept the brow fails
    rim = kept_lines(rgb, face)
    for side in ("left_brow", "right_brow"):
        brow = region_mask([face], *rgb.shape[:2], side, grow=-0.005 * face.size) > 0.5
        assert int((brow & rim).sum()) <= 0.3 * int(brow.sum()), f"{side}: mostly a brow, not kept lines"
        before, after = brow_lightness(rgb, face, rgb, side, rim), brow_lightness(out, face, rgb, side, rim)
        assert before <= -8.0, f"{side}: a real brow, darker than the skin, to remove"
        assert abs(after) <= 0.4 * abs(before), f"{side}: {before:.1f} L* -> {after:.1f} L*"
        assert after <= 2.0, f"{side}: an inverted brow, {after:.1f} L* lighter than the skin"


@pytest.mark.parametrize("control", SLIDER_NAMES)
@pytest.mark.parametrize("name", NAMES)
def test_each_control_leaves_the_far_background_alone(name: str, control: str) -> None:
    rgb, out, face = portrait(name), retouched(name, control), faces_of(name)[0]
    assert not np.array_equal(out, rgb), f"{control} at 100 changes the portrait"
    # a warp fades out over WARP_REACH oval radii (a wide fall-off carries what is beside the jaw along
    # instead of shearing it: issue 19); the tone controls stop at the face's edge
    reach = WARP_REACH if control in WARP_CONTROLS else None
    far = far_outside_face(face, *rgb.shape[:2], reach)
    assert far.float().mean() > 0.25, "the test needs a real background to look at"
    assert mean_level_difference(out, rgb, far) <= 0.5


def _side_by_side() -> np.ndarray:
    """640x420: one face in each half (tight crops, so both faces are large enough for the detector)."""
    left = portrait("grace_hopper")[60:480, 110:430]
    big = Image.fromarray(portrait("astronaut")).resize((768, 768), Image.Resampling.BICUBIC)
    right = np.asarray(big)[0:420, 178:498]
    return np.concatenate([left, right], axis=1)


def test_several_faces_are_all_retouched(engine: LocalEngine) -> None:
    rgb = _side_by_side()
    result = engine.retouch(rgb, BeautyParams(**{**ZERO, "smoothing": 100, "enlarge_eye": 100}))
    assert result.faces == 2 and result.note == "2 faces"
    faces = engine.find_faces(rgb)
    for face in faces:
        inside = region_mask([face], *rgb.shape[:2], "face") > 0.5
        assert mean_level_difference(result.image, rgb, inside) > 1.0


def test_an_image_without_a_face_gets_the_look_only(engine: LocalEngine) -> None:
    flat = np.full((256, 320, 3), (120, 140, 160), dtype=np.uint8)
    result = engine.retouch(flat, BeautyParams(filter_type="Sunny Day"))
    assert result.faces == 0 and result.note == "no face"
    assert np.array_equal(result.image, apply_look(flat, 3))
    assert not np.array_equal(result.image, flat)


def test_the_same_frames_give_the_same_outputs(engine: LocalEngine) -> None:
    frames = [np.array(portrait("astronaut"))] * 8
    params = BeautyParams(thinface=60, shrink_face=60, enlarge_eye=60, smoothing=60, whitening=60)
    results = retouch_video(engine, frames, params)
    assert all(r.note == "1 face" for r in results)
    assert all(np.array_equal(r.image, results[0].image) for r in results)
    # Retouched alone, the frame's face takes one mesh pass (tracked, it starts settled: a second
    # pass): the same retouch, its edges a pixel or so apart.
    alone = engine.retouch(frames[0], params)
    assert np.abs(alone.image.astype(int) - results[0].image.astype(int)).mean() < 0.5


def test_tracked_warps_follow_a_moving_face_without_jitter(engine: LocalEngine) -> None:
    still = portrait("astronaut")
    frames = [shifted(still, 2 * k) for k in range(8)]
    params = BeautyParams(**{**ZERO, "thinface": 100, "shrink_face": 100, "enlarge_eye": 100})
    results = retouch_video(engine, frames, params)
    face = faces_of("astronaut")[0]
    lower = face_from_landmarks(face.landmarks)
    errors = []
    for k, result in enumerate(results):
        moved_face = face_from_landmarks(lower.landmarks + torch.tensor([2.0 * k, 0.0, 0.0]))
        where = region_mask([moved_face], *still.shape[:2], "face", grow=0.1 * face.size) > 0.5
        # frame k's output should be frame 0's output moved by 2k px: the warp moved with the face
        errors.append(mean_level_difference(result.image, shifted(results[0].image, 2 * k), where))
    warp_size = mean_level_difference(
        results[0].image, frames[0], region_mask([face], *still.shape[:2], "face") > 0.5
    )
    assert warp_size > 10, "the warp is large, so a warp that did not follow would show"
    # measured: errors of 0.5-0.7 levels (resampling), against ~36 levels of warp
    assert max(errors) <= 1.5, errors


def test_a_light_strand_crossing_a_brow_is_kept() -> None:
    """A blond strand drawn across each brow survives brow removal at 100 (only what is darker than
    the skin fill is the brow's hair); the brow around it goes."""
    rgb, face = np.array(portrait("astronaut")), faces_of("astronaut")[0]
    height, width = rgb.shape[:2]
    strand = torch.zeros(height, width, dtype=torch.bool)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for side in ("left_brow", "right_brow"):
        brow = region_mask([face], height, width, side) > 0.5
        cx, cy = float(xs[brow].float().mean()), float(ys[brow].float().mean())
        near = (ys - cy).abs() <= 0.08 * face.size
        strand |= near & ((xs - cx - 0.3 * (ys - cy)).abs() <= 1.0)  # a slanted line 2-3 px wide
    rgb[strand.numpy()] = (236, 214, 160)
    out = retouch_faces(rgb, [face], only("remove_eyebrow"))
    brows = region_mask([face], height, width, "brows", grow=-0.005 * face.size) > 0.5
    kept = np.abs(out.astype(int) - rgb.astype(int)).max(axis=2)[(strand & brows).numpy()]
    brows &= ~strand
    assert float(np.median(kept)) <= 6, "the strand keeps its colour where it crosses the brow"
    assert brow_contrast(out, face, rgb) <= 0.4 * brow_contrast(rgb, face, rgb)
    assert mean_level_difference(out, rgb, brows) > 5.0, "the brow itself was removed"
