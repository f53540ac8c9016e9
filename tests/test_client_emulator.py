"""FaceBeautyClient against the loopback emulator: real HTTP, real sockets, injected faults.

The real clock is used with tiny poll and backoff settings, so each test takes milliseconds;
the emulator's counters say exactly how many tasks were created (paid) for each scenario.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from beauty_api.api.client import ClientSettings, FaceBeautyClient
from beauty_api.api.protocol import KEY_HEADER
from beauty_api.api.retry_policy import RetrySettings
from beauty_api.clock import FakeClock
from beauty_api.errors import (
    ApiError,
    ResultExpired,
    SubmitOutcomeUnknown,
    TaskFailedError,
)
from beauty_api.params import BeautyParams

KEY = "emulator-key"
FAST = ClientSettings(
    timeout=10.0,
    connect_timeout=2.0,
    read_timeout=5.0,
    poll_initial=0.01,
    poll_max=0.02,
    retry=RetrySettings(max_attempts=5, base_delay=0.01, max_delay=0.02, jitter=0.5),
)


@dataclass(frozen=True)
class Upload:
    """Stand-in for codec.EncodedImage."""

    data: bytes
    mime_type: str = "image/png"
    filename: str = "image.png"
    size: tuple[int, int] = (0, 0)
    source_size: tuple[int, int] = (0, 0)


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def client_for(emu, key: str = KEY, settings: ClientSettings = FAST) -> FaceBeautyClient:
    return FaceBeautyClient(key, emu.base_url, settings=settings)


@pytest.fixture
def upload(sample_png_bytes) -> Upload:
    return Upload(sample_png_bytes)


def retouch(client: FaceBeautyClient, upload: Upload, params: BeautyParams | None = None, **kwargs) -> bytes:
    deadline = client.new_deadline()
    receipt = client.submit(upload, params or BeautyParams(), deadline=deadline, **kwargs)
    url = client.wait(receipt.task_id, deadline=deadline)
    return client.download(url, deadline=deadline)


def assert_image(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert image.size[0] > 0 and image.size[1] > 0


# -- happy paths -------------------------------------------------------------------------------


def test_full_async_path(emulator, upload, caplog):
    client = client_for(emulator)
    states = []
    with caplog.at_level(logging.DEBUG, logger="beauty_api"):
        deadline = client.new_deadline()
        receipt = client.submit(upload, BeautyParams(whitening=80, filter_type="Sakura"), deadline=deadline)
        url = client.wait(receipt.task_id, deadline=deadline, on_state=states.append)
        data = client.download(url, deadline=deadline)
    assert_image(data)
    assert receipt.task_id and receipt.request_id and receipt.log_id
    assert states[-1].status == 2
    stats = emulator.stats.snapshot()
    assert (stats.submits_received, stats.tasks_created, stats.downloads) == (1, 1, 1)
    (entry,) = stats.submit_log
    assert entry["key_matched"] is True
    assert entry["fields"] == client.form_fields(BeautyParams(whitening=80, filter_type="Sakura"), "async")
    assert entry["fields"]["filter_type"] == "10"
    assert (entry["image_filename"], entry["image_content_type"]) == ("image.png", "image/png")
    assert entry["image_size"] == len(upload.data)
    assert all(KEY_HEADER not in headers for headers in stats.cdn_request_headers)
    assert all(KEY not in record.getMessage() for record in caplog.records)


def test_loopback_bypasses_environment_proxies(emulator, upload, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there: a proxy would fail
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert_image(retouch(client_for(emulator), upload))


@pytest.mark.parametrize(
    "result_location", ["result_url", "data.result_url", "data.image_url", "data.image", "data.images"]
)
@pytest.mark.parametrize("status_location", ["top", "data"])
def test_every_result_shape(make_emulator, upload, result_location, status_location):
    emu = make_emulator(result_location=result_location, status_location=status_location)
    assert_image(retouch(client_for(emu), upload))


def test_queued_then_processing_then_done(make_emulator, upload):
    # The emulator's time moves only when the client has seen a state, so each poll sees exactly
    # the next state whatever the scheduling or the poll schedule; the client sleeps on its own
    # FakeClock, so nothing waits real seconds.
    emulator_time = FakeClock()
    emu = make_emulator(queued_seconds=5, processing_seconds=5, time_source=emulator_time.monotonic)
    client = FaceBeautyClient(KEY, emu.base_url, settings=FAST, clock=FakeClock())
    states = []

    def seen(state) -> None:
        states.append(state.status)
        emulator_time.advance(5)

    receipt = client.submit(upload, BeautyParams())
    client.wait(receipt.task_id, on_state=seen)
    assert states == [0, 1, 2]


@pytest.mark.parametrize("encoding", ["base64", "data_uri"])
def test_sync_path(make_emulator, upload, encoding):
    emu = make_emulator(sync_result_encoding=encoding)
    data = client_for(emu).submit_sync(upload, BeautyParams(filter_type=3))
    assert_image(data)
    stats = emu.stats.snapshot()
    assert stats.sync_completed == 1 and stats.tasks_created == 0
    assert stats.submit_log[0]["fields"]["task_type"] == "sync"


# -- refusals ----------------------------------------------------------------------------------


def test_no_face(emulator):
    flat = Upload(png(np.full((128, 128, 3), 120, np.uint8)))
    with pytest.raises(ApiError) as info:
        client_for(emulator).submit(flat, BeautyParams())
    assert info.value.code == "ERROR_NO_FACE_IN_FILE" and info.value.category == "face"
    assert emulator.stats.snapshot().submits_received == 1


def test_image_too_large_in_bytes_and_in_pixels(emulator):
    noise = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    big = Upload(png(noise))
    assert len(big.data) > 2_000_000
    with pytest.raises(ApiError) as info:
        client_for(emulator).submit(big, BeautyParams())
    assert info.value.code == "FILE_SIZE_EXCEEDS_LIMIT" and info.value.category == "image"
    wide = Upload(png(np.tile(np.arange(256, dtype=np.uint8), (60, 17))[:, :4100, None].repeat(3, 2)))
    with pytest.raises(ApiError) as info:
        client_for(emulator).submit(wide, BeautyParams())
    assert info.value.category == "image" and info.value.http_status == 413
    assert emulator.stats.snapshot().submits_received == 2  # neither retried


def test_bad_key(emulator, upload):
    with pytest.raises(ApiError) as info:
        client_for(emulator, key="wrong-key").submit(upload, BeautyParams())
    assert info.value.category == "auth" and "wrong-key" not in str(info.value)
    stats = emulator.stats.snapshot()
    assert stats.submits_received == 1 and stats.tasks_created == 0


def test_not_enough_credits_is_not_retried(make_emulator, upload):
    emu = make_emulator(credits=0)
    with pytest.raises(ApiError) as info:
        client_for(emu).submit(upload, BeautyParams())
    assert info.value.code == "ERROR_NOT_ENOUGH_CREDITS" and info.value.http_status == 429
    assert emu.stats.snapshot().submits_received == 1


# -- recovered faults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"retry_after": 0.02},
        {"code": "AI_SERVICE_FLOW_RESTRICTION", "status": 503},
    ],
)
def test_rate_limit_storm_is_ridden_out_with_one_paid_task(emulator, upload, kwargs):
    emulator.faults.rate_limit_submits(3, **kwargs)
    retries = []
    data = retouch(client_for(emulator), upload, on_retry=lambda r: retries.append((r.error, r.delay)))
    assert_image(data)
    stats = emulator.stats.snapshot()
    assert stats.submits_received == 4 and stats.tasks_created == 1
    assert len(retries) == 3 and all(
        isinstance(e, ApiError) and e.category == "rate_limit" for e, _ in retries
    )
    if "retry_after" in kwargs:
        assert all(d == pytest.approx(0.02) for _, d in retries)


def test_server_errors_on_submit_are_retried(emulator, upload):
    emulator.faults.server_errors("submit", 2, status=502, code="AI_SERVICE_ERROR")
    assert_image(retouch(client_for(emulator), upload))
    stats = emulator.stats.snapshot()
    assert stats.submits_received == 3 and stats.tasks_created == 1


@pytest.mark.parametrize("after_processing", [False, True])
@pytest.mark.parametrize("endpoint", ["query", "download"])
def test_dropped_connections_on_query_and_download_are_recovered(
    emulator, upload, endpoint, after_processing
):
    emulator.faults.drop_connections(endpoint, 2, after_processing=after_processing)
    assert_image(retouch(client_for(emulator), upload))
    assert emulator.stats.snapshot().tasks_created == 1
    assert not emulator.faults.pending()


@pytest.mark.parametrize("endpoint", ["query", "download"])
def test_server_errors_and_malformed_answers_on_query_and_download(emulator, upload, endpoint):
    emulator.faults.server_errors(endpoint, 1, status=503, code="ERROR_RESOURCE_UNAVAILABLE")
    if endpoint == "query":
        emulator.faults.malformed_json("query", 1)
    assert_image(retouch(client_for(emulator), upload))
    assert emulator.stats.snapshot().tasks_created == 1
    assert not emulator.faults.pending()


# -- ambiguous submits -------------------------------------------------------------------------


@pytest.mark.parametrize("after_processing", [False, True])
def test_dropped_submit_is_an_unknown_outcome_not_a_second_task(emulator, upload, after_processing):
    emulator.faults.drop_connections("submit", 1, after_processing=after_processing)
    with pytest.raises(SubmitOutcomeUnknown) as info:
        client_for(emulator).submit(upload, BeautyParams())
    text = str(info.value)
    assert "billed" in text and "NOT sent again" in text and "Re-run" in text
    stats = emulator.stats.snapshot()
    assert stats.submits_received == 1
    assert stats.tasks_created == (1 if after_processing else 0)


def test_malformed_submit_answer_is_an_unknown_outcome(emulator, upload):
    emulator.faults.malformed_json("submit", 1)
    with pytest.raises(SubmitOutcomeUnknown):
        client_for(emulator).submit(upload, BeautyParams())
    stats = emulator.stats.snapshot()
    assert stats.submits_received == 1 and stats.tasks_created == 1


def test_submit_read_timeout_is_an_unknown_outcome(emulator, upload):
    emulator.faults.slow("submit", 1, seconds=0.5)
    settings = ClientSettings(timeout=10.0, read_timeout=0.15, poll_initial=0.01, poll_max=0.02)
    with pytest.raises(SubmitOutcomeUnknown, match="read timeout"):
        client_for(emulator, settings=settings).submit(upload, BeautyParams())
    assert emulator.stats.snapshot().submits_received == 1


# -- task failures and expiry ------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, code, expected",
    [
        ("status3", "PROCESSING_FAILURE", "PROCESSING_FAILURE"),
        ("status3_plain", "PROCESSING_FAILURE", ""),
        ("http_error", "PROCESSING_FAILURE", "PROCESSING_FAILURE"),
        ("http_error", "ERROR_NO_FACE_IN_FILE", "ERROR_NO_FACE_IN_FILE"),
        ("status3", "FILE_SIZE_EXCEEDS_LIMIT", "FILE_SIZE_EXCEEDS_LIMIT"),
    ],
)
def test_task_failure_in_every_shape(emulator, upload, shape, code, expected):
    emulator.faults.fail_tasks(1, code=code, shape=shape)
    client = client_for(emulator)
    receipt = client.submit(upload, BeautyParams())
    with pytest.raises(TaskFailedError) as info:
        client.wait(receipt.task_id)
    assert info.value.task_id == receipt.task_id and info.value.code == expected
    stats = emulator.stats.snapshot()
    assert stats.queries == 1  # a failed task is not asked again
    assert stats.credits_billed == 0


def test_forgotten_task_is_not_found(emulator, upload):
    client = client_for(emulator)
    receipt = client.submit(upload, BeautyParams())
    emulator.forget_all_tasks()
    with pytest.raises(TaskFailedError) as info:
        client.wait(receipt.task_id)
    assert info.value.category == "not_found"


def test_expired_result_url(emulator, upload):
    client = client_for(emulator)
    url = client.wait(client.submit(upload, BeautyParams()).task_id)
    emulator.expire_all_results()
    with pytest.raises(ResultExpired):
        client.download(url)
    assert emulator.stats.snapshot().downloads == 1


@pytest.mark.parametrize("step", ["query", "download"])
def test_cancel_abandons_a_waiting_request_at_once(make_emulator, upload, step):
    # The emulator holds the answer for 3 s; Cancel comes 0.2 s into the wait. requests cannot be
    # interrupted, so the call must walk away from it (the answer is closed when it arrives).
    import threading
    import time

    from beauty_api.errors import RetouchCancelled

    emu = make_emulator()
    client = client_for(emu, settings=ClientSettings(timeout=30.0, read_timeout=20.0, retry=FAST.retry))
    retouch(client, upload)
    task_id = emu.task_ids()[0]
    result_url = _result_url(client, task_id)
    emu.faults.slow(step, 1, seconds=3.0)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(RetouchCancelled):
        if step == "query":
            client.query(task_id, check_cancel=cancel.is_set)
        else:
            client.download(result_url, check_cancel=cancel.is_set)
    assert time.monotonic() - started < 2.0  # the answer would have taken 3 s


def _result_url(client: FaceBeautyClient, task_id: str) -> str:
    state = client.query(task_id)
    assert state.result_url
    return state.result_url
