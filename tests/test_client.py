"""FaceBeautyClient against pinned HTTP answers (responses) and a FakeClock: exact requests, poll schedule,
deadline, failure mapping, cancel, and the key staying out of every text and every CDN request."""

from __future__ import annotations

import base64
import email
import email.policy
import itertools
import json
import logging
import random
from dataclasses import dataclass

import pytest
import requests
import responses
from requests import exceptions as rex
from responses import matchers

from beauty_api.api.client import ClientSettings, FaceBeautyClient, SubmitReceipt
from beauty_api.api.protocol import KEY_HEADER, TaskState
from beauty_api.api.retry_policy import RetrySettings
from beauty_api.config import ENV_API_KEY, ApiKey
from beauty_api.errors import (
    ApiError,
    ConfigurationError,
    DeadlineExceeded,
    InvalidParameterError,
    ProtocolError,
    ResultExpired,
    RetouchCancelled,
    SubmitOutcomeUnknown,
    TaskFailedError,
)
from beauty_api.params import BeautyParams

SECRET = "sk-TEST-SECRET-0123456789abcdef"
BASE = "https://api.test"
SUBMIT_URL = BASE + FaceBeautyClient.ENDPOINT
QUERY_URL = BASE + FaceBeautyClient.QUERY_ENDPOINT
CDN = "https://cdn.test/results/out.png"
SIGNED = CDN + "?Expires=9&Signature=SIGNED-SECRET"
PNG = b"\x89PNG\r\n\x1a\n" + b"fake-image-bytes" * 8


@dataclass(frozen=True)
class Upload:
    """Stand-in for codec.EncodedImage (the attributes the client reads)."""

    data: bytes = b"\xff\xd8\xff\xe0JPEGDATA" * 10
    mime_type: str = "image/jpeg"
    filename: str = "image.jpg"
    size: tuple[int, int] = (64, 64)
    source_size: tuple[int, int] = (64, 64)


class Stop(Exception):
    """A cancel hook's own exception (ComfyUI's interrupt): must propagate untouched."""


def make(clock, **settings) -> FaceBeautyClient:
    retry = settings.pop("retry", RetrySettings(jitter=0.0))
    return FaceBeautyClient(
        SECRET,
        BASE,
        settings=ClientSettings(retry=retry, **settings),
        session=requests.Session(),
        clock=clock,
        rng=random.Random(3),
    )


def ok(**extra) -> dict:
    return {
        "request_id": "req-1",
        "log_id": "log-1",
        "error_code": 0,
        "error_code_str": "",
        "error_msg": "",
        "error_detail": {"status_code": 200, "code": "", "code_message": "", "message": ""},
        **extra,
    }


def err(code: str, status: int, message: str = "") -> dict:
    return {
        "request_id": "req-e",
        "log_id": "log-e",
        "error_code": status,
        "error_code_str": code,
        "error_msg": message or code,
        "error_detail": {
            "status_code": status,
            "code": code,
            "code_message": code,
            "message": message or code,
        },
    }


def parse_multipart(request) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """Text fields and file parts of a recorded multipart request, parsed independently of requests."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + request.body, policy=email.policy.HTTP)
    fields, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if part.get_filename() is None:
            fields[name] = payload.decode()
        else:
            files[name] = (part.get_filename(), part.get_content_type(), payload)
    return fields, files


def state_body(status, url="") -> dict:
    return ok(task_status=status, result_url=url)


# -- construction ------------------------------------------------------------------------------


def test_missing_key_fails_before_any_request(rsps, monkeypatch, tmp_path):
    from beauty_api import config

    monkeypatch.setattr(config, "PACK_ROOT", tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with pytest.raises(ConfigurationError, match="AILAB_API_KEY"):
        FaceBeautyClient(base_url=BASE)
    assert not rsps.calls


def test_key_from_environment_and_repr(monkeypatch, clock):
    monkeypatch.setenv(ENV_API_KEY, SECRET)
    client = FaceBeautyClient(base_url=BASE + "/", clock=clock)
    assert repr(client) == "FaceBeautyClient(base_url='https://api.test')"
    assert SECRET not in repr(client.__dict__)
    assert client.transport._api_key == ApiKey(SECRET)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": float("nan")},
        {"connect_timeout": -1},
        {"read_timeout": float("inf")},
        {"poll_initial": 6.0, "poll_max": 5.0},
        {"poll_factor": 0.5},
        {"max_download_bytes": 0},
        {"max_download_bytes": 1.5},
        {"retry": {"max_attempts": 3}},
    ],
)
def test_settings_validation(kwargs):
    with pytest.raises(InvalidParameterError):
        ClientSettings(**kwargs)


def test_form_fields():
    client_fields = FaceBeautyClient.form_fields
    plain = client_fields(None, BeautyParams(), "async")  # type: ignore[arg-type]
    assert plain == {
        "task_type": "async",
        "whitening": "50",
        "smoothing": "50",
        "thinface": "50",
        "shrink_face": "50",
        "enlarge_eye": "50",
        "remove_eyebrow": "50",
    }
    chosen = client_fields(None, BeautyParams(filter_type="Sakura", whitening=0), "sync")  # type: ignore[arg-type]
    assert chosen["filter_type"] == "10" and chosen["task_type"] == "sync" and chosen["whitening"] == "0"
    with pytest.raises(InvalidParameterError):
        client_fields(None, BeautyParams(), "batch")  # type: ignore[arg-type]


# -- submit ------------------------------------------------------------------------------------


def test_submit_sends_exactly_the_documented_request(rsps, clock):
    rsps.add(responses.POST, SUBMIT_URL, json=ok(task_type="async", task_id="task-1"))
    receipt = make(clock).submit(
        Upload(),
        BeautyParams(
            whitening=10, smoothing=20, thinface=30, shrink_face=40, enlarge_eye=60, remove_eyebrow=70
        ),
    )
    assert receipt == SubmitReceipt("task-1", "req-1", "log-1")
    (recorded,) = rsps.calls
    request = recorded.request
    assert request.method == "POST" and request.url == SUBMIT_URL
    assert request.headers[KEY_HEADER] == SECRET
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    fields, files = parse_multipart(request)
    assert fields == {
        "task_type": "async",
        "whitening": "10",
        "smoothing": "20",
        "thinface": "30",
        "shrink_face": "40",
        "enlarge_eye": "60",
        "remove_eyebrow": "70",
    }
    assert "filter_type" not in fields
    assert files == {"image": ("image.jpg", "image/jpeg", Upload().data)}


def test_submit_with_filter_and_png(rsps, clock):
    rsps.add(responses.POST, SUBMIT_URL, json=ok(data={"task_id": "task-2"}))
    upload = Upload(data=PNG, mime_type="image/png", filename="image.png")
    assert make(clock).submit(upload, BeautyParams(filter_type=35)).task_id == "task-2"
    fields, files = parse_multipart(rsps.calls[0].request)
    assert fields["filter_type"] == "35"
    assert files["image"] == ("image.png", "image/png", PNG)


def test_submit_rebuilds_the_body_on_every_attempt(rsps, clock):
    rsps.add(responses.POST, SUBMIT_URL, status=429, json=err("EXCEEDING_LIMITS", 429))
    rsps.add(responses.POST, SUBMIT_URL, status=502, body="<html>bad gateway</html>")
    rsps.add(responses.POST, SUBMIT_URL, json=ok(task_id="task-3"))
    retries = []
    receipt = make(clock).submit(
        Upload(), BeautyParams(), on_retry=lambda r: retries.append((r.error, r.delay))
    )
    assert receipt.task_id == "task-3"
    assert len(rsps.calls) == 3
    bodies = [parse_multipart(c.request) for c in rsps.calls]
    assert all(body == bodies[0] for body in bodies) and bodies[0][1]["image"][2] == Upload().data
    assert [type(e) for e, _ in retries] == [ApiError, ApiError]
    assert retries[0][0].code == "EXCEEDING_LIMITS"


def test_submit_read_timeout_is_not_resent(rsps, clock):
    rsps.add(responses.POST, SUBMIT_URL, body=rex.ReadTimeout("read timed out"))
    rsps.add(responses.POST, SUBMIT_URL, json=ok(task_id="never"))
    with pytest.raises(SubmitOutcomeUnknown) as info:
        make(clock).submit(Upload(), BeautyParams())
    assert len(rsps.calls) == 1
    assert "paying twice" in str(info.value)


def test_submit_success_without_task_id_is_an_unknown_outcome(rsps, clock):
    rsps.add(responses.POST, SUBMIT_URL, json=ok())
    with pytest.raises(SubmitOutcomeUnknown, match="task_id"):
        make(clock).submit(Upload(), BeautyParams())
    assert len(rsps.calls) == 1


@pytest.mark.parametrize(
    "code, status, category",
    [
        ("ERROR_NOT_ENOUGH_CREDITS", 429, "credits"),
        ("ERROR_NO_FACE_IN_FILE", 422, "face"),
        ("ERROR_USER_NOT_EXISTS", 401, "auth"),
        ("ERROR_INVALID_PARAMETER", 400, "parameters"),
        ("FILE_SIZE_EXCEEDS_LIMIT", 413, "image"),
    ],
)
def test_submit_refusals_are_final(rsps, clock, code, status, category):
    rsps.add(responses.POST, SUBMIT_URL, status=status, json=err(code, status))
    with pytest.raises(ApiError) as info:
        make(clock).submit(Upload(), BeautyParams())
    assert info.value.category == category and len(rsps.calls) == 1
    assert not isinstance(info.value, TaskFailedError)


def test_submit_rejects_a_stream_upload(rsps, clock):
    with pytest.raises(InvalidParameterError):
        make(clock).submit(Upload(data=b""), BeautyParams())
    assert not rsps.calls


# -- sync --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "result",
    [base64.b64encode(PNG).decode(), "data:image/png;base64," + base64.b64encode(PNG).decode()],
)
def test_submit_sync(rsps, clock, result):
    rsps.add(responses.POST, SUBMIT_URL, json=ok(task_type="sync", result=result))
    assert make(clock).submit_sync(Upload(), BeautyParams(filter_type=1)) == PNG
    fields, _ = parse_multipart(rsps.calls[0].request)
    assert fields["task_type"] == "sync" and fields["filter_type"] == "1"


def test_sync_read_timeout_follows_the_users_timeout_not_the_60_s_default(rsps, clock):
    # A sync request answers only when processing is over: a 60 s read timeout would turn slow
    # processing into SubmitOutcomeUnknown (probably billed, not resumable).
    rsps.add(responses.POST, SUBMIT_URL, json=ok(task_type="sync", result=base64.b64encode(PNG).decode()))
    make(clock, timeout=900.0, read_timeout=60.0).submit_sync(Upload(), BeautyParams())
    assert rsps.calls[0].request.req_kwargs["timeout"] == (10.0, 900.0)
    rsps.add(responses.POST, SUBMIT_URL, json=ok(task_type="async", task_id="t-1"))
    make(clock, timeout=900.0, read_timeout=60.0).submit(Upload(), BeautyParams())
    assert rsps.calls[1].request.req_kwargs["timeout"] == (10.0, 60.0)  # async answers at once


def test_submit_sync_answering_a_url_downloads_without_the_key(rsps, clock):
    rsps.add(responses.POST, SUBMIT_URL, json=ok(task_type="sync", data={"image_url": SIGNED}))
    rsps.add(responses.GET, CDN, body=PNG)
    assert make(clock).submit_sync(Upload(), BeautyParams()) == PNG
    assert KEY_HEADER not in rsps.calls[1].request.headers


def test_submit_sync_without_result(rsps, clock):
    rsps.add(responses.POST, SUBMIT_URL, json=ok(task_type="sync"))
    with pytest.raises(ProtocolError, match="billed"):
        make(clock).submit_sync(Upload(), BeautyParams())


# -- query -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        (state_body(0), TaskState(0, None, {})),
        (ok(data={"task_status": "1"}), TaskState(1, None, {})),
        (ok(data={"taskStatus": 2, "images": [SIGNED]}), TaskState(2, SIGNED, {})),
        (ok(task_status=2, data={"result_url": SIGNED}), TaskState(2, SIGNED, {})),
        (state_body(2, SIGNED), TaskState(2, SIGNED, {})),
    ],
)
def test_query_sends_task_id_and_reads_every_shape(rsps, clock, body, expected):
    rsps.add(responses.GET, QUERY_URL, json=body, match=[matchers.query_param_matcher({"task_id": "t-1"})])
    assert make(clock).query("t-1") == expected
    assert rsps.calls[0].request.headers[KEY_HEADER] == SECRET


@pytest.mark.parametrize(
    "status, body",
    [
        (404, err("ERROR_RESOURCE_NOT_FOUND", 404)),
        (410, err("ERROR_RESOURCE_RECLAIMED", 410)),
        (404, "<html>Not Found</html>"),
    ],
)
def test_query_of_an_unknown_task_is_a_not_found_failure(rsps, clock, status, body):
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
    rsps.add(responses.GET, QUERY_URL, status=status, **kwargs)
    with pytest.raises(TaskFailedError) as info:
        make(clock).query("t-404")
    assert info.value.category == "not_found" and info.value.task_id == "t-404"
    assert len(rsps.calls) == 1


def test_query_answering_a_task_error_is_a_task_failure(rsps, clock):
    legacy = {"error_code": 413, "error_code_str": "FILE_SIZE_EXCEEDS_LIMIT", "error_msg": "too big"}
    rsps.add(responses.GET, QUERY_URL, status=413, json=legacy)
    with pytest.raises(TaskFailedError) as info:
        make(clock).query("t-5")
    assert (info.value.code, info.value.api_message, info.value.category) == (
        "FILE_SIZE_EXCEEDS_LIMIT",
        "too big",
        "image",
    )


@pytest.mark.parametrize("code, status", [("ERROR_USER_NOT_EXISTS", 401), ("ERROR_NOT_ENOUGH_CREDITS", 429)])
def test_query_account_errors_are_not_task_failures(rsps, clock, code, status):
    rsps.add(responses.GET, QUERY_URL, status=status, json=err(code, status))
    with pytest.raises(ApiError) as info:
        make(clock).query("t-6")
    assert not isinstance(info.value, TaskFailedError) and info.value.code == code


# -- wait --------------------------------------------------------------------------------------


def scripted_queries(rsps, clock, answers):
    """Answer the query endpoint from `answers` (the last one repeats); return the times it was asked."""
    times = []

    def callback(request):
        times.append(clock.monotonic())
        status, body = answers[min(len(times), len(answers)) - 1]
        return status, {}, json.dumps(body)

    rsps.add_callback(responses.GET, QUERY_URL, callback=callback)
    return times


PLAIN = {"poll_initial": 1.0, "poll_factor": 1.5}  # the plain schedule: 1 s, x1.5, up to 5 s


def test_plain_poll_schedule_grows_to_the_documented_interval(rsps, clock):
    answers = [(200, state_body(0))] * 2 + [(200, state_body(1))] * 5 + [(200, state_body(2, SIGNED))]
    times = scripted_queries(rsps, clock, answers)
    states = []
    url = make(clock, **PLAIN).wait("t-1", on_state=states.append)
    assert url == SIGNED
    gaps = [round(b - a, 6) for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps == [1.0, 1.5, 2.25, 3.375, 5.0, 5.0, 5.0, 5.0]
    assert [s.status for s in states] == [0, 0, 1, 1, 1, 1, 1, 2]
    assert all(q.request.url.endswith("task_id=t-1") for q in rsps.calls)


def test_stuck_task_ends_in_deadline_exceeded_within_the_timeout(rsps, clock):
    times = scripted_queries(rsps, clock, [(200, state_body(1))])
    client = make(clock, timeout=12.0, **PLAIN)
    with pytest.raises(DeadlineExceeded) as info:
        client.wait("t-stuck")
    assert times == [1.0, 2.5, 4.75, 8.125, 11.0]  # the last sleep clipped so a query still fits
    assert sum(clock.sleeps) <= 12.0 and clock.monotonic() <= 12.0
    error = info.value
    assert error.task_id == "t-stuck" and "t-stuck" in str(error)
    assert "may still finish" in str(error) and "re-running" in str(error) and "processing" in str(error)


def test_wait_uses_the_given_deadline(rsps, clock):
    times = scripted_queries(rsps, clock, [(200, state_body(0))])
    client = make(clock, **PLAIN)
    deadline = client.new_deadline(4.0)
    with pytest.raises(DeadlineExceeded):
        client.wait("t-x", deadline=deadline)
    assert times == [1.0, 2.5, 3.0]


def test_default_schedule_looks_early_and_often_while_nothing_is_known(rsps, clock):
    start = clock.monotonic()
    times = scripted_queries(rsps, clock, [(200, state_body(1))] * 6 + [(200, state_body(2, SIGNED))])
    assert make(clock).wait("t-1") == SIGNED
    offsets = [round(t - start, 6) for t in times]
    assert offsets[:4] == [0.5, 0.75, 1.0, 1.25]  # every quarter of the time elapsed, at least 0.25 s apart
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert all(gap <= 0.25 * at + 1e-9 or gap == 0.25 for gap, at in zip(gaps, offsets, strict=False))


@pytest.mark.parametrize(
    "answer",
    [
        (200, ok(task_status=3)),
        (200, ok(task_status="3", data={"error_detail": {"code": "PROCESSING_FAILURE", "message": "x"}})),
        (200, {**err("PROCESSING_FAILURE", 200), "error_code": 0, "task_status": 3}),
        (422, err("ERROR_NO_FACE_IN_FILE", 422)),
    ],
)
def test_wait_on_a_failed_task(rsps, clock, answer):
    scripted_queries(rsps, clock, [(200, state_body(1)), answer])
    with pytest.raises(TaskFailedError) as info:
        make(clock).wait("t-f")
    assert info.value.task_id == "t-f"
    assert len(rsps.calls) == 2


def test_wait_rides_over_transient_query_failures(rsps, clock):
    rsps.add(responses.GET, QUERY_URL, body=rex.ReadTimeout("slow"))
    rsps.add(responses.GET, QUERY_URL, status=500, json=err("UNKNOWN_ERROR", 500))
    rsps.add(responses.GET, QUERY_URL, status=502, body="<html><title>502</title></html>")
    rsps.add(responses.GET, QUERY_URL, json=state_body(2, SIGNED))
    assert make(clock).wait("t-1") == SIGNED
    assert len(rsps.calls) == 4


def test_unknown_status_stops_the_wait(rsps, clock):
    scripted_queries(rsps, clock, [(200, ok(task_status="FAILED"))])
    with pytest.raises(ProtocolError, match="FAILED"):
        make(clock).wait("t-1")


def test_cancel_mid_wait_makes_no_further_requests(rsps, clock):
    scripted_queries(rsps, clock, [(200, state_body(1))])
    states = []
    with pytest.raises(RetouchCancelled):
        make(clock).wait("t-c", on_state=states.append, check_cancel=lambda: len(states) >= 2)
    assert len(rsps.calls) == 2


def test_a_raising_cancel_hook_propagates_unchanged(rsps, clock):
    scripted_queries(rsps, clock, [(200, state_body(1))])
    states = []

    def hook():
        if len(states) >= 1:
            raise Stop("interrupted by the user")

    with pytest.raises(Stop, match="interrupted by the user"):
        make(clock).wait("t-c", on_state=states.append, check_cancel=hook)
    assert len(rsps.calls) == 1


# -- download and the whole path ---------------------------------------------------------------


def test_full_async_path_never_sends_the_key_to_the_cdn(rsps, clock, caplog):
    rsps.add(responses.POST, SUBMIT_URL, json=ok(task_id="t-full"))
    scripted_queries(rsps, clock, [(200, state_body(1)), (200, state_body(2, SIGNED))])
    rsps.add(responses.GET, CDN, body=PNG)
    client = make(clock)
    with caplog.at_level(logging.DEBUG, logger="beauty_api"):
        deadline = client.new_deadline()
        receipt = client.submit(Upload(), BeautyParams(), deadline=deadline)
        url = client.wait(receipt.task_id, deadline=deadline)
        assert client.download(url, deadline=deadline) == PNG
    hosts = [c.request.url.split("/")[2] for c in rsps.calls]
    assert hosts == ["api.test", "api.test", "api.test", "cdn.test"]
    for recorded in rsps.calls:
        carries = KEY_HEADER in recorded.request.headers
        assert carries == recorded.request.url.startswith(BASE)
    for record in caplog.records:
        assert SECRET not in record.getMessage() and "SIGNED-SECRET" not in record.getMessage()


def test_expired_result_url(rsps, clock):
    rsps.add(responses.GET, CDN, status=404)
    with pytest.raises(ResultExpired):
        make(clock).download(SIGNED)


def test_download_cap_comes_from_settings(rsps, clock):
    rsps.add(responses.GET, CDN, body=b"x" * 2048)
    from beauty_api.errors import ResultDownloadError

    with pytest.raises(ResultDownloadError, match="1024-byte limit"):
        make(clock, max_download_bytes=1024).download(SIGNED)


def _all_texts(error: BaseException) -> list[str]:
    texts = []
    while error is not None and len(texts) < 20:
        texts += [str(error), repr(error), repr(getattr(error, "raw", ""))]
        error = error.__cause__ or error.__context__
    return texts


@pytest.mark.parametrize(
    "register",
    [
        lambda r: r.add(responses.POST, SUBMIT_URL, status=401, json=err("ERROR_USER_NOT_EXISTS", 401)),
        lambda r: r.add(responses.POST, SUBMIT_URL, body=rex.ReadTimeout("t")),
        lambda r: r.add(responses.POST, SUBMIT_URL, status=503, json=err("AI_SERVICE_FLOW_RESTRICTION", 503)),
        lambda r: r.add(responses.POST, SUBMIT_URL, status=302, headers={"Location": "https://x.test/"}),
        lambda r: r.add(responses.POST, SUBMIT_URL, body=rex.ConnectTimeout("t")),
        lambda r: r.add(responses.POST, SUBMIT_URL, body="{broken"),
    ],
)
def test_the_key_is_in_no_error_and_no_log(rsps, clock, caplog, register):
    register(rsps)
    with caplog.at_level(logging.DEBUG, logger="beauty_api"), pytest.raises(Exception) as info:
        make(clock, retry=RetrySettings(max_attempts=2, jitter=0)).submit(Upload(), BeautyParams())
    for text in _all_texts(info.value):
        assert SECRET not in text
    for record in caplog.records:
        assert SECRET not in record.getMessage()


def test_the_client_closes_the_session_it_made_but_never_one_it_was_given(clock):
    with FaceBeautyClient(SECRET, BASE, clock=clock) as client:
        own = client.transport.session
        own.close = lambda: setattr(own, "was_closed", True)  # type: ignore[method-assign]
    assert getattr(own, "was_closed", False)
    given = requests.Session()
    given.close = lambda: setattr(given, "was_closed", True)  # type: ignore[method-assign]
    with FaceBeautyClient(SECRET, BASE, session=given, clock=clock):
        pass
    assert not getattr(given, "was_closed", False)
