"""The API emulator, driven with plain `requests` over loopback, as any client would see it."""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from beauty_api.api.client import ClientSettings, FaceBeautyClient
from beauty_api.clock import FakeClock
from beauty_api.codec import EncodedImage
from beauty_api.emulator import Emulator, EmulatorStats, FaultPlan
from beauty_api.emulator.__main__ import build_emulator, build_parser, is_loopback
from beauty_api.emulator.contract import CREDITS_PATH, QUERY_PATH, SLIDER_FIELDS, SUBMIT_PATH
from beauty_api.emulator.effect import apply_effect, encode_result
from beauty_api.params import FILTER_NAMES, SLIDER_NAMES, BeautyParams

KEY = "emulator-key"
PUBLIC_FIELDS = {"request_id", "log_id", "error_code", "error_code_str", "error_msg", "error_detail"}
DETAIL_FIELDS = {"status_code", "code", "code_message", "message"}
ZERO = dict.fromkeys(SLIDER_FIELDS, 0)


# -- helpers -----------------------------------------------------------------------------------


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(rgb: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, fmt)
    return buffer.getvalue()


def submit(
    emu: Emulator,
    image: bytes | None,
    fields: dict[str, Any] | None = None,
    *,
    task_type: str | None = "async",
    key: str | None = KEY,
    filename: str = "portrait.png",
    content_type: str = "image/png",
    timeout: float = 10,
) -> requests.Response:
    data = {name: str(value) for name, value in (fields or {}).items()}
    if task_type is not None:
        data["task_type"] = task_type
    files = {"image": (filename, image, content_type)} if image is not None else None
    if files is None:
        files = {"placeholder": ("", b"", "text/plain")}  # keep the body multipart
    headers = {"ailabapi-api-key": key} if key is not None else {}
    return requests.post(emu.base_url + SUBMIT_PATH, data=data, files=files, headers=headers, timeout=timeout)


def query(emu: Emulator, task_id: str, key: str | None = KEY, timeout: float = 10) -> requests.Response:
    headers = {"ailabapi-api-key": key} if key is not None else {}
    return requests.get(
        emu.base_url + QUERY_PATH, params={"task_id": task_id}, headers=headers, timeout=timeout
    )


def task_id_of(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task_type"] == "async"
    return body["task_id"]


def assert_success(body: dict[str, Any]) -> None:
    assert set(body) >= PUBLIC_FIELDS
    assert body["error_code"] == 0
    assert body["error_code_str"] == "" and body["error_msg"] == ""
    assert body["error_detail"] == {"status_code": 200, "code": "", "code_message": "", "message": ""}
    assert body["request_id"] and body["log_id"]


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) >= PUBLIC_FIELDS
    assert body["error_code"] == status
    assert body["error_code_str"] == code
    assert set(body["error_detail"]) == DETAIL_FIELDS
    assert body["error_detail"]["status_code"] == status
    assert body["error_detail"]["code"] == code
    assert body["error_detail"]["code_message"] and body["error_detail"]["message"]
    assert body["error_detail"]["code_message"] in body["error_msg"]
    assert body["request_id"] and body["log_id"]
    return body


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def run_task(emu: Emulator, image: bytes, fields: dict[str, Any] | None = None) -> bytes:
    """Submit, query once (zero timings) and download: the result file's bytes."""
    body = query(emu, task_id_of(submit(emu, image, fields))).json()
    assert body["task_status"] == 2
    download = requests.get(body["result_url"], timeout=10)
    assert download.status_code == 200
    return download.content


# -- the happy paths ---------------------------------------------------------------------------


def test_async_task_goes_queued_processing_done_then_downloads_from_the_cdn(
    make_emulator, fake_clock: FakeClock, sample_png_bytes: bytes, sample_rgb: np.ndarray
) -> None:
    emu = make_emulator(queued_seconds=5, processing_seconds=10, time_source=fake_clock.monotonic)
    response = submit(emu, sample_png_bytes, {"whitening": 70, "filter_type": 27})
    assert_success(response.json())
    task_id = task_id_of(response)

    seen = []
    for step in (0, 4.9, 0.1, 9.9, 0.1):
        fake_clock.advance(step)
        body = query(emu, task_id).json()
        assert_success(body)
        seen.append(body["task_status"])
    assert seen == [0, 0, 1, 1, 2]
    assert set(body) == PUBLIC_FIELDS | {"task_status", "result_url"}

    url = body["result_url"]
    assert url.startswith(emu.cdn_base_url + "/results/") and url.endswith(".png")
    assert emu.cdn_base_url != emu.base_url
    download = requests.get(url, timeout=10)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "image/png"
    assert decode(download.content).shape == sample_rgb.shape

    stats = emu.stats.snapshot()
    assert (stats.tasks_created, stats.tasks_completed, stats.credits_billed) == (1, 1, 15)
    assert (stats.queries, stats.downloads, stats.submits_received) == (5, 1, 1)


def test_queued_and_processing_answers_carry_an_empty_result_url(
    make_emulator, fake_clock: FakeClock, sample_png_bytes: bytes
) -> None:
    emu = make_emulator(processing_seconds=3, time_source=fake_clock.monotonic)
    body = query(emu, task_id_of(submit(emu, sample_png_bytes))).json()
    assert body["task_status"] == 1 and body["result_url"] == ""
    assert emu.stats.tasks_completed == 0 and emu.stats.credits_billed == 0


@pytest.mark.parametrize(("encoding", "prefix"), [("base64", ""), ("data_uri", "data:image/png;base64,")])
def test_sync_returns_the_image_as_base64(
    make_emulator, sample_png_bytes: bytes, sample_rgb: np.ndarray, encoding: str, prefix: str
) -> None:
    emu = make_emulator(sync_result_encoding=encoding)
    response = submit(emu, sample_png_bytes, task_type="sync")
    body = response.json()
    assert_success(body)
    assert body["task_type"] == "sync" and "task_id" not in body
    assert body["result"].startswith(prefix)
    image = decode(base64.b64decode(body["result"][len(prefix) :], validate=True))
    assert image.shape == sample_rgb.shape
    stats = emu.stats.snapshot()
    assert (stats.sync_completed, stats.tasks_created, stats.credits_billed, stats.paid_submits) == (
        1,
        0,
        15,
        1,
    )


def test_omitted_task_type_means_sync(emulator: Emulator, sample_png_bytes: bytes) -> None:
    body = submit(emulator, sample_png_bytes, task_type=None).json()
    assert body["task_type"] == "sync" and body["result"]


def test_credits_endpoint_reports_the_common_pool(make_emulator, sample_png_bytes: bytes) -> None:
    emu = make_emulator(credits=100)
    run_task(emu, sample_png_bytes)
    response = requests.get(emu.base_url + CREDITS_PATH, headers={"ailabapi-api-key": KEY}, timeout=10)
    body = response.json()
    assert_success(body)
    common = next(pool for pool in body["data"] if pool["unique_sign"] == "common")
    assert common["balance"] == 85
    assert emu.credits == 85 and emu.stats.credit_queries == 1


# -- validation --------------------------------------------------------------------------------


def _case_image(kind: str) -> tuple[bytes, str]:
    rgb = noise(64, 64)
    if kind in ("WEBP", "GIF", "BMP"):
        return encode(rgb, kind), f"image/{kind.lower()}"
    images = {
        "garbage": b"this is not an image at all" * 10,
        "truncated_png": png(rgb)[:200],
        "tiny": png(noise(48, 200)),
        "huge_side": png(noise(50, 4096)),
        "uniform": png(np.full((80, 80, 3), 128, np.uint8)),
        "over_2mb": png(rgb) + b"\0" * (2_000_001 - len(png(rgb))),
    }
    return images[kind], "image/png"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("WEBP", 415, "UNSUPPORTED_FILE_TYPES"),
        ("GIF", 415, "UNSUPPORTED_FILE_TYPES"),
        ("BMP", 415, "UNSUPPORTED_FILE_TYPES"),
        ("garbage", 422, "FILE_DECODING_FAILURE"),
        ("truncated_png", 422, "FILE_DECODING_FAILURE"),
        ("tiny", 422, "ERROR_LOW_RESOLUTION"),
        ("huge_side", 413, "FILE_RESOLUTION_EXCEEDS_LIMITS"),
        ("uniform", 422, "ERROR_NO_FACE_IN_FILE"),
        ("over_2mb", 413, "FILE_SIZE_EXCEEDS_LIMIT"),
    ],
)
def test_image_checks_answer_the_documented_codes(
    emulator: Emulator, kind: str, status: int, code: str
) -> None:
    image, content_type = _case_image(kind)
    assert_error(submit(emulator, image, content_type=content_type), status, code)
    assert emulator.stats.tasks_created == 0 and emulator.stats.credits_billed == 0


def test_image_limits_are_inclusive_where_the_docs_say_so(emulator: Emulator) -> None:
    exactly_2mb = png(noise(64, 64))
    exactly_2mb += b"\0" * (2_000_000 - len(exactly_2mb))  # trailing bytes after IEND are ignored
    for image in (png(noise(49, 49)), png(noise(49, 4095)), exactly_2mb):
        task_id_of(submit(emulator, image))
    assert emulator.stats.tasks_created == 3


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"whitening": 101}, "ERROR_INVALID_SKIN_WHITENING_PARAMETER"),
        ({"smoothing": -1}, "ERROR_INVALID_SMOOTHING_PARAMETER"),
        ({"thinface": "5.5"}, "ERROR_INVALID_FACE_SLIMMING_PARAMETER"),
        ({"enlarge_eye": "abc"}, "ERROR_INVALID_BIG_EYES_PARAMETER"),
        ({"shrink_face": 200}, "ERROR_INVALID_PARAMETER"),
        ({"remove_eyebrow": ""}, "ERROR_INVALID_PARAMETER"),
        ({"filter_type": 0}, "UNSUPPORTED_PARAMETER_VALUES"),
        ({"filter_type": 36}, "UNSUPPORTED_PARAMETER_VALUES"),
        ({"filter_type": "Warm"}, "UNSUPPORTED_PARAMETER_VALUES"),
    ],
)
def test_parameter_checks_answer_400_with_the_specific_code(
    emulator: Emulator, sample_png_bytes: bytes, fields: dict[str, Any], code: str
) -> None:
    assert_error(submit(emulator, sample_png_bytes, fields), 400, code)


def test_boundary_slider_values_and_filters_are_accepted(emulator: Emulator, sample_png_bytes: bytes) -> None:
    task_id_of(submit(emulator, sample_png_bytes, {**dict.fromkeys(SLIDER_FIELDS, 0), "filter_type": 1}))
    task_id_of(submit(emulator, sample_png_bytes, {**dict.fromkeys(SLIDER_FIELDS, 100), "filter_type": 35}))


def test_bad_task_type_and_missing_image(emulator: Emulator, sample_png_bytes: bytes) -> None:
    assert_error(submit(emulator, sample_png_bytes, task_type="ASYNC"), 400, "UNSUPPORTED_PARAMETER_VALUES")
    assert_error(submit(emulator, None), 400, "MISSING_PARAMETERS")
    no_multipart = requests.post(
        emulator.base_url + SUBMIT_PATH,
        data={"task_type": "async"},
        headers={"ailabapi-api-key": KEY},
        timeout=10,
    )
    assert_error(no_multipart, 400, "MISSING_PARAMETERS")


def test_not_enough_credits_is_429_with_its_own_code(make_emulator, sample_png_bytes: bytes) -> None:
    emu = make_emulator(credits=14)
    assert_error(submit(emu, sample_png_bytes), 429, "ERROR_NOT_ENOUGH_CREDITS")
    assert emu.stats.tasks_created == 0 and emu.credits == 14


def test_credits_are_reserved_for_tasks_in_flight(
    make_emulator, fake_clock: FakeClock, sample_png_bytes: bytes
) -> None:
    emu = make_emulator(credits=30, processing_seconds=5, time_source=fake_clock.monotonic)
    task_id_of(submit(emu, sample_png_bytes))
    task_id_of(submit(emu, sample_png_bytes))
    assert_error(submit(emu, sample_png_bytes), 429, "ERROR_NOT_ENOUGH_CREDITS")
    fake_clock.advance(5)
    assert emu.stats.credits_billed == 30 and emu.credits == 0


def test_only_completed_tasks_are_billed(make_emulator, sample_png_bytes: bytes) -> None:
    emu = make_emulator(credits=45)
    emu.faults.fail_tasks(1)
    failed = task_id_of(submit(emu, sample_png_bytes))
    assert query(emu, failed).json()["task_status"] == 3
    run_task(emu, sample_png_bytes)
    run_task(emu, sample_png_bytes)
    stats = emu.stats.snapshot()
    assert (stats.tasks_created, stats.tasks_completed, stats.tasks_failed) == (3, 2, 1)
    assert stats.credits_billed == 30 and emu.credits == 15


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "code"), [(None, "ERROR_APPLICATIONS_NOT_EXISTS"), ("wrong", "ERROR_USER_NOT_EXISTS")]
)
def test_every_api_endpoint_checks_the_key(
    emulator: Emulator, sample_png_bytes: bytes, key: str | None, code: str
) -> None:
    task_id = task_id_of(submit(emulator, sample_png_bytes))
    assert_error(submit(emulator, sample_png_bytes, key=key), 401, code)
    assert_error(query(emulator, task_id, key=key), 401, code)
    headers = {"ailabapi-api-key": key} if key else {}
    assert_error(requests.get(emulator.base_url + CREDITS_PATH, headers=headers, timeout=10), 401, code)
    assert emulator.stats.tasks_created == 1


def test_api_key_none_accepts_any_non_empty_key(make_emulator, sample_png_bytes: bytes) -> None:
    emu = make_emulator(api_key=None)
    task_id_of(submit(emu, sample_png_bytes, key="anything"))
    assert_error(submit(emu, sample_png_bytes, key=""), 401, "ERROR_APPLICATIONS_NOT_EXISTS")


def test_submit_log_records_the_request_shape_but_never_the_key(
    emulator: Emulator, sample_png_bytes: bytes
) -> None:
    submit(emulator, sample_png_bytes, {"whitening": 10}, filename="me.png")
    submit(emulator, sample_png_bytes, key="not-the-key")
    first, second = emulator.stats.snapshot().submit_log
    assert first["fields"] == {"whitening": "10", "task_type": "async"}
    assert first["part_names"] == ["whitening", "task_type", "image"]
    assert (first["image_filename"], first["image_content_type"]) == ("me.png", "image/png")
    assert first["image_size"] == len(sample_png_bytes)
    assert first["content_type"].startswith("multipart/form-data; boundary=")
    assert first["headers"]["ailabapi-api-key"] == "<matched>" and first["key_matched"] is True
    assert second["headers"]["ailabapi-api-key"] == "<not matched>" and second["key_matched"] is False
    assert "not-the-key" not in json.dumps(emulator.stats.snapshot().submit_log)


def test_the_cdn_needs_no_key_and_records_headers(emulator: Emulator, sample_png_bytes: bytes) -> None:
    run_task(emulator, sample_png_bytes)
    url = query(emulator, emulator.task_ids()[0]).json()["result_url"]
    requests.get(url, headers={"ailabapi-api-key": KEY}, timeout=10)  # a leaky client, for contrast
    clean, leaky = emulator.stats.snapshot().cdn_request_headers
    assert "ailabapi-api-key" not in clean
    assert leaky["ailabapi-api-key"] == "<matched>"


def test_query_without_task_id_or_for_unknown_task(emulator: Emulator) -> None:
    no_id = requests.get(emulator.base_url + QUERY_PATH, headers={"ailabapi-api-key": KEY}, timeout=10)
    assert_error(no_id, 400, "MISSING_PARAMETERS")
    assert_error(query(emulator, "no-such-task"), 404, "ERROR_RESOURCE_NOT_FOUND")


def test_unknown_path_or_method_is_ai_not_exists(emulator: Emulator) -> None:
    headers = {"ailabapi-api-key": KEY}
    assert_error(
        requests.get(emulator.base_url + "/api/nope", headers=headers, timeout=10), 404, "ERROR_AI_NOT_EXISTS"
    )
    assert_error(
        requests.get(emulator.base_url + SUBMIT_PATH, headers=headers, timeout=10), 404, "ERROR_AI_NOT_EXISTS"
    )


# -- faults ------------------------------------------------------------------------------------


def test_rate_limited_submits_carry_retry_after_and_create_nothing(
    emulator: Emulator, sample_png_bytes: bytes
) -> None:
    emulator.faults.rate_limit_submits(2, retry_after=0.05)
    for _ in range(2):
        response = submit(emulator, sample_png_bytes)
        assert_error(response, 429, "EXCEEDING_LIMITS")
        assert response.headers["Retry-After"] == "0.05"
    task_id_of(submit(emulator, sample_png_bytes))
    assert emulator.stats.tasks_created == 1 and emulator.stats.submits_received == 3
    assert emulator.faults.pending() == []


def test_flow_restriction_variant(emulator: Emulator, sample_png_bytes: bytes) -> None:
    emulator.faults.rate_limit_submits(1, retry_after=2, code="AI_SERVICE_FLOW_RESTRICTION", status=503)
    response = submit(emulator, sample_png_bytes)
    assert_error(response, 503, "AI_SERVICE_FLOW_RESTRICTION")
    assert response.headers["Retry-After"] == "2"


@pytest.mark.parametrize("status_location", ["top", "data"])
def test_failed_task_shape_status3(make_emulator, sample_png_bytes: bytes, status_location: str) -> None:
    emu = make_emulator(status_location=status_location)
    emu.faults.fail_tasks(1)
    response = query(emu, task_id_of(submit(emu, sample_png_bytes)))
    assert response.status_code == 200
    body = response.json()
    holder = body if status_location == "top" else body["data"]
    assert holder["task_status"] == 3
    assert body["error_code"] == 500 and body["error_detail"]["code"] == "PROCESSING_FAILURE"
    assert body["error_detail"]["status_code"] == 500 and body["result_url"] == ""


def test_failed_task_shape_status3_plain(make_emulator, sample_png_bytes: bytes) -> None:
    emu = make_emulator(failure_shape="status3_plain")
    emu.faults.fail_tasks(1)
    body = query(emu, task_id_of(submit(emu, sample_png_bytes))).json()
    assert_success(body)
    assert body["task_status"] == 3


def test_failed_task_shape_http_error(emulator: Emulator, sample_png_bytes: bytes) -> None:
    emulator.faults.fail_tasks(1, code="FILE_SIZE_EXCEEDS_LIMIT", shape="http_error")
    body = assert_error(
        query(emulator, task_id_of(submit(emulator, sample_png_bytes))), 413, "FILE_SIZE_EXCEEDS_LIMIT"
    )
    assert "task_status" not in body
    assert emulator.stats.tasks_failed == 1 and emulator.stats.credits_billed == 0


def test_failed_sync_submit_answers_the_error(emulator: Emulator, sample_png_bytes: bytes) -> None:
    emulator.faults.fail_tasks(1)
    assert_error(submit(emulator, sample_png_bytes, task_type="sync"), 500, "PROCESSING_FAILURE")
    assert emulator.stats.sync_failed == 1 and emulator.stats.credits_billed == 0


def test_dropped_submit_before_processing_creates_nothing(
    emulator: Emulator, sample_png_bytes: bytes
) -> None:
    emulator.faults.drop_connections("submit", 1)
    with pytest.raises(requests.ConnectionError):
        submit(emulator, sample_png_bytes)
    assert emulator.stats.tasks_created == 0 and emulator.stats.submits_received == 1
    task_id_of(submit(emulator, sample_png_bytes))


def test_dropped_submit_after_processing_leaves_a_paid_task(
    emulator: Emulator, sample_png_bytes: bytes
) -> None:
    emulator.faults.drop_connections("submit", 1, after_processing=True)
    with pytest.raises(requests.ConnectionError):
        submit(emulator, sample_png_bytes)
    assert emulator.stats.tasks_created == 1 and emulator.stats.credits_billed == 15
    assert len(emulator.task_ids()) == 1


@pytest.mark.parametrize(
    ("after", "error"), [(False, requests.ConnectionError), (True, requests.exceptions.ChunkedEncodingError)]
)
def test_dropped_query_and_download(
    emulator: Emulator, sample_png_bytes: bytes, after: bool, error: type[Exception]
) -> None:
    task_id = task_id_of(submit(emulator, sample_png_bytes))
    emulator.faults.drop_connections("query", 1, after_processing=after)
    with pytest.raises(error):
        query(emulator, task_id)
    url = query(emulator, task_id).json()["result_url"]
    emulator.faults.drop_connections("download", 1, after_processing=after)
    with pytest.raises(error):
        requests.get(url, timeout=10)
    assert requests.get(url, timeout=10).status_code == 200


def test_server_errors(emulator: Emulator, sample_png_bytes: bytes) -> None:
    emulator.faults.server_errors("submit", 1, status=503, code="ERROR_INSUFFICIENT_RESOURCES")
    assert_error(submit(emulator, sample_png_bytes), 503, "ERROR_INSUFFICIENT_RESOURCES")
    assert emulator.stats.tasks_created == 0
    task_id = task_id_of(submit(emulator, sample_png_bytes))
    emulator.faults.server_errors("query", 1)
    assert_error(query(emulator, task_id), 502, "AI_SERVICE_ERROR")
    url = query(emulator, task_id).json()["result_url"]
    emulator.faults.server_errors("download", 1, status=504)
    cdn_error = requests.get(url, timeout=10)
    assert cdn_error.status_code == 504 and cdn_error.headers["Content-Type"].startswith("text/plain")
    emulator.faults.server_errors("credits", 1)
    credits = requests.get(emulator.base_url + CREDITS_PATH, headers={"ailabapi-api-key": KEY}, timeout=10)
    assert_error(credits, 502, "AI_SERVICE_ERROR")


def test_slow_answers_time_out_the_client_but_the_submit_still_happened(
    emulator: Emulator, sample_png_bytes: bytes
) -> None:
    emulator.faults.slow("submit", 1, 0.4)
    with pytest.raises(requests.exceptions.ReadTimeout):
        submit(emulator, sample_png_bytes, timeout=0.15)
    # The client gave up; the emulator still creates the task (on a busy machine it may not have
    # finished processing yet when the client gives up, so wait for that event, not a fixed time).
    _wait_until(lambda: emulator.stats.tasks_created == 1)
    task_id = emulator.task_ids()[0]
    emulator.faults.slow("query", 1, 0.2)
    started = time.monotonic()
    assert query(emulator, task_id).json()["task_status"] == 2
    assert time.monotonic() - started >= 0.2


def test_malformed_answers(emulator: Emulator, sample_png_bytes: bytes) -> None:
    emulator.faults.malformed_json("submit", 1)
    response = submit(emulator, sample_png_bytes)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert emulator.stats.tasks_created == 1  # the answer was mangled after the task was made
    task_id = emulator.task_ids()[0]
    emulator.faults.malformed_json("query", 1)
    with pytest.raises(ValueError):
        query(emulator, task_id).json()
    url = query(emulator, task_id).json()["result_url"]
    emulator.faults.malformed_json("download", 1)
    truncated = requests.get(url, timeout=10)
    assert truncated.status_code == 200
    with pytest.raises(OSError):
        decode(truncated.content)


def test_fault_plan_is_validated_listed_and_cleared() -> None:
    plan = FaultPlan()
    with pytest.raises(ValueError):
        plan.drop_connections("upload", 1)
    with pytest.raises(ValueError):
        plan.slow("query", -1, 1.0)
    with pytest.raises(ValueError):
        plan.fail_tasks(1, shape="status4")
    plan.slow("query", 2, 0.1).server_errors("download", 1)
    assert [(f["kind"], f["remaining"]) for f in plan.pending()] == [("slow", 2), ("server_error", 1)]
    assert plan.take("slow", "query") is not None
    assert plan.pending()[0]["remaining"] == 1
    plan.clear()
    assert plan.pending() == [] and plan.take("slow", "query") is None


# -- expiry ------------------------------------------------------------------------------------


def test_results_and_tasks_expire_after_the_ttl(
    make_emulator, fake_clock: FakeClock, sample_png_bytes: bytes
) -> None:
    emu = make_emulator(result_ttl_seconds=100, processing_seconds=10, time_source=fake_clock.monotonic)
    task_id = task_id_of(submit(emu, sample_png_bytes))
    fake_clock.advance(10)
    url = query(emu, task_id).json()["result_url"]
    fake_clock.advance(99.9)
    assert requests.get(url, timeout=10).status_code == 200
    fake_clock.advance(0.1)
    gone = requests.get(url, timeout=10)
    assert gone.status_code == 404 and b"NoSuchKey" in gone.content
    assert_error(query(emu, task_id), 404, "ERROR_RESOURCE_NOT_FOUND")


def test_expire_all_results_leaves_the_task_saying_done(emulator: Emulator, sample_png_bytes: bytes) -> None:
    task_id = task_id_of(submit(emulator, sample_png_bytes))
    url = query(emulator, task_id).json()["result_url"]
    emulator.expire_all_results()
    assert requests.get(url, timeout=10).status_code == 404
    body = query(emulator, task_id).json()
    assert body["task_status"] == 2 and body["result_url"] == url
    emulator.forget_all_tasks()
    assert_error(query(emulator, task_id), 404, "ERROR_RESOURCE_NOT_FOUND")


# -- the stand-in effect -----------------------------------------------------------------------


def test_the_effect_is_deterministic_across_tasks_and_emulators(
    make_emulator, sample_png_bytes: bytes
) -> None:
    fields = {"whitening": 30, "enlarge_eye": 80, "filter_type": 12}
    first = run_task(make_emulator(), sample_png_bytes, fields)
    assert run_task(make_emulator(), sample_png_bytes, fields) == first
    assert run_task(make_emulator(), sample_png_bytes, {**fields, "whitening": 31}) != first


def test_each_slider_changes_the_pixels_and_zero_changes_nothing(sample_rgb: np.ndarray) -> None:
    assert np.array_equal(apply_effect(sample_rgb, ZERO), sample_rgb)
    for name in SLIDER_FIELDS:
        changed = apply_effect(sample_rgb, {**ZERO, name: 100})
        moved = np.abs(changed.astype(int) - sample_rgb).max(axis=2) > 8
        assert moved.mean() > 0.01, name  # at least 1% of the pixels visibly changed


def test_every_filter_is_distinct_and_filter_1_is_black_and_white(sample_rgb: np.ndarray) -> None:
    outputs = [apply_effect(sample_rgb, ZERO, number) for number in range(1, 36)]
    for (a, left), (b, right) in itertools.combinations(enumerate(outputs, start=1), 2):
        assert np.abs(left.astype(int) - right).mean() > 0.5, (a, b)
    bw = outputs[0]
    assert np.array_equal(bw[..., 0], bw[..., 1]) and np.array_equal(bw[..., 1], bw[..., 2])


@pytest.mark.parametrize(
    ("fmt", "magic", "mime"), [("JPEG", b"\xff\xd8\xff", "image/jpeg"), ("WEBP", b"RIFF", "image/webp")]
)
def test_result_format(make_emulator, sample_png_bytes: bytes, fmt: str, magic: bytes, mime: str) -> None:
    emu = make_emulator(result_format=fmt)
    url = query(emu, task_id_of(submit(emu, sample_png_bytes))).json()["result_url"]
    download = requests.get(url, timeout=10)
    assert download.content.startswith(magic) and download.headers["Content-Type"] == mime


def test_result_scale_returns_a_resized_result(make_emulator, sample_png_bytes: bytes) -> None:
    emu = make_emulator(result_scale=0.5)
    assert decode(run_task(emu, sample_png_bytes)).shape == (128, 128, 3)


def test_encode_result_reports_size_and_type(sample_rgb: np.ndarray) -> None:
    result = encode_result(sample_rgb, "jpeg", 2.0)
    assert (result.mime_type, result.extension, result.size) == ("image/jpeg", "jpg", (512, 512))


# -- unconfirmed response variants -------------------------------------------------------------


@pytest.mark.parametrize(
    "location", ["result_url", "data.result_url", "data.image_url", "data.image", "data.images"]
)
def test_result_location_variants(make_emulator, sample_png_bytes: bytes, location: str) -> None:
    emu = make_emulator(result_location=location)
    body = query(emu, task_id_of(submit(emu, sample_png_bytes))).json()
    if location == "result_url":
        url = body["result_url"]
    else:
        assert "result_url" not in body
        value = body["data"][location.split(".", 1)[1]]
        url = value[0] if location == "data.images" else value
    assert requests.get(url, timeout=10).status_code == 200


def test_status_location_data(make_emulator, fake_clock: FakeClock, sample_png_bytes: bytes) -> None:
    emu = make_emulator(status_location="data", processing_seconds=1, time_source=fake_clock.monotonic)
    task_id = task_id_of(submit(emu, sample_png_bytes))
    body = query(emu, task_id).json()
    assert "task_status" not in body and body["data"] == {"task_status": 1}
    fake_clock.advance(1)
    assert query(emu, task_id).json()["data"]["task_status"] == 2


def test_settings_changed_while_running_apply_to_new_tasks(
    make_emulator, fake_clock: FakeClock, sample_png_bytes: bytes
) -> None:
    emu = make_emulator(time_source=fake_clock.monotonic)
    first = task_id_of(submit(emu, sample_png_bytes))
    emu.processing_seconds = 30
    second = task_id_of(submit(emu, sample_png_bytes))
    assert [query(emu, t).json()["task_status"] for t in (first, second)] == [2, 1]
    emu.result_location = "data.image_url"
    assert "image_url" in query(emu, first).json()["data"]
    with pytest.raises(ValueError):
        emu.result_location = "data.nope"


# -- the server itself -------------------------------------------------------------------------


def test_concurrent_submits_each_get_a_task(emulator: Emulator, sample_png_bytes: bytes) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        task_id = task_id_of(submit(emulator, sample_png_bytes))
        with lock:
            ids.append(task_id)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 8 and emulator.stats.tasks_created == 8


def test_stop_closes_kept_alive_connections(sample_png_bytes: bytes) -> None:
    session = requests.Session()
    with Emulator() as emu:
        url = emu.base_url + CREDITS_PATH
        assert session.get(url, headers={"ailabapi-api-key": KEY}, timeout=10).status_code == 200
    assert not emu.running
    with pytest.raises(requests.ConnectionError):
        session.get(url, headers={"ailabapi-api-key": KEY}, timeout=2)
    with pytest.raises(RuntimeError):
        _ = emu.base_url


def test_stats_snapshot_is_a_copy(emulator: Emulator, sample_png_bytes: bytes) -> None:
    snapshot = emulator.stats.snapshot()
    submit(emulator, sample_png_bytes)
    assert isinstance(snapshot, EmulatorStats)
    assert snapshot.submits_received == 0 and snapshot.submit_log == []
    assert emulator.stats.submits_received == 1


def test_emulator_field_names_match_the_client_parameters() -> None:
    assert SLIDER_FIELDS == SLIDER_NAMES
    assert len(FILTER_NAMES) == 35


# -- the command line ------------------------------------------------------------------------


def test_cli_prints_its_url_and_serves_until_terminated() -> None:
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "beauty_api.emulator", "--port", "0", "--quiet", "--processing-seconds", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", first)
        assert match, first
        base_url = match.group(1)
        lines = [process.stdout.readline().strip() for _ in range(3)]
        assert f"export AILAB_API_BASE_URL={base_url}" in lines
        assert "export AILAB_API_KEY=emulator-key" in lines
        response = requests.get(base_url + CREDITS_PATH, headers={"ailabapi-api-key": KEY}, timeout=10)
        assert response.status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "stopped" in stderr


def test_non_loopback_hosts_are_recognised() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")


def test_command_line_arms_failing_tasks() -> None:
    """`--fail-tasks N`: a separate emulator process (the browser kit's) can fail images too."""
    plain = build_emulator(build_parser().parse_args(["--effect", "stand-in", "--quiet"]))
    assert plain.faults.pending() == []
    args = ["--effect", "stand-in", "--quiet", "--fail-tasks", "2", "--fail-code", "ERROR_NO_FACE_IN_FILE"]
    (fault,) = build_emulator(build_parser().parse_args(args)).faults.pending()
    assert (fault["kind"], fault["remaining"], fault["code"]) == ("fail_task", 2, "ERROR_NO_FACE_IN_FILE")


def test_task_timeline_tells_when_each_task_was_done_queried_and_fetched(
    make_emulator, fake_clock: FakeClock, sample_png_bytes: bytes
) -> None:
    emu = make_emulator(processing_seconds=2, time_source=fake_clock.monotonic)
    client = FaceBeautyClient(
        emu.api_key,
        emu.base_url,
        settings=ClientSettings(poll_initial=0.5, poll_factor=1.0),
        clock=fake_clock,
    )
    upload = EncodedImage(sample_png_bytes, "image/png", "image.png", (256, 256), (256, 256))
    receipt = client.submit(upload, BeautyParams())
    client.download(client.wait(receipt.task_id))

    timeline = requests.get(emu.base_url + "/_emulator/tasks", timeout=5).json()
    (task,) = timeline["tasks"]
    assert task["task_id"] == receipt.task_id and task["queries"] == 4  # at 0.5, 1.0, 1.5 and 2.0 s
    assert task["done_at"] - task["received_at"] == 2
    assert task["download_started_at"] == task["download_sent_at"] == timeline["now"] == task["done_at"]


def _wait_until(condition, timeout: float = 10.0) -> None:
    """Wait (in 5 ms steps) for something another thread does; fail after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "the emulator never got there"
        time.sleep(0.005)
