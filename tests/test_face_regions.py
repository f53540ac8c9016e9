"""Region masks from the reference landmarks (no model needed): coverage, exclusions, grow and feather."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from beauty_api.local.faces import topology as T
from beauty_api.local.faces.face import Face
from beauty_api.local.faces.regions import REGIONS, polygon_signed_distance, region_mask

REFERENCE = Path(__file__).parent / "data" / "mediapipe_reference" / "mediapipe_face_reference.json"
HEIGHT, WIDTH = 600, 512


@pytest.fixture(scope="module")
def face() -> Face:
    ref = json.loads(REFERENCE.read_text())["images"]["portrait_grace_hopper_512x600.jpg"]
    landmarks = torch.tensor(ref["faces"][0]["mesh478"]["landmarks_px_xyz"], dtype=torch.float32)
    lo, hi = landmarks[:, :2].amin(0), landmarks[:, :2].amax(0)
    return Face(landmarks, 1.0, (lo[0].item(), lo[1].item(), hi[0].item(), hi[1].item()), 0.0)


def _at(mask: torch.Tensor, xy: torch.Tensor) -> float:
    return float(mask[round(xy[1].item()), round(xy[0].item())])


def test_signed_distance_of_a_square() -> None:
    square = torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    points = torch.tensor([[5.0, 5.0], [13.0, 5.0], [5.0, -2.0], [1.0, 5.0]])
    assert torch.allclose(polygon_signed_distance(points, square), torch.tensor([-5.0, 3.0, 2.0, -1.0]))


def test_face_mask_covers_the_hull_of_the_mesh(face: Face) -> None:
    mask = region_mask([face], HEIGHT, WIDTH, "face")
    assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == torch.float32
    inner = [i for i in range(T.NUM_LANDMARKS) if i not in T.FACE_OVAL]
    values = torch.tensor([_at(mask, face.landmarks[i]) for i in inner])
    assert values.min() > 0.99, "every landmark inside the oval lies in the face mask"
    assert mask[0, 0] == 0 and mask[-1, -1] == 0, "the image corners are background"


def test_skin_excludes_eyes_lips_brows_and_nostril_holes(face: Face) -> None:
    skin = region_mask([face], HEIGHT, WIDTH, "skin")
    lm = face.landmarks
    for point in (T.RIGHT_IRIS_CENTER, T.LEFT_IRIS_CENTER, 13, 14):  # iris centres, mid lips
        assert _at(skin, lm[point]) == 0.0
    for hole in ("eyes", "brows", "lips"):
        inside = region_mask([face], HEIGHT, WIDTH, hole, grow=-1.0) > 0.5
        assert inside.sum() > 50 and skin[inside].max() == 0.0, hole
    cheek = (lm[205] + lm[425]) / 2  # the nose bridge between the cheeks is skin
    assert _at(skin, lm[205]) == 1.0 and _at(skin, lm[425]) == 1.0 and _at(skin, cheek) == 1.0
    face_area = region_mask([face], HEIGHT, WIDTH, "face").sum()
    assert 0.8 * face_area < skin.sum() < face_area


@pytest.mark.parametrize("region", REGIONS)
def test_every_region_is_a_nonempty_part_of_the_image(face: Face, region: str) -> None:
    mask = region_mask([face], HEIGHT, WIDTH, region)
    assert 0 < mask.sum() < HEIGHT * WIDTH / 4
    assert mask.min() >= 0 and mask.max() <= 1


def test_sides_are_the_subjects(face: Face) -> None:
    right = region_mask([face], HEIGHT, WIDTH, "right_eye")
    left = region_mask([face], HEIGHT, WIDTH, "left_eye")
    xs = torch.arange(WIDTH, dtype=torch.float32)
    # The subject's right eye is on the image's left for a face looking at the camera.
    assert (right.sum(0) * xs).sum() / right.sum() < (left.sum(0) * xs).sum() / left.sum()
    both = region_mask([face], HEIGHT, WIDTH, "eyes")
    assert torch.allclose(both, torch.maximum(left, right))


def test_grow_and_feather_are_in_pixels(face: Face) -> None:
    base = region_mask([face], HEIGHT, WIDTH, "lips")
    grown = region_mask([face], HEIGHT, WIDTH, "lips", grow=3.0)
    shrunk = region_mask([face], HEIGHT, WIDTH, "lips", grow=-2.0)
    assert (grown >= base).all() and (shrunk <= base).all()
    assert grown.sum() > base.sum() + 3 * 100  # the lip outline is well over 100 px long
    soft = region_mask([face], HEIGHT, WIDTH, "face", feather=20.0)
    hard = region_mask([face], HEIGHT, WIDTH, "face")
    partial = ((soft > 0.02) & (soft < 0.98)).sum()
    assert partial > 10 * ((hard > 0.02) & (hard < 0.98)).sum()
    assert abs(soft.sum() - hard.sum()) < 0.02 * hard.sum(), "the transition is centred on the edge"


def test_no_face_and_bad_region() -> None:
    assert region_mask([], 8, 9, "skin").eq(0).all()
    with pytest.raises(ValueError, match="unknown face region 'nose'"):
        region_mask([], 8, 9, "nose")
