"""Where users meet the local engine: LocalBackend in the batch layer, `retouch --backend local`, the
emulator answering with the engine, and the Face Beauty (Local) node (ComfyUI faked like test_comfy_pack)."""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from local_helpers import portrait
from pack_loader import PACK_NAME, load_pack
from PIL import Image
from pipeline_helpers import make_backend

from beauty_api.cli import main
from beauty_api.codec import SourceImage
from beauty_api.emulator import Emulator
from beauty_api.emulator import effect as emulator_effect
from beauty_api.local.retouch.backend import LocalBackend
from beauty_api.local.retouch.engine import LocalEngine
from beauty_api.params import SLIDER_NAMES, BeautyParams
from beauty_api.run.batch import retouch_batch

PARAMS = BeautyParams(smoothing=70, enlarge_eye=70, filter_type="Warm")
FLAT = np.full((96, 128, 3), (90, 120, 150), dtype=np.uint8)


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    return LocalBackend()


def test_local_backend_retouches_a_batch_for_free_and_reports_no_face(backend: LocalBackend) -> None:
    sources = [SourceImage(np.array(portrait("astronaut"))), SourceImage(FLAT)]
    stages: list[tuple[int, str]] = []
    result = retouch_batch(backend, sources, PARAMS, on_progress=lambda p: stages.append((p.index, p.stage)))
    assert not result.failures
    first, second = result.outcomes
    assert first is not None and second is not None
    assert (first.origin, first.credits_spent, first.note) == ("local", 0, "1 face")
    assert (second.origin, second.credits_spent, second.note) == ("local", 0, "no face")
    assert not np.array_equal(first.image, sources[0].rgb)
    assert result.credits_spent == 0 and result.counts()["local"] == 2
    report = result.report()
    assert "no face" in report and "2 local" in report and "0 credits spent" in report
    assert (0, "done") in stages and (1, "done") in stages


def test_local_backend_keeps_alpha(backend: LocalBackend) -> None:
    alpha = np.full(FLAT.shape[:2], 77, dtype=np.uint8)
    outcome = backend.retouch(SourceImage(FLAT, alpha), PARAMS)
    assert outcome.image.shape == (*FLAT.shape[:2], 4) and (outcome.image[..., 3] == 77).all()


def test_cli_backend_local_needs_no_key_and_spends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "face.png"
    Image.fromarray(portrait("astronaut")).save(source)
    target = tmp_path / "out.png"
    # no AILAB_API_KEY in the environment (conftest removes it)
    assert main(["retouch", str(source), "-o", str(target), "--backend", "local", "--smoothing", "80"]) == 0
    err = capsys.readouterr().err
    assert "1 local" in err and "0 credits spent" in err and "1 face" in err
    written = np.asarray(Image.open(target).convert("RGB"))
    assert written.shape == portrait("astronaut").shape
    assert not np.array_equal(written, portrait("astronaut"))


def test_cli_api_backend_still_asks_for_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "face.png"
    Image.fromarray(FLAT).save(source)
    assert main(["retouch", str(source), "-o", str(tmp_path / "out.png")]) == 2
    assert "AILAB_API_KEY" in capsys.readouterr().err


def test_the_emulator_answers_with_the_local_engine(tmp_path: Path) -> None:
    rgb = np.array(portrait("astronaut"))
    with Emulator(effect="local") as emulator:
        assert emulator.effect == "local"
        outcome = make_backend(emulator.base_url, tmp_path).retouch(SourceImage(rgb), PARAMS)
    assert np.array_equal(outcome.image, LocalEngine().retouch(rgb, PARAMS).image)


def test_the_emulator_falls_back_to_the_stand_in_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(emulator_effect.EFFECT_ENV)
    assert emulator_effect.resolve_effect("auto") == "local"
    monkeypatch.setattr(emulator_effect, "local_engine_available", lambda: False)
    assert emulator_effect.resolve_effect("auto") == "stand-in"
    with pytest.raises(ValueError, match="effect"):
        emulator_effect.resolve_effect("fancy")


# -- the node -------------------------------------------------------------------------------------


class _Interrupted(Exception):
    pass


def _fake_comfy(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """comfy.model_management (interrupt flag, raised once) and comfy.utils.ProgressBar, recorded."""
    state: dict[str, Any] = {"flag": False, "updates": []}

    def throw() -> None:
        if state["flag"]:
            state["flag"] = False
            raise _Interrupted()

    class Bar:
        def __init__(self, total: int, node_id: str | None = None) -> None:
            pass

        def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
            throw()
            state["updates"].append((value, total))

    mm = types.ModuleType("comfy.model_management")
    mm.InterruptProcessingException = _Interrupted
    mm.throw_exception_if_processing_interrupted = throw
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = Bar
    comfy = types.ModuleType("comfy")
    comfy.model_management, comfy.utils = mm, utils
    for name, module in {"comfy": comfy, "comfy.model_management": mm, "comfy.utils": utils}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return state


@pytest.fixture
def nodes() -> types.ModuleType:
    """The offline nodes' module (it also exposes FaceBeautyPro, whose widgets the local node reuses)."""
    load_pack()
    return sys.modules[f"{PACK_NAME}.face_beauty_nodes.local_nodes"]


def _batch() -> torch.Tensor:
    face = np.asarray(Image.fromarray(portrait("astronaut")).resize((256, 256)))
    flat = np.full_like(face, 128)
    return torch.from_numpy(np.stack([face, flat])).float() / 255.0


def _settings(**values: Any) -> dict[str, Any]:
    return {**dict.fromkeys(SLIDER_NAMES, 0), "filter_type": "none", **values}


def test_local_node_has_the_pro_nodes_sliders_in_the_same_order(nodes: types.ModuleType) -> None:
    load_pack()
    pro = sys.modules[f"{PACK_NAME}.nodes"].FaceBeautyPro.INPUT_TYPES()["required"]
    local = nodes.FaceBeautyLocal.INPUT_TYPES()
    assert list(local["required"]) == list(pro)
    for name in [*SLIDER_NAMES, "filter_type"]:
        assert local["required"][name] == pro[name], name
    assert nodes.FaceBeautyLocal.RETURN_NAMES == ("image", "report")
    assert "video" in local["optional"]
    pack = load_pack()
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["FaceBeautyLocal"] == "Face Beauty (Local)"


def test_local_node_retouches_the_batch_and_reports(
    nodes: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _fake_comfy(monkeypatch)
    batch = _batch()
    image, report = asyncio.run(
        nodes.FaceBeautyLocal().retouch(batch, **_settings(smoothing=80, enlarge_eye=80, filter_type="Calm"))
    )
    assert image.shape == batch.shape and image.dtype == torch.float32
    assert (image[0] - batch[0]).abs().mean() > 0.005
    assert "image 1: local, 1 face" in report and "image 2: local, no face" in report  # from 1
    assert "0 credits" in report
    steps = (
        2 * sys.modules[f"{PACK_NAME}.face_beauty_nodes.status"].STEPS_PER_IMAGE
    )  # the Pro node's bar: 2 images
    assert state["updates"][-1] == (steps, steps)


def test_local_node_all_zero_returns_the_input(
    nodes: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_comfy(monkeypatch)
    batch = _batch()
    image, _ = asyncio.run(nodes.FaceBeautyLocal().retouch(batch, **_settings(), video=True))
    assert (image - batch).abs().max() <= 1 / 255 + 1e-6


def test_local_node_cancel_raises_comfyuis_interrupt(
    nodes: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _fake_comfy(monkeypatch)
    state["flag"] = True  # Cancel pressed: the first progress update sees it
    with pytest.raises(_Interrupted):
        asyncio.run(nodes.FaceBeautyLocal().retouch(_batch(), **_settings(smoothing=50)))


def test_local_node_refuses_a_bad_value_clearly(nodes: types.ModuleType) -> None:
    with pytest.raises(nodes.FaceBeautyProError, match="smoothing"):
        asyncio.run(nodes.FaceBeautyLocal().retouch(_batch(), **_settings(smoothing=101)))
