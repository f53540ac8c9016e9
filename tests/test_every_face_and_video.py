"""Issue 19, items 3 and 4: every face of a group picture (small faces in tiles, up to 20, a setting),
and video that holds (faces entering mid-clip, frames streamed, Cancel while tracking, steady output)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from local_helpers import group_picture, portrait, region_mask, retouch_video
from PIL import Image

from beauty_api.codec import SourceImage
from beauty_api.errors import RetouchCancelled
from beauty_api.local.faces import motion as M
from beauty_api.local.faces.tiles import TILE_PER_FACE, tile_rois
from beauty_api.local.faces.torch_graph import _source_positions, resize_bilinear
from beauty_api.local.retouch.backend import LocalBackend
from beauty_api.local.retouch.engine import LocalEngine
from beauty_api.params import BeautyParams

PARAMS = BeautyParams(whitening=50, smoothing=90, thinface=80, enlarge_eye=70, remove_eyebrow=0)


@pytest.fixture(scope="module")
def engine() -> LocalEngine:
    return LocalEngine()


def _matches(found, expected) -> bool:
    x0, y0, x1, y1 = expected
    cx, cy = (found.box[0] + found.box[2]) / 2, (found.box[1] + found.box[3]) / 2
    return x0 < cx < x1 and y0 < cy < y1 and 0.6 < (found.box[2] - found.box[0]) / (x1 - x0) < 1.6


# -- every face -------------------------------------------------------------------------------------
def test_every_face_of_the_group_picture_is_found_and_retouched(engine: LocalEngine) -> None:
    picture, boxes = group_picture()  # faces 150 down to 40 px wide
    faces = engine.find_faces(picture)
    assert len(faces) == 6
    for box in boxes:
        assert sum(_matches(face, box) for face in faces) == 1, box
    result = engine.retouch(picture, PARAMS)
    assert result.note == "6 faces"
    for x0, y0, x1, y1 in boxes:  # every face changed, the background far from them did not
        window = (slice(round(y0), round(y1)), slice(round(x0), round(x1)))
        assert np.abs(result.image[window].astype(int) - picture[window]).mean() > 1.0
    assert np.array_equal(result.image[400:440, 560:980], picture[400:440, 560:980])


def test_a_40_px_face_is_found_in_a_4096_px_picture(engine: LocalEngine) -> None:
    picture, boxes = group_picture()
    x0, y0, x1, y1 = boxes[-1]  # the 40 px face
    piece = Image.fromarray(np.asarray(picture)).crop(
        (round(x0) - 40, round(y0) - 40, round(x1) + 40, round(y1) + 60)
    )
    canvas = Image.new("RGB", (4096, 2304), (140, 132, 120))
    canvas.paste(piece, (3000, 1700))
    faces = engine.find_faces(np.asarray(canvas))
    assert len(faces) == 1
    expected = (3040, 1740, 3040 + (x1 - x0), 1740 + (y1 - y0))
    assert _matches(
        faces[0], tuple(e + d for e, d in zip(expected, (x0 % 1, y0 % 1, x0 % 1, y0 % 1), strict=True))
    )


def test_max_faces_is_a_setting_and_the_default_is_not_four(engine: LocalEngine) -> None:
    picture, _ = group_picture()
    assert len(LocalEngine(max_faces=2).find_faces(picture)) == 2
    assert LocalEngine().max_faces == 20
    with pytest.raises(ValueError, match="max_faces must be at least 1"):
        LocalEngine(max_faces=0)


@pytest.mark.parametrize("size", [(1536, 864), (4096, 4096), (900, 3000), (700, 640)])
def test_tiles_hold_every_face_the_whole_frame_pass_cannot_see(size: tuple[int, int]) -> None:
    """Any face from 40 px up lies wholly in a tile at most 18 x its size, or is at least 1/18 of
    the whole frame (the full-range detector's reach, measured), wherever it is."""
    width, height = size
    rois = tile_rois(height, width, 40.0)
    if max(size) <= TILE_PER_FACE * 40:
        assert rois == []
        return
    rng = np.random.default_rng(1)
    for _ in range(300):
        face = float(rng.uniform(40, max(size) / 10))
        x, y = rng.uniform(0, width - face), rng.uniform(0, height - face)
        held = [
            r
            for r in rois
            if r.cx - r.side / 2 <= x + 0.5
            and x + face <= r.cx + r.side / 2 + 0.5
            and r.cy - r.side / 2 <= y + 0.5
            and y + face <= r.cy + r.side / 2 + 0.5
            and r.side <= 18 * face
        ]
        assert held or face >= max(size) / 18, (face, x, y)


def test_resize_bilinear_follows_tflite_coordinate_conventions() -> None:
    x = torch.tensor([0.0, 10.0, 20.0]).reshape(1, 1, 1, 3)
    half = _source_positions(3, 6, False, True)
    legacy = _source_positions(3, 6, False, False)
    corners = _source_positions(3, 5, True, False)
    assert np.allclose(half, [0, 0.25, 0.75, 1.25, 1.75, 2.25])
    assert np.allclose(legacy, [0, 0.5, 1, 1.5, 2, 2.5])
    assert np.allclose(corners, [0, 0.5, 1, 1.5, 2])
    out = resize_bilinear(x, torch.zeros(1), torch.from_numpy(half).float())
    assert torch.allclose(out.flatten(), torch.tensor([0.0, 2.5, 7.5, 12.5, 17.5, 20.0]))


# -- video -----------------------------------------------------------------------------------------
def _two_faces() -> tuple[np.ndarray, np.ndarray]:
    left = np.asarray(portrait("grace_hopper"))[60:480, 110:430]
    astronaut = Image.fromarray(np.asarray(portrait("astronaut"))).resize(
        (768, 768), Image.Resampling.BICUBIC
    )
    right = np.asarray(astronaut)[0:420, 178:498]
    blank = np.full_like(right, 90)
    return np.ascontiguousarray(np.concatenate([left, blank], 1)), np.ascontiguousarray(
        np.concatenate([left, right], 1)
    )


def test_a_face_entering_mid_clip_is_retouched_from_its_first_frame(engine: LocalEngine) -> None:
    one, two = _two_faces()
    results = retouch_video(engine, [one, two, two, two], PARAMS)
    assert [r.note for r in results] == ["1 face", "2 faces", "2 faces", "2 faces"]
    assert [len(faces) for faces in engine.track_faces([two, one, two])] == [2, 1, 2]


class _Frames:
    """A lazy video that records which frames were read (and can ask for Cancel after some)."""

    def __init__(self, frames: list[np.ndarray], cancel_after: int | None = None) -> None:
        self.frames, self.read, self.cancel_after = frames, [], cancel_after

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> SourceImage:
        self.read.append(index)
        return SourceImage(self.frames[index], None)

    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.read) >= self.cancel_after


def test_frames_are_streamed_in_order_and_any_call_order_still_works(engine: LocalEngine) -> None:
    one, two = _two_faces()
    frames = [one, two, two, one, two]
    video = _Frames(frames)
    backend = LocalBackend(engine, video=video)  # type: ignore[arg-type]
    in_order = [backend.retouch(SourceImage(f, None), PARAMS, index=i) for i, f in enumerate(frames)]
    assert video.read == [1, 2, 3, 4]  # in order: each frame read once, just ahead (tracked while
    # the one before is retouched), nothing kept
    video = _Frames(frames)
    backend = LocalBackend(engine, video=video)  # type: ignore[arg-type]
    shuffled = {i: backend.retouch(SourceImage(frames[i], None), PARAMS, index=i) for i in (3, 0, 4, 1, 2)}
    assert video.read == [0, 1, 2, 4]  # frames before the first one asked for, tracked once, then
    # the one after it, ahead
    for i, outcome in enumerate(in_order):
        assert np.array_equal(outcome.image, shuffled[i].image)
    again = backend.retouch(SourceImage(frames[1], None), PARAMS, index=1)  # asked twice: re-tracked
    assert np.array_equal(again.image, in_order[1].image)


def test_cancel_is_checked_between_tracked_frames(engine: LocalEngine) -> None:
    one, _ = _two_faces()
    video = _Frames([one] * 12, cancel_after=3)
    backend = LocalBackend(engine, video=video)  # type: ignore[arg-type]
    with pytest.raises(RetouchCancelled):
        backend.retouch(SourceImage(one, None), PARAMS, index=11, check_cancel=video.cancelled)
    assert video.read == [0, 1, 2]  # stopped at the first check after Cancel: one frame's work


CAMERA = [(0, 0), (1, 0), (2, 1), (3, 1), (2, 2), (1, 1), (0, 0), (-1, 0), (-2, -1), (-1, -1), (0, 0), (1, 1)]


def test_a_still_photo_with_camera_motion_gives_steady_landmarks_and_skin(engine: LocalEngine) -> None:
    big = np.asarray(portrait("grace_hopper"))
    x0, y0, width, height, m = 40, 40, 420, 500, 3
    frames = [
        np.ascontiguousarray(big[y0 + dy : y0 + dy + height, x0 + dx : x0 + dx + width]) for dx, dy in CAMERA
    ]
    tracked = engine.track_faces(frames)
    assert all(len(faces) == 1 for faces in tracked)
    # landmarks in the photo's own pixels: the camera's motion taken out; what is left is jitter
    steady = torch.stack(
        [
            faces[0].landmarks[:, :2] + torch.tensor([dx, dy], dtype=torch.float32)
            for faces, (dx, dy) in zip(tracked, CAMERA, strict=True)
        ]
    )
    jitter = float((steady - steady.mean(0)).norm(dim=2).square().mean().sqrt())
    assert jitter <= 0.3
    outputs = [r.image for r in retouch_video(engine, frames, PARAMS)]
    aligned = [
        o[m - dy : height - m - dy, m - dx : width - m - dx].astype(np.int16)
        for o, (dx, dy) in zip(outputs, CAMERA, strict=True)
    ]
    face = tracked[0][0]
    moved = face.landmarks.clone()
    moved[:, :2] -= m
    skin = (
        region_mask([dataclasses.replace(face, landmarks=moved)], height - 2 * m, width - 2 * m, "skin") > 0.5
    )
    flicker = [
        np.abs(aligned[i] - aligned[i - 1]).mean(axis=2)[skin.numpy()].mean() for i in range(1, len(aligned))
    ]
    assert float(np.mean(flicker)) <= 0.5


def test_motion_is_measured_from_the_pixels() -> None:
    image = torch.from_numpy(np.array(portrait("grace_hopper"))).float().permute(2, 0, 1)[None] / 255.0
    win = M.window((170, 132, 355, 334), 600, 512)
    before, step = M.patch(image, win)
    for dx, dy in ((1, 0), (2, 1), (-3, 2)):
        moved = M.shift(before, M.patch(torch.roll(image, (dy, dx), (2, 3)), win)[0], step)
        assert moved is not None and abs(moved[0] - dx) < 0.1 and abs(moved[1] - dy) < 0.1
    assert M.shift(before, before, step) == (0.0, 0.0)
    assert M.shift(before, torch.rand_like(before), step) is None


def test_a_video_frame_leaves_torchs_thread_count_as_it_was(engine: LocalEngine) -> None:
    """Frames work by stage, one torch thread each, the next frame tracked while this one is
    retouched; the thread count is restored and the frame ahead done before `retouch` returns."""
    import torch

    one, two = _two_faces()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        backend = LocalBackend(engine, video=[SourceImage(f, None) for f in (one, two, two)])
        outcome = backend.retouch(SourceImage(one, None), PARAMS, index=0)
        assert torch.get_num_threads() == 2
        assert backend._prefetch is not None and backend._prefetch[1].done()
        assert outcome.note == "1 face"
        notes = [backend.retouch(SourceImage(f, None), PARAMS, index=i).note for i, f in ((1, two), (2, two))]
        assert notes == ["2 faces", "2 faces"]
    finally:
        torch.set_num_threads(before)
