"""The 35 looks: distinct, smooth on a grey ramp, never clipping mid-greys, reproducible from their recipes."""

from __future__ import annotations

import importlib.util
import sys
from itertools import combinations

import numpy as np
import pytest
from local_helpers import ROOT, portrait
from PIL import Image

from beauty_api.local.retouch.looks import apply_look, look_table
from beauty_api.params import FILTER_NAMES

NUMBERS = range(1, len(FILTER_NAMES) + 1)
LUMA = np.array([0.2126, 0.7152, 0.0722])


@pytest.fixture(scope="module")
def small_portrait() -> np.ndarray:
    return np.asarray(Image.fromarray(portrait("astronaut")).resize((128, 128)))


@pytest.fixture(scope="module")
def looked(small_portrait: np.ndarray) -> dict[int, np.ndarray]:
    return {number: apply_look(small_portrait, number).astype(np.float32) for number in NUMBERS}


def test_none_is_the_identity(small_portrait: np.ndarray) -> None:
    assert apply_look(small_portrait, None) is small_portrait


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_a_look_in_bands_on_threads_is_the_same_image(threads: int) -> None:
    big = np.asarray(Image.fromarray(portrait("grace_hopper")).resize((601, 523)))  # odd sizes: uneven bands
    one = apply_look(big, 7)
    banded = apply_look(big, 7, threads=threads)
    assert banded.shape == big.shape and banded.flags.writeable
    assert np.array_equal(banded, one)
    assert not np.array_equal(one, big)


def test_every_look_differs_from_none_and_from_every_other(
    small_portrait: np.ndarray, looked: dict[int, np.ndarray]
) -> None:
    original = small_portrait.astype(np.float32)
    for number, image in looked.items():
        assert np.abs(image - original).mean() >= 2.0, FILTER_NAMES[number - 1]
    for a, b in combinations(NUMBERS, 2):
        assert np.abs(looked[a] - looked[b]).mean() >= 1.0, (FILTER_NAMES[a - 1], FILTER_NAMES[b - 1])


@pytest.mark.parametrize("number", NUMBERS)
def test_a_grey_ramp_has_no_reversal_and_no_banding(number: int) -> None:
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    luma = apply_look(np.repeat(ramp, 2, axis=0), number)[0].astype(np.float64) @ LUMA
    steps = np.diff(luma)
    assert steps.min() >= -0.5, "luminance never goes down along the ramp (beyond 8-bit rounding)"
    assert steps.max() <= 4.0, "no jump (a band edge) of more than 4 levels per input level"
    # no flat band: every 8 consecutive input levels still move the output by a level
    assert (luma[8:] - luma[:-8]).min() >= 1.0
    assert luma[-1] - luma[0] >= 150, "the ramp keeps most of its range"


def test_looks_never_clip_a_mid_grey_portrait(looked: dict[int, np.ndarray]) -> None:
    mid = (64 + portrait("astronaut").astype(np.float32) / 2).astype(np.uint8)  # levels 64..191
    for number in NUMBERS:
        out = apply_look(mid, number)
        assert out.min() > 0 and out.max() < 255, FILTER_NAMES[number - 1]


def test_the_stored_looks_are_what_the_generator_makes() -> None:
    spec = importlib.util.spec_from_file_location("make_looks", ROOT / "tools" / "make_looks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    fresh = module.build_luts().astype(np.float32) / 65535.0
    stored = np.stack([look_table(number) for number in NUMBERS])
    assert np.array_equal(fresh, stored)
