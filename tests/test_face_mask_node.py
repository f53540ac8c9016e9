"""The Face Beauty Face Mask node, loaded the way ComfyUI loads the pack."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from conftest import SAMPLE_PORTRAIT
from pack_loader import load_pack
from PIL import Image


@pytest.fixture(scope="module")
def node() -> object:
    pack: types.ModuleType = load_pack()
    return pack.NODE_CLASS_MAPPINGS["FaceBeautyFaceMask"]()


def portrait() -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(SAMPLE_PORTRAIT).convert("RGB"), np.float32) / 255.0)


def test_one_mask_per_image_and_none_where_no_face(node: object) -> None:
    face = portrait()
    batch = torch.stack([face, torch.full_like(face, 0.4), face])
    (masks,) = node.mask(batch, "face", feather=4.0, grow=0.0)
    assert masks.shape == (3, 512, 512) and masks.dtype == torch.float32
    assert masks[1].max() == 0
    assert torch.equal(masks[0], masks[2])
    area = masks[0].sum().item()
    assert 5_000 < area < 20_000  # the astronaut's face covers roughly 100 x 120 px of this image
    assert masks[0, 130, 225] == 1.0 and masks[0, 10, 10] == 0.0  # nose vs. background


def test_regions_grow_and_video_mode(node: object) -> None:
    batch = portrait().unsqueeze(0).expand(3, -1, -1, -1)
    (skin,) = node.mask(batch, "skin", feather=0.0, grow=0.0)
    (face,) = node.mask(batch, "face", feather=0.0, grow=0.0)
    (grown,) = node.mask(batch, "face", feather=0.0, grow=10.0)
    assert skin[0].sum() < face[0].sum() < grown[0].sum()
    (tracked,) = node.mask(batch, "eyes", feather=2.0, grow=1.0, video=True)
    assert tracked.shape == (3, 512, 512) and tracked[0].sum() > 0
    assert torch.equal(tracked[0], tracked[2]), "a still face gives the same mask on every frame"
