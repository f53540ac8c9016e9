"""A re-queue retries what failed: the record behind IS_CHANGED, and the runner that feeds it.

The node end to end (the emulator failing one image, the re-run retrying only that one) is in
test_comfy_pack.py; in a real ComfyUI, in tests/e2e/requeue_check.py. Here: the key, the record,
and which ways a run can end count as "images still to retouch", with a scripted backend (no
HTTP): a failed image, an image whose task was still running at the deadline, an account error
that left images unsent, and a run in which everything succeeded.
"""

from __future__ import annotations

import asyncio
import sys
import types
from typing import Any

import numpy as np
import pytest
import torch
from pack_loader import PACK_NAME, load_pack


def pack_module(name: str) -> types.ModuleType:
    """A module of the pack as ComfyUI loaded it (its own copy of beauty_api, its own classes)."""
    load_pack()
    return sys.modules[f"{PACK_NAME}.{name}"]


errors = pack_module("beauty_api.errors")
backend = pack_module("beauty_api.run.backend")


@pytest.fixture(scope="module")
def requeue() -> types.ModuleType:
    return pack_module("face_beauty_nodes.requeue")


@pytest.fixture(scope="module")
def runner() -> types.ModuleType:
    return pack_module("face_beauty_nodes.runner")


class FailingBackend:
    """Every image succeeds except the scripted ones, which raise their error."""

    def __init__(self, fail: dict[int, Exception]) -> None:
        self.fail = fail

    def retouch(self, source: Any, params: Any, *, options: Any, index: int = 0, **_: Any) -> Any:
        if index in self.fail:
            raise self.fail[index]
        return backend.RetouchOutcome(np.full((4, 4, 3), 200, np.uint8), "new", f"task-{index}", 0.01, 15)


def run_with(runner: types.ModuleType, fail: dict[int, Exception], pass_through: bool = True) -> list[str]:
    """Run three images through the runner; returns what on_incomplete recorded."""
    calls: list[str] = []
    plan = runner.RunPlan(
        make_backend=lambda: FailingBackend(fail),
        retouch_options=backend.RetouchOptions(),
        concurrency=1,
        pass_through=pass_through,
        on_incomplete=lambda: calls.append("incomplete"),
    )
    image = torch.full((3, 4, 4, 3), 0.5)
    try:
        params = pack_module("beauty_api.params").BeautyParams
        asyncio.run(runner.run_retouch(image, params, plan, node_id=None))
    except runner.FaceBeautyProError:
        assert not pass_through
    return calls


def test_a_run_where_every_image_succeeded_records_nothing(runner: types.ModuleType) -> None:
    assert run_with(runner, {}) == []


@pytest.mark.parametrize(
    "error",
    [
        errors.ApiError(http_status=200, code="PROCESSING_FAILURE", api_message="the task failed"),
        errors.DeadlineExceeded("still processing at the deadline", task_id="task-1"),
        errors.NotSent("not sent: the batch stopped at an account error"),
    ],
    ids=["failed", "running-at-deadline", "not-sent"],
)
def test_any_image_left_to_retouch_makes_the_next_queue_run(
    runner: types.ModuleType, error: Exception
) -> None:
    assert run_with(runner, {1: error}) == ["incomplete"]


def test_a_failing_node_records_too(runner: types.ModuleType) -> None:
    """on_failure = fail: ComfyUI never caches a failed node, and the record says the same."""
    failure = errors.ApiError(http_status=200, code="PROCESSING_FAILURE", api_message="the task failed")
    assert run_with(runner, {0: failure}, pass_through=False) == ["incomplete"]


def test_the_key_is_the_node_and_its_widget_values(requeue: types.ModuleType) -> None:
    key = requeue.run_key("7", {"whitening": 50, "filter_type": "Calm"})
    assert key == requeue.run_key("7", {"filter_type": "Calm", "whitening": 50.0})
    assert key == requeue.run_key(7, {"whitening": 50, "filter_type": "Calm"})
    assert key != requeue.run_key("8", {"whitening": 50, "filter_type": "Calm"})
    assert key != requeue.run_key("7", {"whitening": 51, "filter_type": "Calm"})
    assert key != requeue.run_key("7", {"whitening": 50, "filter_type": "Sakura"})
    assert key != requeue.run_key(None, {"whitening": 50, "filter_type": "Calm"})
    assert requeue.run_key("7", {"odd": object()})  # never raises: ComfyUI would log and re-run


def test_generations_move_on_and_never_come_back(requeue: types.ModuleType) -> None:
    runs = requeue.IncompleteRuns(max_keys=2)
    assert runs.generation("a") == 0
    runs.mark_incomplete("a")
    runs.mark_incomplete("a")
    runs.mark_incomplete("b")
    assert (runs.generation("a"), runs.generation("b")) == (2, 1)
    runs.mark_incomplete("c")  # over the limit: the key not marked for the longest time goes
    assert (runs.generation("a"), runs.generation("b"), runs.generation("c")) == (0, 1, 1)
