"""retouch_batch: order, bounded concurrency, per-image failures, cancel, rate-limit adaptation.

The backend here is a scripted stand-in for the RetouchBackend interface, so these tests pin
the batch logic alone; the real backend against the emulator is in test_backend.py.
"""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

from beauty_api.errors import ApiError, BatchFailed, InvalidParameterError, RetouchCancelled
from beauty_api.params import BeautyParams
from beauty_api.run.backend import RetouchOptions, RetouchOutcome
from beauty_api.run.batch import retouch_batch
from beauty_api.run.progress_events import Progress


class ScriptedBackend:
    """Returns an image whose value is the index; fails or waits as scripted per index."""

    def __init__(
        self, *, fail: dict[int, Exception] | None = None, delay: float = 0.0, rate_limit_first: int = 0
    ):
        self.fail = fail or {}
        self.delay = delay
        self.rate_limit_first = rate_limit_first
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.calls: list[int] = []

    def retouch(self, source, params, *, options, index=0, on_progress=None, check_cancel=None, limiter=None):
        # Like ApiBackend: only the "remote" part holds one of the limiter's slots.
        with limiter.slot(check_cancel) if limiter is not None else contextlib.nullcontext():
            return self._remote_part(index, on_progress, check_cancel, limiter)

    def _remote_part(self, index, on_progress, check_cancel, limiter):
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.calls.append(index)
            limited = self.rate_limit_first > 0
            if limited:
                self.rate_limit_first -= 1
        try:
            if limited and limiter is not None:
                limiter.on_rate_limited()
            end = time.monotonic() + self.delay
            while time.monotonic() < end:
                if check_cancel is not None:
                    check_cancel()
                time.sleep(0.005)
            if check_cancel is not None:
                check_cancel()
            if on_progress is not None:
                on_progress(Progress(index, "done", f"task-{index}", 0.0))
            if index in self.fail:
                raise self.fail[index]
            return RetouchOutcome(np.full((2, 2, 3), index, np.uint8), "new", f"task-{index}", 0.01, 15)
        finally:
            with self.lock:
                self.in_flight -= 1


def _sources(n: int) -> list[object]:
    return [object() for _ in range(n)]


def test_outcomes_keep_input_order_and_count_credits() -> None:
    backend = ScriptedBackend(delay=0.01)
    result = retouch_batch(backend, _sources(7), BeautyParams(), concurrency=3)
    assert [int(o.image[0, 0, 0]) for o in result.outcomes] == list(range(7))
    assert result.failures == []
    assert result.credits_spent == 7 * 15
    assert "105 credits spent this run" in result.report()


def test_concurrency_is_bounded() -> None:
    backend = ScriptedBackend(delay=0.03)
    retouch_batch(backend, _sources(9), BeautyParams(), concurrency=2)
    assert backend.peak == 2


def test_a_failed_image_does_not_stop_the_others_and_is_reported_with_its_index() -> None:
    no_face = ApiError(http_status=422, code="ERROR_NO_FACE_IN_FILE", api_message="pic not has face")
    backend = ScriptedBackend(fail={1: no_face})
    result = retouch_batch(backend, _sources(4), BeautyParams(), concurrency=2)
    assert sorted(backend.calls) == [0, 1, 2, 3]
    assert result.outcomes[1] is None
    assert [o is not None for o in result.outcomes] == [True, False, True, True]
    assert [(f.index, f.code) for f in result.failures] == [(1, "ERROR_NO_FACE_IN_FILE")]
    assert "image 1: FAILED ERROR_NO_FACE_IN_FILE" in result.report()
    with pytest.raises(BatchFailed) as caught:
        result.raise_for_failures()
    assert "1 of 4 image(s) failed" in str(caught.value)
    # The error dialog numbers images from 1 (index 1 is the second image).
    assert "image 2:" in str(caught.value) and "ERROR_NO_FACE_IN_FILE" in str(caught.value)


class OneShotInterrupt(Exception):
    """Like ComfyUI's InterruptProcessingException."""


def test_cancel_with_a_one_shot_flag_stops_every_worker_and_raises_the_callers_exception() -> None:
    # ComfyUI's throw_exception_if_processing_interrupted() resets the flag when it raises, so only
    # the first worker to look would see it; the batch must stop the others itself.
    flag = {"set": False}

    def comfy_style_check() -> None:
        if flag["set"]:
            flag["set"] = False
            raise OneShotInterrupt()

    backend = ScriptedBackend(delay=5.0)
    timer = threading.Timer(0.1, lambda: flag.__setitem__("set", True))
    timer.start()
    started = time.monotonic()
    with pytest.raises(OneShotInterrupt):
        retouch_batch(backend, _sources(6), BeautyParams(), concurrency=3, check_cancel=comfy_style_check)
    assert time.monotonic() - started < 1.0
    assert sorted(backend.calls) == [0, 1, 2]  # queued images never started


def test_cancel_hook_returning_true_raises_retouch_cancelled() -> None:
    backend = ScriptedBackend(delay=5.0)
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    with pytest.raises(RetouchCancelled):
        retouch_batch(backend, _sources(2), BeautyParams(), concurrency=2, check_cancel=stop.is_set)


def test_an_unexpected_error_is_not_swallowed_as_an_image_failure() -> None:
    backend = ScriptedBackend(fail={0: KeyError("bug")})
    with pytest.raises(KeyError):
        retouch_batch(backend, _sources(3), BeautyParams(), concurrency=1)


def test_rate_limits_lower_the_number_of_tasks_in_flight() -> None:
    backend = ScriptedBackend(delay=0.02, rate_limit_first=3)
    result = retouch_batch(backend, _sources(12), BeautyParams(), concurrency=8)
    assert min(result.limit_history) < 8
    assert all(o is not None for o in result.outcomes)


@pytest.mark.parametrize("bad", [0, 17, -1, True, 2.5])
def test_concurrency_out_of_range_is_refused_before_any_work(bad) -> None:
    backend = ScriptedBackend()
    with pytest.raises(InvalidParameterError, match="concurrency"):
        retouch_batch(backend, _sources(2), BeautyParams(), concurrency=bad)
    assert backend.calls == []


def test_empty_batch_is_an_empty_result() -> None:
    result = retouch_batch(ScriptedBackend(), [], BeautyParams())
    assert result.outcomes == [] and result.credits_spent == 0


def test_items_done_callback_and_failed_progress() -> None:
    done: list[tuple[int, bool]] = []
    stages: list[tuple[int, str]] = []
    backend = ScriptedBackend(fail={2: ApiError(http_status=500, code="PROCESSING_FAILURE", api_message="x")})
    retouch_batch(
        backend,
        _sources(3),
        BeautyParams(),
        options=RetouchOptions(),
        concurrency=1,
        on_item_done=lambda i, o: done.append((i, o is not None)),
        on_progress=lambda p: stages.append((p.index, p.stage)),
    )
    assert sorted(done) == [(0, True), (1, True), (2, False)]
    assert (2, "failed") in stages
