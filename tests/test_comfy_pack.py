"""The ComfyUI pack without ComfyUI: loaded the way ComfyUI loads it, run against the emulator.

ComfyUI's own modules (comfy.model_management, comfy.utils, server, folder_paths) are stood in
for by small fakes installed in sys.modules, with the behaviour the pack relies on: the
interrupt flag that `throw_exception_if_processing_interrupted()` raises once and clears, and
a progress-bar hook that checks that flag too (as ComfyUI's main.py hook does).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pack_loader import PACK_NAME, exec_pack, load_pack

from beauty_api.clock import FakeClock
from beauty_api.run.progress_events import Progress

SLIDER_NAMES = ("whitening", "smoothing", "thinface", "shrink_face", "enlarge_eye", "remove_eyebrow")
# Every slider at 0 and no filter: the emulator returns the input unchanged, so order is checkable.
IDENTITY = dict.fromkeys(SLIDER_NAMES, 0) | {"filter_type": "none"}
RETOUCH = dict.fromkeys(SLIDER_NAMES, 60) | {"filter_type": "Sakura"}
STEPS_PER_IMAGE = 100  # status.STEPS_PER_IMAGE: the bar's steps for one image


@pytest.fixture(scope="module")
def pack() -> types.ModuleType:
    return load_pack()


@pytest.fixture
def nodes(pack: types.ModuleType) -> types.ModuleType:
    return sys.modules[f"{PACK_NAME}.nodes"]


@pytest.fixture
def bridge(pack: types.ModuleType) -> types.ModuleType:
    return sys.modules[f"{PACK_NAME}.face_beauty_nodes.bridge"]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, emulator: Any, nodes: types.ModuleType) -> Any:
    """The emulator, with the key and address in the environment and quick polling."""
    monkeypatch.setenv("AILAB_API_KEY", "emulator-key")
    monkeypatch.setenv("AILAB_API_BASE_URL", emulator.base_url)
    settings = nodes.ClientSettings

    def quick(self: Any) -> Any:
        return settings(timeout=float(self.timeout_seconds), poll_initial=0.05, poll_max=0.1)

    monkeypatch.setattr(nodes.FaceBeautyRunOptions, "client_settings", quick)
    return emulator


def portraits(count: int = 3, channels: int = 3, height: int = 72, width: int = 64) -> torch.Tensor:
    """A batch of distinct images (different gradients), float32 [B,H,W,C] as ComfyUI passes IMAGE."""
    rng = np.random.default_rng(7)
    ys, xs = np.mgrid[0:height, 0:width]
    batch = []
    for index in range(count):
        base = np.stack([(xs * (index + 2)) % 256, (ys * 3 + 40 * index) % 256, (xs + ys) % 256], axis=2)
        noise = rng.integers(0, 20, size=base.shape)
        rgb = np.clip(base + noise, 0, 255).astype(np.uint8)
        if channels == 4:
            rgb = np.concatenate([rgb, np.full((height, width, 1), 128, np.uint8)], axis=2)
        batch.append(rgb)
    return torch.from_numpy(np.stack(batch)).float() / 255.0


def run_node(node: Any, image: torch.Tensor, settings: dict[str, Any], **extra: Any) -> tuple[Any, str]:
    return asyncio.run(node.retouch(image, **settings, **extra))


class FakeComfy:
    """Stand-ins for the ComfyUI modules face_beauty_nodes.bridge uses, recording every call."""

    def __init__(self, user_dir: Path) -> None:
        self.lock = threading.RLock()
        self.flag = False
        self.bars: list[FakeBar] = []
        self.texts: list[tuple[str, str]] = []  # as a person reads them (see send_progress_text)
        self.sent_texts: list[str] = []  # as sent
        fake = self

        class InterruptProcessingException(Exception):
            pass

        self.InterruptProcessingException = InterruptProcessingException
        mm = types.ModuleType("comfy.model_management")
        mm.InterruptProcessingException = InterruptProcessingException
        mm.processing_interrupted = self.processing_interrupted
        mm.throw_exception_if_processing_interrupted = self.throw_exception_if_processing_interrupted
        mm.interrupt_current_processing = self.interrupt

        class FakeBar:
            def __init__(self, total: int, node_id: str | None = None) -> None:
                self.total, self.node_id, self.updates = total, node_id, []
                fake.bars.append(self)

            def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
                fake.throw_exception_if_processing_interrupted()  # ComfyUI's hook does this first
                self.updates.append((value, total))

        utils = types.ModuleType("comfy.utils")
        utils.ProgressBar = FakeBar
        comfy = types.ModuleType("comfy")
        comfy.model_management, comfy.utils = mm, utils

        class PromptServer:
            instance: Any = None

            def send_progress_text(self, text: str, node_id: str, sid: Any = None) -> None:
                # What every frontend shows: no word joiners, no trailing spaces (test_frontend_text.py).
                read = "\n".join(line.rstrip(" ") for line in text.replace("\u2060", "").split("\n"))
                with fake.lock:
                    fake.sent_texts.append(text)
                    fake.texts.append((read, node_id))

        PromptServer.instance = PromptServer()
        server = types.ModuleType("server")
        server.PromptServer = PromptServer
        folder_paths = types.ModuleType("folder_paths")
        folder_paths.get_user_directory = lambda: str(user_dir)
        self.input_dir = user_dir.parent / "comfy-input"
        folder_paths.get_input_directory = lambda: str(self.input_dir)
        self.modules = {
            "comfy": comfy,
            "comfy.model_management": mm,
            "comfy.utils": utils,
            "server": server,
            "folder_paths": folder_paths,
        }

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeComfy:
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        return self

    def interrupt(self, value: bool = True) -> None:
        with self.lock:
            self.flag = value

    def processing_interrupted(self) -> bool:
        with self.lock:
            return self.flag

    def throw_exception_if_processing_interrupted(self) -> None:
        with self.lock:
            if self.flag:
                self.flag = False
                raise self.InterruptProcessingException()


@pytest.fixture
def comfy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeComfy:
    return FakeComfy(tmp_path / "comfy-user").install(monkeypatch)


@pytest.fixture
def no_comfy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ComfyUI module unimportable, whatever the environment has."""
    for name in ("comfy", "comfy.model_management", "comfy.utils", "server", "folder_paths"):
        monkeypatch.setitem(sys.modules, name, None)


# -- loading and definitions ------------------------------------------------------------------


def test_pack_loads_like_comfyui_loads_it(pack: types.ModuleType) -> None:
    assert "-" in pack.__name__
    assert pack.NODE_DISPLAY_NAME_MAPPINGS == {
        "FaceBeautyPro": "Face Beauty Pro (AILab Retouch)",
        "FaceBeautyProOptions": "Face Beauty Pro Options",
        "FaceBeautyFaceMask": "Face Beauty Face Mask",
        "FaceBeautyLocal": "Face Beauty (Local)",
    }
    assert set(pack.NODE_CLASS_MAPPINGS) == set(pack.NODE_DISPLAY_NAME_MAPPINGS)
    for node_class in pack.NODE_CLASS_MAPPINGS.values():
        assert isinstance(node_class.RETURN_TYPES, tuple)
        assert callable(getattr(node_class, node_class.FUNCTION))
        assert node_class.CATEGORY and node_class.DESCRIPTION
        assert len(node_class.OUTPUT_TOOLTIPS) == len(node_class.RETURN_TYPES)


def test_import_needs_no_network_no_key_and_no_comfyui(
    monkeypatch: pytest.MonkeyPatch, no_comfy: None
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network access at import")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.delenv("AILAB_API_KEY", raising=False)
    name = "Fresh-Face-Beauty-Pro-Import"
    for key in [key for key in sys.modules if key == name or key.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, key)
    try:
        fresh = exec_pack(name)
        assert "FaceBeautyPro" in fresh.NODE_CLASS_MAPPINGS
    finally:
        for key in [key for key in sys.modules if key == name or key.startswith(name + ".")]:
            del sys.modules[key]


def test_main_node_inputs(pack: types.ModuleType, nodes: types.ModuleType) -> None:
    params = sys.modules[f"{PACK_NAME}.beauty_api.params"]
    FILTER_NAMES, SLIDER_DESCRIPTIONS = params.FILTER_NAMES, params.SLIDER_DESCRIPTIONS
    node_class = pack.NODE_CLASS_MAPPINGS["FaceBeautyPro"]
    inputs = node_class.INPUT_TYPES()
    required = inputs["required"]
    assert list(required) == ["image", *SLIDER_NAMES, "filter_type"]
    assert required["image"][0] == "IMAGE"
    for name in SLIDER_NAMES:
        kind, options = required[name]
        assert kind == "INT"
        assert (options["min"], options["max"], options["step"], options["default"]) == (0, 100, 1, 50)
        assert options["display"] == "slider"
        assert options["tooltip"] == SLIDER_DESCRIPTIONS[name]
    choices, options = required["filter_type"]
    assert choices == ["none", *FILTER_NAMES]
    assert len(choices) == 36
    assert options["default"] == "none"
    assert inputs["optional"]["options"][0] == nodes.OPTIONS_TYPE == "FACE_BEAUTY_OPTIONS"
    assert inputs["hidden"] == {"unique_id": "UNIQUE_ID"}
    assert node_class.RETURN_TYPES == ("IMAGE", "STRING")
    assert node_class.RETURN_NAMES == ("image", "report")
    assert inspect.iscoroutinefunction(node_class.retouch)


def test_options_node_inputs(pack: types.ModuleType, nodes: types.ModuleType) -> None:
    node_class = pack.NODE_CLASS_MAPPINGS["FaceBeautyProOptions"]
    required = node_class.INPUT_TYPES()["required"]
    assert list(required) == [
        "timeout_seconds",
        "concurrency",
        "keep_returned_size",
        "mode",
        "on_failure",
        "use_cache",
    ]
    timeout = required["timeout_seconds"][1]
    assert required["timeout_seconds"][0] == "INT"
    assert (timeout["min"], timeout["max"], timeout["default"]) == (10, 3600, 300)
    concurrency = required["concurrency"][1]
    assert (concurrency["min"], concurrency["max"], concurrency["default"]) == (1, 16, 3)
    assert required["keep_returned_size"] == ("BOOLEAN", required["keep_returned_size"][1])
    assert required["keep_returned_size"][1]["default"] is False
    assert required["mode"][0] == ["async", "sync"] and required["mode"][1]["default"] == "async"
    assert required["on_failure"][0] == ["fail", "pass through"]
    assert required["on_failure"][1]["default"] == "fail"
    assert required["use_cache"][0] == "BOOLEAN" and required["use_cache"][1]["default"] is True
    assert node_class.RETURN_TYPES == (nodes.OPTIONS_TYPE,)

    (built,) = node_class().build(120, 5, True, "sync", "pass through", False)
    assert built == nodes.FaceBeautyRunOptions(120, 5, True, "sync", "pass through", False)
    assert built.retouch_options() == nodes.RetouchOptions(
        mode="sync", keep_returned_size=True, use_cache=False
    )
    assert built.client_settings().timeout == 120.0
    with pytest.raises(nodes.FaceBeautyProError, match="concurrency: 0 is out of range"):
        nodes.FaceBeautyRunOptions(concurrency=0)


def test_every_input_has_a_tooltip_and_no_secret_widget(pack: types.ModuleType) -> None:
    for class_name, node_class in pack.NODE_CLASS_MAPPINGS.items():
        inputs = node_class.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, spec in inputs.get(section, {}).items():
                assert spec[1].get("tooltip"), f"{class_name}.{name} has no tooltip"
                assert not spec[1].get("control_after_generate"), f"{class_name}.{name}"
        for section in inputs.values():
            for name in section:
                lowered = name.lower()
                assert not any(word in lowered for word in ("key", "token", "secret", "password"))
                assert lowered not in ("seed", "noise_seed"), "a seed widget would re-run (and re-pay)"


def test_node_is_deterministic_for_comfyui_cache(pack: types.ModuleType) -> None:
    """No NOT_IDEMPOTENT, and IS_CHANGED only on the API node, stable until a run leaves images
    to retry: an unchanged graph is served from ComfyUI's cache, unpaid."""
    for name, node_class in pack.NODE_CLASS_MAPPINGS.items():
        assert not getattr(node_class, "NOT_IDEMPOTENT", False)
        assert hasattr(node_class, "IS_CHANGED") == (name == "FaceBeautyPro")
    node = pack.NODE_CLASS_MAPPINGS["FaceBeautyPro"]
    first = comfy_is_changed(node, "never-run", RETOUCH)
    assert first == comfy_is_changed(node, "never-run", RETOUCH) == 0


def comfy_is_changed(node_class: Any, unique_id: str, settings: dict[str, Any]) -> Any:
    """IS_CHANGED called the way ComfyUI 0.3.64 calls it (execution.py IsChangedCache): widget
    values and hidden inputs as they are in the prompt, linked inputs (image, options) as None."""
    return node_class.IS_CHANGED(image=None, options=None, unique_id=unique_id, **settings)


def test_description_states_cost_and_key_source(pack: types.ModuleType) -> None:
    description = pack.NODE_CLASS_MAPPINGS["FaceBeautyPro"].DESCRIPTION
    assert "15 AILabTools credits" in description
    assert "AILAB_API_KEY" in description and "config file" in description
    assert "never from a widget" in description


def test_node_search_finds_the_words_people_type(pack: types.ModuleType) -> None:
    """ComfyUI 0.3.64 searches names only; newer versions also read SEARCH_ALIASES."""
    node = pack.NODE_CLASS_MAPPINGS["FaceBeautyPro"]
    display = pack.NODE_DISPLAY_NAME_MAPPINGS["FaceBeautyPro"].lower()
    assert "retouch" in display and "ailab" in display  # found on 0.3.64 as well
    aliases = {alias.lower() for alias in node.SEARCH_ALIASES}
    assert {"retouch", "skin", "filter", "ailab"} <= aliases
    assert isinstance(node.SEARCH_ALIASES, tuple)  # JSON-serialisable, immutable


def test_loading_the_pack_puts_the_sample_portrait_into_comfyui_input(
    pack: types.ModuleType, comfy: FakeComfy
) -> None:
    """The templates open the pack's public-domain portrait, never ComfyUI's cartoon."""
    exec_pack("Face-Beauty-Pro-Sample-Check")  # what ComfyUI does at startup
    copied = comfy.input_dir / pack.SAMPLE_INPUT_NAME
    source = Path(pack.__file__).parent / "beauty_api" / "data" / "sample_portrait.png"
    assert copied.read_bytes() == source.read_bytes()
    assert [path.name for path in comfy.input_dir.iterdir()] == [pack.SAMPLE_INPUT_NAME]


def test_sample_portrait_never_overwrites_and_never_fails(bridge: types.ModuleType, comfy: FakeComfy) -> None:
    comfy.input_dir.mkdir(parents=True)
    mine = comfy.input_dir / "face_beauty_pro_sample_portrait.png"
    mine.write_bytes(b"the user's own file")
    assert bridge.provide_input_file(Path(__file__), mine.name) == mine
    assert mine.read_bytes() == b"the user's own file"
    assert bridge.provide_input_file(Path(__file__).parent / "missing.png", "other.png") is None
    assert not (comfy.input_dir / "other.png").exists()


# -- running against the emulator --------------------------------------------------------------


def test_batch_runs_then_rerun_is_cached_and_free(api: Any, nodes: types.ModuleType) -> None:
    image = portraits(3)
    node = nodes.FaceBeautyPro()

    output, report = run_node(node, image, IDENTITY, unique_id="5")

    assert isinstance(output, torch.Tensor) and output.dtype == torch.float32
    assert output.shape == image.shape
    assert torch.allclose(output, image, atol=1 / 255 + 1e-6), "order or content changed"
    lines = report.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["image 1", "image 2", "image 3"]
    assert all(" new, task " in line for line in lines[:3])
    # Worded so it stays true when ComfyUI re-serves this output from its cache later.
    assert lines[-1].endswith("paid 45 credits when made")
    assert "this run" not in report
    assert api.stats.tasks_created == 3

    again, report_again = run_node(nodes.FaceBeautyPro(), image, IDENTITY, unique_id="5")

    assert torch.equal(again, output)
    assert all(" cached, " in line for line in report_again.splitlines()[:3])
    assert report_again.splitlines()[-1].endswith("0 credits this run")
    assert api.stats.tasks_created == 3


def test_retouched_output_keeps_size_and_alpha(api: Any, nodes: types.ModuleType) -> None:
    image = portraits(2, channels=4, height=80, width=60)
    output, _ = run_node(nodes.FaceBeautyPro(), image, RETOUCH)
    assert output.shape == image.shape
    assert not torch.allclose(output[..., :3], image[..., :3], atol=0.02), "nothing was retouched"
    assert torch.allclose(output[..., 3], image[..., 3], atol=1 / 255 + 1e-6), "alpha changed"


def test_missing_key_is_one_clear_line_and_no_request(
    monkeypatch: pytest.MonkeyPatch, emulator: Any, nodes: types.ModuleType
) -> None:
    monkeypatch.delenv("AILAB_API_KEY", raising=False)
    monkeypatch.setenv("AILAB_API_BASE_URL", emulator.base_url)

    with pytest.raises(nodes.FaceBeautyProError) as caught:
        run_node(nodes.FaceBeautyPro(), portraits(2), RETOUCH)

    message = str(caught.value)
    assert "\n" not in message.strip()
    assert "AILAB_API_KEY" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert emulator.stats.submits_received == 0
    assert emulator.stats.tasks_created == 0


def test_api_failure_fails_the_node_with_code_message_and_advice(api: Any, nodes: types.ModuleType) -> None:
    api.faults.fail_tasks(1, code="ERROR_NO_FACE_IN_FILE")

    with pytest.raises(nodes.FaceBeautyProError) as caught:
        run_node(nodes.FaceBeautyPro(), portraits(1), RETOUCH)

    message = str(caught.value)
    assert "ERROR_NO_FACE_IN_FILE" in message
    assert "one clear, frontal" in message  # the advice from the code table
    assert "Traceback" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert type(caught.value).__module__ == "face_beauty_pro"  # what ComfyUI prints as the type


def test_batch_failure_names_every_failed_image(api: Any, nodes: types.ModuleType) -> None:
    api.faults.fail_tasks(1, code="ERROR_NO_FACE_IN_FILE")
    options = nodes.FaceBeautyRunOptions(concurrency=1)

    with pytest.raises(nodes.FaceBeautyProError) as caught:
        run_node(nodes.FaceBeautyPro(), portraits(3), RETOUCH, options=options)

    message = str(caught.value)
    assert message.startswith("1 of 3 image(s) failed")
    # Which image gets the failing task depends on which is submitted first: exactly one is named.
    assert len(re.findall(r"^  image [1-3]: ", message, flags=re.MULTILINE)) == 1  # numbered from 1
    assert "ERROR_NO_FACE_IN_FILE" in message
    assert api.stats.tasks_created == 3  # the two others finished, are cached, and a re-run is free


def test_pass_through_returns_failed_images_unchanged(api: Any, nodes: types.ModuleType) -> None:
    api.faults.fail_tasks(1, code="ERROR_NO_FACE_IN_FILE")
    image = portraits(3)
    options = nodes.FaceBeautyRunOptions(concurrency=1, on_failure="pass through")

    output, report = run_node(nodes.FaceBeautyPro(), image, RETOUCH, options=options)

    assert output.shape == image.shape
    # Whichever image got the failing task (the first submitted) must come out unchanged.
    (number,) = [
        int(i)
        for i in re.findall(
            r"^image (\d): FAILED \(passed through unchanged\) ERROR_NO_FACE_IN_FILE", report, re.MULTILINE
        )
    ]
    failed = number - 1  # people read images numbered from 1
    assert torch.equal(output[failed], image[failed]), "the failed image must come out unchanged"
    for index in {0, 1, 2} - {failed}:
        assert not torch.allclose(output[index], image[index], atol=0.02)
    assert report.splitlines()[-2].endswith("1 failed; paid 30 credits when made")


# -- a re-queue retries what failed ---------------------------------------------------------------


def test_requeue_after_pass_through_retries_the_failed_image_and_reuses_the_others(
    api: Any, nodes: types.ModuleType
) -> None:
    node_class = nodes.FaceBeautyPro
    image = portraits(3)
    options = nodes.FaceBeautyRunOptions(concurrency=1, on_failure="pass through")
    api.faults.fail_tasks(1, code="PROCESSING_FAILURE")
    before = comfy_is_changed(node_class, "21", RETOUCH)

    first, report = run_node(node_class(), image, RETOUCH, options=options, unique_id="21")

    (failed,) = [int(n) - 1 for n in re.findall(r"^image (\d): FAILED", report, re.MULTILINE)]
    assert torch.equal(first[failed], image[failed])
    assert report.splitlines()[-1].startswith("queue again to retry the failed image(s)")
    after_failure = comfy_is_changed(node_class, "21", RETOUCH)
    assert after_failure != before, "ComfyUI would serve the incomplete output from its cache"
    assert api.stats.tasks_created == 3

    # The cause is gone (the fault was one task); ComfyUI sees a new IS_CHANGED and runs the node.
    second, report = run_node(node_class(), image, RETOUCH, options=options, unique_id="21")

    lines = report.splitlines()
    assert lines[failed].startswith(f"image {failed + 1}: new, task ")
    assert [" cached, " in line for line in lines[:3]].count(True) == 2
    assert lines[-1].endswith("2 cached, 0 resumed, 0 failed; paid 15 credits when made")
    assert api.stats.tasks_created == 4, "only the failed image was sent again"
    assert not torch.allclose(second[failed], image[failed], atol=0.02), "the failed image is retouched"
    for index in {0, 1, 2} - {failed}:
        assert torch.equal(second[index], first[index])
    # Every image succeeded: IS_CHANGED stays put, so the next queue is ComfyUI's cache hit.
    assert comfy_is_changed(node_class, "21", RETOUCH) == after_failure
    assert comfy_is_changed(node_class, "21", RETOUCH) == after_failure


def test_requeue_retry_is_per_node_and_settings_and_never_repeats_a_value(
    api: Any, nodes: types.ModuleType
) -> None:
    node_class = nodes.FaceBeautyPro
    options = nodes.FaceBeautyRunOptions(on_failure="pass through")
    other_settings = RETOUCH | {"whitening": 61}
    untouched = (
        comfy_is_changed(node_class, "23", RETOUCH),
        comfy_is_changed(node_class, "22", other_settings),
    )
    seen = [comfy_is_changed(node_class, "22", RETOUCH)]
    for _ in range(2):  # the API keeps failing: every queue runs the node again, with a new value
        api.faults.fail_tasks(1)
        run_node(node_class(), portraits(1), RETOUCH, options=options, unique_id="22")
        seen.append(comfy_is_changed(node_class, "22", RETOUCH))
    assert len(set(seen)) == 3
    # Another node, or the same node with other settings, keeps its value.
    assert (
        comfy_is_changed(node_class, "23", RETOUCH),
        comfy_is_changed(node_class, "22", other_settings),
    ) == untouched
    # ComfyUI may hand a slider over as 61.0: the same request.
    as_floats = {name: float(value) if name != "filter_type" else value for name, value in RETOUCH.items()}
    assert comfy_is_changed(node_class, "22", as_floats) == seen[-1]


def test_requeue_does_not_retry_when_the_cache_is_off(api: Any, nodes: types.ModuleType) -> None:
    """Without the result cache a retry would pay for every image again: ComfyUI keeps the output."""
    node_class = nodes.FaceBeautyPro
    options = nodes.FaceBeautyRunOptions(on_failure="pass through", use_cache=False)
    before = comfy_is_changed(node_class, "24", RETOUCH)
    api.faults.fail_tasks(1)

    _, report = run_node(node_class(), portraits(2), RETOUCH, options=options, unique_id="24")

    assert comfy_is_changed(node_class, "24", RETOUCH) == before
    assert report.splitlines()[-1].startswith("use_cache is off, so a re-queue keeps this output")


def test_node_text_says_queue_again_after_images_were_passed_through(
    api: Any, nodes: types.ModuleType, comfy: FakeComfy
) -> None:
    options = nodes.FaceBeautyRunOptions(concurrency=1, on_failure="pass through")
    api.faults.fail_tasks(1, code="ERROR_NO_FACE_IN_FILE")
    run_node(nodes.FaceBeautyPro(), portraits(2), RETOUCH, options=options, unique_id="25")
    final = [text for text, node in comfy.texts if node == "25"][-1]
    assert "1 passed through" in final
    assert final.splitlines()[-1] == "queue again to retry"


def test_invalid_widget_value_is_refused_before_any_request(api: Any, nodes: types.ModuleType) -> None:
    settings = RETOUCH | {"filter_type": "Sakuraa"}
    with pytest.raises(nodes.FaceBeautyProError, match="Did you mean 'Sakura'"):
        run_node(nodes.FaceBeautyPro(), portraits(1), settings)
    assert api.stats.submits_received == 0


def test_unexpected_bug_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, api: Any, nodes: types.ModuleType
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(sys.modules[f"{PACK_NAME}.face_beauty_nodes.runner"], "retouch_batch", broken)
    with pytest.raises(ZeroDivisionError) as caught:
        run_node(nodes.FaceBeautyPro(), portraits(1), RETOUCH)
    assert any(entry.name == "broken" for entry in caught.traceback)


def test_event_loop_stays_free_while_waiting(api: Any, nodes: types.ModuleType) -> None:
    """Other async nodes keep running while this one waits for the API."""
    api.processing_seconds = 0.4
    ticks = 0

    async def other_node() -> None:
        nonlocal ticks
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1

    async def both() -> tuple[Any, str]:
        result, _ = await asyncio.gather(nodes.FaceBeautyPro().retouch(portraits(1), **RETOUCH), other_node())
        return result

    output, _ = asyncio.run(both())
    assert output.shape[0] == 1
    assert ticks == 20


# -- ComfyUI integration through the bridge ---------------------------------------------------


def test_cancel_stops_within_half_a_second_with_comfyui_interrupt(
    api: Any, nodes: types.ModuleType, comfy: FakeComfy
) -> None:
    api.processing_seconds = 30.0
    flipped_at: list[float] = []
    raised_at: list[float] = []

    def press_cancel() -> None:
        """Press Cancel ~0.2 s into the wait for the three paid tasks."""
        deadline = time.monotonic() + 10
        while api.stats.tasks_created < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        flipped_at.append(time.monotonic())
        comfy.interrupt()

    async def call() -> None:
        try:
            await nodes.FaceBeautyPro().retouch(portraits(3), **RETOUCH, unique_id="12")
        except BaseException:
            raised_at.append(time.monotonic())
            raise

    timer = threading.Thread(target=press_cancel, daemon=True)
    timer.start()
    with pytest.raises(comfy.InterruptProcessingException):
        asyncio.run(call())
    timer.join()

    assert flipped_at and raised_at
    assert raised_at[0] - flipped_at[0] < 0.5
    (bar,) = comfy.bars
    steps = 3 * STEPS_PER_IMAGE
    assert (bar.total, bar.node_id) == (steps, "12")
    assert bar.updates and bar.updates[0] == (0, steps)
    assert all(value < steps for value, _ in bar.updates), "nothing finished: the bar is not full"
    assert comfy.texts and all(node_id == "12" for _, node_id in comfy.texts)
    assert not any(text.startswith("Face Beauty Pro") for text, _ in comfy.texts)  # no redundant prefix
    assert comfy.texts[0][0].startswith("0 of 3 done")
    # The last frame says what happened and what to do, not a stale "queued".
    assert comfy.texts[-1][0].splitlines()[0] == "cancelled"
    assert "resume" in comfy.texts[-1][0] and "without paying" in comfy.texts[-1][0]
    assert api.stats.tasks_created == 3


def test_interrupt_seen_by_the_progress_hook_still_cancels(
    api: Any, nodes: types.ModuleType, comfy: FakeComfy
) -> None:
    """ComfyUI's progress hook clears the flag when it raises; the workers must stop anyway."""
    api.processing_seconds = 30.0
    comfy.interrupt()  # pressed before the first progress update, which therefore consumes it
    started = time.monotonic()
    with pytest.raises(comfy.InterruptProcessingException):
        run_node(nodes.FaceBeautyPro(), portraits(2), RETOUCH, unique_id="3")
    assert time.monotonic() - started < 1.0
    assert api.stats.tasks_created == 0


def test_progress_reports_each_finished_image(api: Any, nodes: types.ModuleType, comfy: FakeComfy) -> None:
    run_node(nodes.FaceBeautyPro(), portraits(3), RETOUCH, unique_id="9")
    (bar,) = comfy.bars
    steps = 3 * STEPS_PER_IMAGE
    assert bar.updates[0] == (0, steps) and bar.updates[-1] == (steps, steps)
    values = [value for value, _ in bar.updates]
    assert values == sorted(values)
    final = comfy.texts[-1][0].splitlines()
    assert final[0].startswith("done · 3 new · ")
    assert final[1] == "paid 45 credits when made"


def test_progress_text_is_sent_only_when_it_changes(pack: types.ModuleType, comfy: FakeComfy) -> None:
    status_module = sys.modules[f"{PACK_NAME}.face_beauty_nodes.status"]
    clock = FakeClock()
    status = status_module.NodeStatus(total=4, clock=clock)
    publisher = status_module.StatusPublisher(status, "1")
    publisher.publish()
    for index, stage in enumerate(["queued", "processing", "processing"]):
        status.on_progress(Progress(index, stage, f"t{index}", 1.0))
    publisher.publish()
    assert comfy.texts[-1][0].splitlines()[1:] == [
        "image 1: queued",
        "image 2: processing 0 s",
        "image 3: processing 0 s",
    ]
    count = len(comfy.texts)
    publisher.publish()  # nothing changed (within the same second): nothing is sent
    assert len(comfy.texts) == count
    clock.advance(1.0)
    publisher.publish()  # a second later the elapsed time changed
    assert len(comfy.texts) == count + 1
    assert (
        sys.modules[f"{PACK_NAME}.face_beauty_nodes.runner"].PROGRESS_TICK_SECONDS >= 0.5
    )  # at most ~2 a second


def test_user_directory_places_state_under_comfyui_user_dir(
    monkeypatch: pytest.MonkeyPatch, bridge: types.ModuleType, comfy: FakeComfy, tmp_path: Path
) -> None:
    assert bridge.user_directory() == tmp_path / "comfy-user"


def test_bridge_is_a_no_op_without_comfyui(bridge: types.ModuleType, no_comfy: None) -> None:
    assert bridge.check_interrupted() is None
    bar = bridge.progress_bar(3, "1")
    assert bar.update_absolute(1, 3) is None
    assert bridge.send_progress_text("hello", "1") is None
    assert bridge.user_directory() is None
    assert bridge.input_directory() is None
    assert bridge.provide_input_file(Path(__file__), "anything.png") is None
    assert bridge.interrupt_exception_type() is None
    assert bridge.is_interrupt(RuntimeError()) is False
    watch = bridge.InterruptWatch()
    assert watch() is None and not watch.tripped


def test_progress_text_is_sent_as_frontend_text(bridge: types.ModuleType, comfy: FakeComfy) -> None:
    bridge.send_progress_text("set AILAB_API_KEY=<your key>\nthen restart", "4")
    ((text, node_id),) = comfy.texts
    assert node_id == "4"
    assert comfy.sent_texts == [bridge.frontend_text("set AILAB_API_KEY=<your key>\nthen restart")]
    assert text == "set AILAB_API_KEY=<your key>\nthen restart"  # each frontend: test_frontend_text.py


def test_interrupt_watch_is_sticky_across_threads(bridge: types.ModuleType, comfy: FakeComfy) -> None:
    watch = bridge.InterruptWatch()
    watch()  # not interrupted: nothing happens
    comfy.interrupt()
    with pytest.raises(comfy.InterruptProcessingException):
        watch()
    assert comfy.processing_interrupted() is False  # ComfyUI cleared its flag...
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            watch()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], comfy.InterruptProcessingException)  # ...we did not


@pytest.mark.parametrize("layout", ["uint8 [B,H,W,C]", "float [H,W,C]"])
def test_pass_through_keeps_brightness_and_batch_size_of_any_layout(
    api: Any, nodes: types.ModuleType, comfy: FakeComfy, layout: str
) -> None:
    """A uint8 tensor is 0..255, not 0..1 (no 255x brightening); `[H,W,C]` is one image, not H."""
    api.faults.fail_tasks(1, code="ERROR_NO_FACE_IN_FILE")
    image = portraits(1)
    expected = image.clone()
    image = (image * 255).round().to(torch.uint8) if layout.startswith("uint8") else image[0]
    options = nodes.FaceBeautyRunOptions(on_failure="pass through")

    output, _ = run_node(nodes.FaceBeautyPro(), image, RETOUCH, options=options, unique_id="5")

    assert output.shape == expected.shape and output.dtype == torch.float32
    assert torch.allclose(output, expected, atol=1 / 255)
    (bar,) = comfy.bars
    assert bar.total == STEPS_PER_IMAGE  # one image, not H
    assert bar.updates[-1][0] < STEPS_PER_IMAGE  # a failed image never shows as done


def test_the_node_closes_the_http_session_it_opened(
    api: Any, nodes: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    closed: list[requests.Session] = []
    real_close = requests.Session.close

    def recording_close(self: requests.Session) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(requests.Session, "close", recording_close)
    run_node(nodes.FaceBeautyPro(), portraits(1), RETOUCH)
    assert len(closed) == 1


def test_pyproject_declares_the_minimum_comfyui_for_async_nodes() -> None:
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    comfy_table = text.split("[tool.comfy]", 1)[1].split("\n[", 1)[
        0
    ]  # tomllib is 3.11+, the pack runs on 3.10
    assert re.search(r'^requires-comfyui = ">=0\.3\.45"$', comfy_table, re.MULTILINE)


def test_the_node_converts_one_image_at_a_time_and_fills_its_output_in_place(
    api: Any, nodes: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory: the IMAGE batch is already in memory, so the node never makes a uint8 copy of all
    of it (only of the images in flight), and results go straight into the output tensor."""
    lazy = sys.modules[f"{PACK_NAME}.beauty_api.codec.lazy_sources"]
    real = lazy.images_from_input
    converted: list[int] = []

    def counting(image: Any) -> Any:
        converted.append(1 if len(image.shape) == 3 else int(image.shape[0]))
        return real(image)

    monkeypatch.setattr(lazy, "images_from_input", counting)
    image = portraits(4)
    output, report = run_node(nodes.FaceBeautyPro(), image, RETOUCH)

    assert converted == [1, 1, 1, 1]  # four single images, never the batch of four
    assert output.shape == image.shape and output.dtype == torch.float32
    assert all(not torch.equal(output[i], image[i]) for i in range(4))  # every result is in place
    assert report.count("new") >= 4


# -- one ledger per OS user (issue 16) -----------------------------------------------------------


def _per_user_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No FACE_BEAUTY_STATE_DIR: the real precedence, with the per-user cache folder under tmp_path."""
    monkeypatch.delenv("FACE_BEAUTY_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache" / "face-beauty-pro"


def test_the_node_then_the_cli_on_the_same_picture_pay_once(
    api: Any, nodes: types.ModuleType, comfy: FakeComfy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from PIL import Image

    from beauty_api.cli.main import main

    _per_user_state(monkeypatch, tmp_path)
    image = portraits(1)
    run_node(nodes.FaceBeautyPro(), image, RETOUCH)
    assert api.stats.paid_submits == 1
    picture = tmp_path / "portrait.png"
    Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8)).save(picture)
    flags = [
        f"--{name.replace('_', '-')}={value}" for name, value in RETOUCH.items() if name != "filter_type"
    ]
    assert main(["retouch", str(picture), *flags, "--filter", "Sakura", "-o", str(tmp_path / "out.png")]) == 0
    assert api.stats.paid_submits == 1  # the CLI found the node's result in the one per-user ledger


def test_comfyuis_older_ledger_is_taken_over_on_first_use(
    api: Any, nodes: types.ModuleType, comfy: FakeComfy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from beauty_api.ledger.storage_paths import legacy_comfy_dir, open_journal

    state = _per_user_state(monkeypatch, tmp_path)
    old = legacy_comfy_dir(tmp_path / "comfy-user")
    monkeypatch.setenv("FACE_BEAUTY_STATE_DIR", str(old))  # the old version wrote its ledger there
    image = portraits(1)
    run_node(nodes.FaceBeautyPro(), image, RETOUCH)
    open_journal(old).claim("a" * 64, "elsewhere:1:x")  # and one claim nobody may lose
    monkeypatch.delenv("FACE_BEAUTY_STATE_DIR")
    run_node(nodes.FaceBeautyPro(), image, RETOUCH)  # the upgraded node: per-user ledger, old one merged
    assert api.stats.paid_submits == 1
    assert not old.exists() and list(old.parent.glob("face_beauty_pro.merged-*"))
    assert open_journal(state).get("a" * 64) is not None


def test_a_secret_in_the_configured_address_never_reaches_the_node(
    api: Any, nodes: types.ModuleType, comfy: FakeComfy, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    runner = sys.modules[f"{PACK_NAME}.face_beauty_nodes.runner"]
    for address in ("https://user:s3cret@host/", "https://host/?key=s3cret", "https://host/#s3cret"):
        monkeypatch.setenv("AILAB_API_BASE_URL", address)
        with pytest.raises(runner.FaceBeautyProError) as caught:
            run_node(nodes.FaceBeautyPro(), portraits(1), RETOUCH)
        assert "s3cret" not in str(caught.value) and "host" in str(caught.value)
    assert "s3cret" not in caplog.text
