"""What the node shows in every state, driven by synthetic progress events and a fake clock.

The events are the contract of beauty_api.run.progress_events.Progress (stages, RetryNotice, expected,
reason); the emitters of some of them live in other modules, so the display is tested here on
its own, without HTTP and without ComfyUI.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from pack_loader import PACK_NAME, load_pack

from beauty_api.clock import FakeClock
from beauty_api.errors import ApiError, ConfigurationError
from beauty_api.run.backend import RetouchOutcome
from beauty_api.run.batch import BatchResult, ItemFailure
from beauty_api.run.progress_events import Progress, RetryNotice

LINE_LIMIT = 40  # what fits on one line of the node at 100% zoom


@pytest.fixture(scope="module")
def status_module() -> types.ModuleType:
    load_pack()
    return sys.modules[f"{PACK_NAME}.face_beauty_nodes.status"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def outcome(origin: str = "new", credits: int = 15, task: str | None = "t1") -> RetouchOutcome:
    return RetouchOutcome(np.zeros((2, 2, 3), np.uint8), origin, task, 4.2, credits)


def no_face() -> ApiError:
    return ApiError(
        http_status=422,
        code="ERROR_NO_FACE_IN_FILE",
        api_message="No face was found.",
    )


def assert_readable(lines: tuple[str, ...]) -> None:
    for line in lines:
        assert len(line) <= LINE_LIMIT, f"too long for the node: {line!r}"
        assert not line.startswith("Face Beauty Pro"), "the node's title already says it"
        assert "image 0" not in line, "images are numbered from 1 in what people read"


def test_one_image_moves_the_bar_through_its_stages(
    status_module: types.ModuleType, clock: FakeClock
) -> None:
    status = status_module.NodeStatus(total=1, clock=clock)
    steps = status_module.STEPS_PER_IMAGE
    positions = [status.view().value]
    texts = [status.view().lines]
    for stage in ("encoding", "submitting", "queued"):
        status.on_progress(Progress(0, stage, "t1", 0.1))
        positions.append(status.view().value)
        texts.append(status.view().lines)
    status.on_progress(Progress(0, "processing", "t1", 1.0, expected=8.0))
    positions.append(status.view().value)
    clock.advance(4.0)
    status.on_progress(Progress(0, "processing", "t1", 5.0, expected=8.0))  # another poll
    view = status.view()
    positions.append(view.value)
    assert view.lines[0] == "processing 4 s of ~8 s"  # the stage's own time, not reset by each poll
    status.on_progress(Progress(0, "downloading", "t1", 6.0))
    positions.append(status.view().value)

    assert positions == sorted(positions) and len(set(positions)) == len(positions), positions
    assert 0 < positions[-1] < steps, "not full before the image is done"
    assert texts[0] == ("starting · 0 s",)
    assert texts[2][0] == "submitting" and texts[3][0].startswith("submitted, queued")
    status.on_item_done(0, outcome())
    status.finish(BatchResult(outcomes=[outcome()]))
    final = status.view()
    assert final.value == final.total == steps
    assert final.lines[0].startswith("done · 1 new · ")
    assert final.lines[1] == "paid 15 credits when made"
    assert_readable(final.lines)


def test_processing_without_an_estimate_still_moves_but_never_fills(
    status_module: types.ModuleType, clock: FakeClock
) -> None:
    status = status_module.NodeStatus(total=1, clock=clock)
    status.on_progress(Progress(0, "processing", "t1", 1.0))
    start = status.view().value
    clock.advance(3.0)
    middle = status.view().value
    clock.advance(600.0)
    late = status.view().value
    assert start < middle < late < status_module.STAGE_STEPS["downloading"]
    assert status.view().lines[0] == "processing 603 s"


def test_a_failed_image_is_not_shown_as_done(status_module: types.ModuleType, clock: FakeClock) -> None:
    """Issue 12, item 1: a full bar and "1/1 done" after the API was unreachable."""
    status = status_module.NodeStatus(total=1, clock=clock)
    status.on_progress(Progress(0, "submitting", None, 0.1))
    clock.advance(13.0)
    status.on_progress(Progress(0, "failed", None, 13.0))
    status.on_item_done(0, None)
    error = ConnectionError("Could not reach the API at http://127.0.0.1:9: connection refused")
    status.finish(BatchResult(outcomes=[None], failures=[ItemFailure(0, error)]))
    view = status.view()
    assert view.value == 0
    assert view.lines[0] == "failed · 13 s"
    assert "connection refused" in " ".join(view.lines)
    assert_readable(view.lines)


def test_batch_failures_and_unsent_images_are_named(
    status_module: types.ModuleType, clock: FakeClock
) -> None:
    status = status_module.NodeStatus(total=4, clock=clock)
    status.on_item_done(0, outcome())
    status.on_progress(Progress(1, "failed", "t2", 3.0, reason="ERROR_NOT_ENOUGH_CREDITS: top up"))
    status.on_item_done(1, None)
    for index in (2, 3):
        status.on_progress(Progress(index, "not_sent", None, 0.0, reason="no credits left"))
        status.on_item_done(index, None)
    failures = [
        ItemFailure(1, RuntimeError("credits")),
        ItemFailure(2, RuntimeError("x")),
        ItemFailure(3, RuntimeError("x")),
    ]
    status.finish(BatchResult(outcomes=[outcome(), None, None, None], failures=failures))
    view = status.view()
    steps = status_module.STEPS_PER_IMAGE
    assert view.value == steps  # only the one done image
    assert view.lines[0] == "1 of 4 done · 1 failed · 2 not sent"
    text = " ".join(view.lines)  # long reasons wrap onto the next line
    assert "image 2 failed: ERROR_NOT_ENOUGH_CREDITS" in text
    assert "image 3 not sent: no credits left" in text
    assert_readable(view.lines)


def test_retrying_says_attempt_reason_and_countdown(
    status_module: types.ModuleType, clock: FakeClock
) -> None:
    """Issue 12, item 3: silence while the API is down."""
    status = status_module.NodeStatus(total=1, clock=clock)
    status.on_progress(Progress(0, "submitting", None, 0.1))
    notice = RetryNotice(attempt=2, max_attempts=5, reason="connection refused", next_try_s=4.0)
    status.on_progress(Progress(0, "retrying", None, 3.0, retry=notice))
    assert status.view().lines[:3] == ("attempt 2 of 5 failed:", "connection refused", "next try in 4 s")
    clock.advance(1.5)
    assert status.view().lines[2] == "next try in 3 s"
    clock.advance(10.0)
    assert status.view().lines[2] == "trying again now"  # the countdown never sits at "0 s"

    batch = status_module.NodeStatus(total=3, clock=clock)
    batch.on_progress(Progress(1, "retrying", None, 1.0, retry=notice))
    assert batch.view().lines[1] == "image 2: retry 3/5 in 4 s"
    clock.advance(5.0)
    assert batch.view().lines[1] == "image 2: retry 3/5 now"


def test_cancel_and_early_errors_replace_stale_text(
    status_module: types.ModuleType, clock: FakeClock
) -> None:
    """Issue 12, item 2: "image 0 queued" after Cancel, "starting" after a missing key."""
    status = status_module.NodeStatus(total=1, clock=clock)
    status.on_progress(Progress(0, "queued", "t1", 1.0))
    status.cancelled()
    assert status.view().lines == ("cancelled", "queue again to resume", "without paying")

    early = status_module.NodeStatus(total=1, clock=clock)
    message = str(ConfigurationError("No API key found.\nSet AILAB_API_KEY (see README)."))
    early.stopped(message)
    view = early.view()
    assert view.lines[0] == "error"
    assert "No API key found." in " ".join(view.lines)
    assert view.value == 0
    assert_readable(view.lines)


def test_failure_lines_survive_the_error_that_follows(
    status_module: types.ModuleType, clock: FakeClock
) -> None:
    """After a failed batch the node raises BatchFailed: the per-image lines stay."""
    status = status_module.NodeStatus(total=2, clock=clock)
    status.on_item_done(0, outcome())
    status.finish(BatchResult(outcomes=[outcome(), None], failures=[ItemFailure(1, no_face())]))
    before = status.view().lines
    status.stopped("1 of 2 image(s) failed; ...")
    assert status.view().lines == before


def test_cache_hits_are_worded_as_not_charged_now(status_module: types.ModuleType, clock: FakeClock) -> None:
    """Issue 12, item 5: a re-queue served from a cache must not read like a second charge."""
    status = status_module.NodeStatus(total=2, clock=clock)
    cached = [outcome("cached", 0), outcome("resumed", 0)]
    for index, item in enumerate(cached):
        status.on_item_done(index, item)
    status.finish(BatchResult(outcomes=cached))
    lines = status.view().lines
    assert lines[0].startswith("done · 1 cached, 1 resumed · ")
    assert lines[1] == "0 credits this run"

    report = status_module.report_text(BatchResult(outcomes=cached), passed_through=False)
    assert report.splitlines()[0].startswith("image 1: cached, task t1")
    assert report.splitlines()[0].endswith("0 credits (paid before)")
    assert report.splitlines()[-1].endswith("0 credits this run")

    paid = status_module.report_text(BatchResult(outcomes=[outcome()]), passed_through=False)
    assert paid.splitlines()[-1].endswith("paid 15 credits when made")
    assert "this run" not in paid, "a report ComfyUI may re-serve later must not say 'this run'"


def test_pass_through_summary_lists_the_unchanged_images(
    status_module: types.ModuleType, clock: FakeClock
) -> None:
    status = status_module.NodeStatus(total=2, clock=clock)
    status.on_item_done(0, outcome())
    status.on_item_done(1, None)
    result = BatchResult(outcomes=[outcome(), None], failures=[ItemFailure(1, no_face())])
    status.finish(result, passed_through=True)
    lines = status.view().lines
    assert lines[0].startswith("done · 1 new, 1 passed through · ")
    assert lines[1] == "paid 15 credits when made"
    assert lines[2].startswith("image 2: ")
    report = status_module.report_text(result, passed_through=True)
    assert report.splitlines()[1].startswith(
        "image 2: FAILED (passed through unchanged) ERROR_NO_FACE_IN_FILE"
    )


def test_a_batch_lists_at_most_three_images(status_module: types.ModuleType, clock: FakeClock) -> None:
    status = status_module.NodeStatus(total=6, clock=clock)
    for index in range(6):
        status.on_progress(Progress(index, "queued", f"t{index}", 0.1))
    status.on_item_done(0, outcome())
    lines = status.view().lines
    assert lines[0] == "1 of 6 done · 0 s"
    assert lines[1:4] == ("image 2: queued", "image 3: queued", "image 4: queued")
    assert lines[4] == "+2 more"


def test_events_for_unknown_images_are_ignored(status_module: types.ModuleType, clock: FakeClock) -> None:
    status = status_module.NodeStatus(total=1, clock=clock)
    status.on_progress(Progress(5, "processing", "t", 1.0))
    status.on_item_done(-1, None)
    assert status.view().lines == ("starting · 0 s",)


def test_long_messages_wrap_at_word_boundaries(status_module: types.ModuleType) -> None:
    lines = status_module.wrap("x " * 5 + "a-rather-long-code-ERROR_NOT_ENOUGH_CREDITS and more words " * 4)
    assert all(len(line) <= LINE_LIMIT for line in lines)
    assert len(lines) <= 4
    assert status_module.one_line("\n  first   line \nsecond") == "first line"
