"""transport: the key header, redirects, timeouts, every retry rule both ways, Retry-After, cancel, downloads.

All waiting goes through a FakeClock: `clock.sleeps` lists the slept slices, nothing really sleeps.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import random

import pytest
import requests
import responses
import urllib3.exceptions as u3
from requests import exceptions as rex

from beauty_api.api.network_failures import describe_url, proxies_for
from beauty_api.api.protocol import KEY_HEADER
from beauty_api.api.result_download import download_result
from beauty_api.api.retry_policy import RetrySettings, parse_retry_after
from beauty_api.api.transport import Transport
from beauty_api.config import ApiKey
from beauty_api.errors import (
    ApiError,
    ConfigurationError,
    DeadlineExceeded,
    InvalidParameterError,
    ProtocolError,
    ResultDownloadError,
    ResultExpired,
    RetouchCancelled,
    SubmitOutcomeUnknown,
    TransportError,
)

SECRET = "sk-TEST-SECRET-0123456789abcdef"
BASE = "https://api.test"
PATH = "/api/thing"
URL = BASE + PATH
CDN_URL = "https://cdn.test/results/r.png?Expires=9&Signature=SIGNED-SECRET"
WALL = 1_800_000_000.0


class Stop(Exception):
    """A cancel hook's own exception (as ComfyUI raises on Cancel): must propagate untouched."""


def make(clock, session=None, **retry) -> Transport:
    settings = RetrySettings(
        **{"max_attempts": 5, "base_delay": 1.0, "max_delay": 30.0, "jitter": 0.0, **retry}
    )
    return Transport(
        BASE,
        ApiKey(SECRET),
        session=session or requests.Session(),
        retry=settings,
        clock=clock,
        rng=random.Random(7),
        wall_time=lambda: WALL,
    )


def ok(**extra) -> dict:
    return {"error_code": 0, "error_detail": {"code": ""}, **extra}


def err(code: str, status: int) -> dict:
    return {
        "error_code": status,
        "error_code_str": code,
        "error_detail": {"status_code": status, "code": code, "code_message": code, "message": code},
        "request_id": "req",
    }


def call(transport, deadline_s=300.0, safe=True, **kwargs):
    from beauty_api.clock import Deadline

    kwargs.setdefault("deadline", Deadline(transport.clock, deadline_s))
    return transport.api_call(
        "POST", PATH, operation="submit" if not safe else "query", safe_to_retry=safe, **kwargs
    )


def delays(retries: list) -> list[float]:
    return [round(d, 6) for _, d in retries]


def refused() -> rex.ConnectionError:
    reason = u3.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    reason.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return rex.ConnectionError(u3.MaxRetryError(None, URL, reason))


def dropped() -> rex.ConnectionError:
    cause = http.client.RemoteDisconnected("Remote end closed connection without response")
    return rex.ConnectionError(u3.ProtocolError("Connection aborted.", cause))


def reset() -> rex.ConnectionError:
    return rex.ConnectionError(u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")))


def assert_no_secret(error: BaseException) -> None:
    seen = 0
    while error is not None and seen < 10:
        assert SECRET not in str(error) and SECRET not in repr(error)
        error = error.__cause__ or error.__context__
        seen += 1


# -- the request itself ------------------------------------------------------------------------


def test_key_header_timeouts_and_no_redirects(rsps, clock):
    rsps.add(responses.POST, URL, json=ok(task_id="t"))
    assert call(make(clock), data={"a": "1"})["task_id"] == "t"
    request = rsps.calls[0].request
    assert request.headers[KEY_HEADER] == SECRET
    assert request.req_kwargs["timeout"] == (10.0, 60.0)


def test_read_timeout_is_clipped_by_the_deadline(rsps, clock):
    rsps.add(responses.POST, URL, json=ok())
    call(make(clock), deadline_s=20.0)
    assert rsps.calls[0].request.req_kwargs["timeout"] == (10.0, 20.0)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_from_the_api_is_an_error_and_not_followed(rsps, clock, status):
    rsps.add(responses.POST, URL, status=status, headers={"Location": "https://evil.test/steal?x=1"})
    rsps.add(responses.POST, "https://evil.test/steal", json=ok())
    with pytest.raises(ConfigurationError) as info:
        call(make(clock), safe=False)
    assert len(rsps.calls) == 1
    assert "evil.test/steal" in str(info.value) and "x=1" not in str(info.value)
    assert "AILAB_API_BASE_URL" in str(info.value)


def test_session_default_headers_untouched(rsps, clock):
    session = requests.Session()
    rsps.add(responses.POST, URL, json=ok())
    call(make(clock, session))
    assert KEY_HEADER not in session.headers


# -- retry rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, body",
    [
        (429, err("EXCEEDING_LIMITS", 429)),
        (503, err("AI_SERVICE_FLOW_RESTRICTION", 503)),
        (500, err("UNKNOWN_ERROR", 500)),
        (502, "<html><title>502 Bad Gateway</title></html>"),
        (503, "Service Unavailable"),
        (504, err("AI_SERVICE_TIMEOUT", 504)),
    ],
)
@pytest.mark.parametrize("safe", [True, False])
def test_definite_transient_answers_are_retried_even_for_submit(rsps, clock, status, body, safe):
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
    rsps.add(responses.POST, URL, status=status, **kwargs)
    rsps.add(responses.POST, URL, json=ok(task_id="t"))
    retries = []
    result = call(make(clock), safe=safe, on_retry=lambda r: retries.append((r.error, r.delay)))
    assert result["task_id"] == "t"
    assert len(rsps.calls) == 2
    assert len(retries) == 1 and isinstance(retries[0][0], ApiError)
    assert sum(clock.sleeps) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "code, status",
    [
        ("ERROR_NOT_ENOUGH_CREDITS", 429),
        ("ERROR_NO_FACE_IN_FILE", 422),
        ("ERROR_USER_NOT_EXISTS", 401),
        ("ERROR_INVALID_PARAMETER", 400),
        ("FILE_SIZE_EXCEEDS_LIMIT", 413),
        ("FILE_CONTENT_NON_COMPLIANCE", 422),
    ],
)
@pytest.mark.parametrize("safe", [True, False])
def test_final_answers_are_never_retried(rsps, clock, code, status, safe):
    rsps.add(responses.POST, URL, status=status, json=err(code, status))
    retries = []
    with pytest.raises(ApiError) as info:
        call(make(clock), safe=safe, on_retry=lambda r: retries.append(r.delay))
    assert info.value.code == code and info.value.http_status == status
    assert len(rsps.calls) == 1 and not retries and not clock.sleeps


def test_codeless_504_on_submit_is_an_unknown_outcome_but_retried_on_query(rsps, clock):
    rsps.add(responses.POST, URL, status=504, body="<html><title>504 Gateway Time-out</title></html>")
    with pytest.raises(SubmitOutcomeUnknown):
        call(make(clock), safe=False)
    assert len(rsps.calls) == 1
    rsps.add(responses.POST, URL, json=ok(task_status=1))
    assert call(make(clock), safe=True)["task_status"] == 1


def test_malformed_json_is_retried_on_query_but_unknown_outcome_on_submit(rsps, clock):
    rsps.add(responses.POST, URL, body="{not json", status=200)
    rsps.add(responses.POST, URL, json=ok(task_status=2))
    assert call(make(clock), safe=True)["task_status"] == 2
    assert len(rsps.calls) == 2
    rsps.replace(responses.POST, URL, body="{not json", status=200)
    with pytest.raises(SubmitOutcomeUnknown) as info:
        call(make(clock), safe=False)
    assert isinstance(info.value.__cause__, ProtocolError)
    assert len(rsps.calls) == 3


@pytest.mark.parametrize(
    "failure", [refused, lambda: rex.ConnectTimeout("connect timed out"), lambda: rex.ProxyError("p")]
)
def test_errors_before_sending_are_retried_even_for_submit(rsps, clock, failure):
    rsps.add(responses.POST, URL, body=failure())
    rsps.add(responses.POST, URL, json=ok(task_id="t"))
    assert call(make(clock), safe=False)["task_id"] == "t"
    assert len(rsps.calls) == 2


@pytest.mark.parametrize(
    "failure",
    [
        lambda: rex.ReadTimeout("read timed out"),
        dropped,
        reset,
        lambda: rex.ChunkedEncodingError("broken"),
        lambda: rex.SSLError("EOF occurred in violation of protocol"),
    ],
)
def test_errors_after_sending_a_submit_raise_unknown_outcome_at_once(rsps, clock, failure):
    rsps.add(responses.POST, URL, body=failure())
    rsps.add(responses.POST, URL, json=ok(task_id="t"))
    retries = []
    with pytest.raises(SubmitOutcomeUnknown) as info:
        call(make(clock), safe=False, on_retry=lambda r: retries.append(r.delay))
    assert len(rsps.calls) == 1 and not retries and not clock.sleeps
    text = str(info.value)
    assert "api.test" in text and "billed" in text and "NOT sent again" in text
    assert "paying twice" in text and "Re-run" in text and "task history" in text
    assert_no_secret(info.value)


@pytest.mark.parametrize("failure", [lambda: rex.ReadTimeout("slow"), dropped, reset, refused])
def test_network_errors_on_queries_are_retried(rsps, clock, failure):
    rsps.add(responses.POST, URL, body=failure())
    rsps.add(responses.POST, URL, json=ok(task_status=1))
    assert call(make(clock), safe=True)["task_status"] == 1
    assert len(rsps.calls) == 2


def test_exhausted_connection_failures_name_the_host_not_the_key(rsps, clock):
    rsps.add(responses.POST, URL, body=refused())
    with pytest.raises(TransportError) as info:
        call(make(clock, max_attempts=3), safe=True)
    assert len(rsps.calls) == 3
    text = str(info.value)
    assert "api.test" in text and "AILAB_API_BASE_URL" in text and "proxy" in text
    assert "connection refused" in text and "attempt 3 of 3" in text
    assert not isinstance(info.value, SubmitOutcomeUnknown)
    assert_no_secret(info.value)


def test_certificate_errors_are_not_retried(rsps, clock):
    import ssl

    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    rsps.add(responses.POST, URL, body=rex.SSLError(u3.MaxRetryError(None, URL, u3.SSLError(cert))))
    with pytest.raises(TransportError, match="REQUESTS_CA_BUNDLE"):
        call(make(clock), safe=False)
    assert len(rsps.calls) == 1


def test_max_attempts_then_last_error(rsps, clock):
    rsps.add(responses.POST, URL, status=500, json=err("UNKNOWN_ERROR", 500))
    retries = []
    with pytest.raises(ApiError, match="UNKNOWN_ERROR"):
        call(make(clock, max_attempts=4), on_retry=lambda r: retries.append((r.error, r.delay)))
    assert len(rsps.calls) == 4
    assert delays(retries) == [1.0, 2.0, 4.0]
    assert sum(clock.sleeps) == pytest.approx(7.0)


def test_each_retry_event_names_the_operation_and_the_attempt(rsps, clock):
    rsps.add(responses.POST, URL, status=500, json=err("UNKNOWN_ERROR", 500))
    events = []
    with pytest.raises(ApiError):
        call(make(clock, max_attempts=3), on_retry=events.append)
    assert [(e.operation, e.attempt, e.max_attempts) for e in events] == [("query", 1, 3), ("query", 2, 3)]
    assert all(isinstance(e.error, ApiError) and e.delay > 0 for e in events)


def test_backoff_is_capped_by_max_delay(rsps, clock):
    rsps.add(responses.POST, URL, status=503, json=err("AI_SERVICE_FLOW_RESTRICTION", 503))
    retries = []
    with pytest.raises(ApiError):
        call(make(clock, base_delay=10, max_delay=15), on_retry=lambda r: retries.append((r.error, r.delay)))
    assert delays(retries) == [10.0, 15.0, 15.0, 15.0]


def test_jittered_backoff_bounds_and_reproducible_with_a_seed(rsps, clock):
    rsps.add(responses.POST, URL, status=429, json=err("EXCEEDING_LIMITS", 429))
    retries = []
    with pytest.raises(ApiError):
        call(make(clock, max_attempts=6, jitter=0.25), on_retry=lambda r: retries.append((r.error, r.delay)))
    got = [d for _, d in retries]
    for n, delay in enumerate(got, start=1):
        full = min(30.0, 2.0 ** (n - 1))
        assert 0.75 * full <= delay <= full
    rng = random.Random(7)
    assert got == [min(30.0, 2.0 ** (n - 1)) * (1 - 0.25 * rng.random()) for n in range(1, 6)]
    assert len(set(got)) == 5


def test_retry_after_seconds_is_honoured(rsps, clock):
    rsps.add(responses.POST, URL, status=429, json=err("EXCEEDING_LIMITS", 429), headers={"Retry-After": "7"})
    rsps.add(responses.POST, URL, json=ok())
    retries = []
    call(make(clock), on_retry=lambda r: retries.append((r.error, r.delay)))
    assert delays(retries) == [7.0] and sum(clock.sleeps) == pytest.approx(7.0)


def test_retry_after_http_date_is_honoured(rsps, clock):
    when = email.utils.formatdate(WALL + 12, usegmt=True)
    rsps.add(
        responses.POST,
        URL,
        status=503,
        json=err("AI_SERVICE_FLOW_RESTRICTION", 503),
        headers={"Retry-After": when},
    )
    rsps.add(responses.POST, URL, json=ok())
    retries = []
    call(make(clock), safe=False, on_retry=lambda r: retries.append((r.error, r.delay)))
    assert delays(retries) == [12.0]


def test_retry_after_beyond_the_deadline_gives_up_at_once(rsps, clock):
    rsps.add(
        responses.POST, URL, status=429, json=err("EXCEEDING_LIMITS", 429), headers={"Retry-After": "120"}
    )
    with pytest.raises(ApiError, match="EXCEEDING_LIMITS"):
        call(make(clock), deadline_s=100)
    assert len(rsps.calls) == 1 and not clock.sleeps


def test_a_huge_retry_after_is_capped_at_150_s(rsps, clock):
    # A server asking for an hour must not hold a submit (and its journal claim) that long.
    rsps.add(
        responses.POST, URL, status=429, json=err("EXCEEDING_LIMITS", 429), headers={"Retry-After": "3600"}
    )
    rsps.add(responses.POST, URL, json=ok())
    retries = []
    call(make(clock), deadline_s=600, on_retry=lambda r: retries.append((r.error, r.delay)))
    assert delays(retries) == [150.0] and sum(clock.sleeps) == pytest.approx(150.0)
    assert len(rsps.calls) == 2


def test_backoff_is_clipped_so_one_more_attempt_fits_the_deadline(rsps, clock):
    rsps.add(responses.POST, URL, status=500, json=err("UNKNOWN_ERROR", 500))
    retries = []
    with pytest.raises(ApiError):
        call(
            make(clock, base_delay=10, max_delay=10),
            deadline_s=4.0,
            on_retry=lambda r: retries.append((r.error, r.delay)),
        )
    assert delays(retries) == [3.0]  # 4 s left minus the 1 s an attempt needs
    assert len(rsps.calls) == 2
    assert sum(clock.sleeps) <= 4.0


def test_no_time_left_means_no_request(rsps, clock):
    from beauty_api.clock import Deadline

    deadline = Deadline(clock, 10)
    clock.advance(9.5)
    with pytest.raises(DeadlineExceeded):
        make(clock).api_call("GET", PATH, operation="query", deadline=deadline, safe_to_retry=True)
    assert not rsps.calls


def test_a_submit_needs_more_time_than_a_query(rsps, clock):
    rsps.add(responses.POST, URL, json=ok())
    with pytest.raises(DeadlineExceeded):
        call(make(clock), deadline_s=3.0, safe=False)
    assert not rsps.calls
    call(make(clock), deadline_s=3.0, safe=True)
    assert len(rsps.calls) == 1


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_before_the_request(rsps, clock):
    rsps.add(responses.POST, URL, json=ok())
    with pytest.raises(RetouchCancelled):
        call(make(clock), check_cancel=lambda: True)
    assert not rsps.calls


def test_cancel_during_backoff_stops_further_requests(rsps, clock):
    rsps.add(responses.POST, URL, status=500, json=err("UNKNOWN_ERROR", 500))
    state = {"cancel": False}
    with pytest.raises(RetouchCancelled):
        call(
            make(clock, base_delay=4),
            check_cancel=lambda: state["cancel"],
            on_retry=lambda r: state.update(cancel=True),
        )
    assert len(rsps.calls) == 1


def test_a_raising_cancel_hook_propagates_untouched(rsps, clock):
    rsps.add(responses.POST, URL, status=500, json=err("UNKNOWN_ERROR", 500))
    calls = []

    def hook():
        calls.append(1)
        if len(calls) > 3:
            raise Stop("interrupted")

    with pytest.raises(Stop):
        call(make(clock, base_delay=4), check_cancel=hook)
    assert len(rsps.calls) == 1


# -- logging -----------------------------------------------------------------------------------


def test_logs_are_debug_only_and_free_of_secrets(rsps, clock, caplog):
    rsps.add(responses.POST, URL, status=429, json=err("EXCEEDING_LIMITS", 429))
    rsps.add(responses.POST, URL, json=ok())
    rsps.add(responses.GET, CDN_URL.split("?")[0], body=b"PNGDATA")
    transport = make(clock)
    from beauty_api.clock import Deadline

    with caplog.at_level(logging.DEBUG, logger="beauty_api"):
        call(transport)
        download_result(transport, CDN_URL, deadline=Deadline(clock, 60), max_bytes=1000)
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage()
        assert record.levelno == logging.DEBUG
        assert SECRET not in text and "SIGNED-SECRET" not in text and "Signature" not in text
    assert any("api.test/api/thing" in r.getMessage() and "429" in r.getMessage() for r in caplog.records)


# -- downloads ---------------------------------------------------------------------------------


def download(transport, url=CDN_URL, max_bytes=10_000, deadline_s=60.0, **kwargs):
    from beauty_api.clock import Deadline

    return download_result(
        transport, url, deadline=Deadline(transport.clock, deadline_s), max_bytes=max_bytes, **kwargs
    )


def test_download_never_carries_the_key_even_through_redirects(rsps, clock):
    session = requests.Session()
    session.headers[KEY_HEADER] = SECRET  # even a careless caller-supplied session cannot leak it
    rsps.add(
        responses.GET,
        "https://cdn.test/results/r.png",
        status=302,
        headers={"Location": "https://edge.test/r.png"},
    )
    rsps.add(responses.GET, "https://edge.test/r.png", body=b"PNGDATA")
    assert download(make(clock, session)) == b"PNGDATA"
    assert [c.request.url.split("?")[0] for c in rsps.calls] == [
        "https://cdn.test/results/r.png",
        "https://edge.test/r.png",
    ]
    for recorded in rsps.calls:
        assert KEY_HEADER not in recorded.request.headers
        assert SECRET not in json.dumps(dict(recorded.request.headers))
    assert rsps.calls[0].request.req_kwargs["stream"] is True


@pytest.mark.parametrize("status", [403, 404, 410])
def test_expired_result_is_not_retried(rsps, clock, status):
    rsps.add(responses.GET, "https://cdn.test/results/r.png", status=status)
    with pytest.raises(ResultExpired) as info:
        download(make(clock))
    assert len(rsps.calls) == 1
    assert "24 hours" in str(info.value) and "SIGNED-SECRET" not in str(info.value)


def test_other_client_errors_are_not_retried(rsps, clock):
    rsps.add(responses.GET, "https://cdn.test/results/r.png", status=400)
    with pytest.raises(ResultDownloadError) as info:
        download(make(clock))
    assert not isinstance(info.value, ResultExpired) and len(rsps.calls) == 1


@pytest.mark.parametrize(
    "first",
    [
        {"status": 500},
        {"status": 503, "headers": {"Retry-After": "2"}},
        {"body": rex.ReadTimeout("slow")},
        {"body": reset()},
        {"body": b""},
    ],
)
def test_transient_download_failures_are_retried(rsps, clock, first):
    rsps.add(responses.GET, "https://cdn.test/results/r.png", **first)
    rsps.add(responses.GET, "https://cdn.test/results/r.png", body=b"PNGDATA")
    assert download(make(clock)) == b"PNGDATA"
    assert len(rsps.calls) == 2


def test_download_failure_after_retries_hides_the_signed_query(rsps, clock):
    rsps.add(responses.GET, "https://cdn.test/results/r.png", body=rex.ConnectionError(f"boom {CDN_URL}"))
    with pytest.raises(ResultDownloadError) as info:
        download(make(clock, max_attempts=2))
    assert len(rsps.calls) == 2
    assert "SIGNED-SECRET" not in str(info.value) and "cdn.test/results/r.png" in str(info.value)
    assert info.value.__cause__ is None


def test_download_size_cap_declared_and_streamed(rsps, clock):
    big = b"x" * 5000
    rsps.add(responses.GET, "https://cdn.test/results/r.png", body=big, auto_calculate_content_length=True)
    with pytest.raises(ResultDownloadError, match="limit"):
        download(make(clock), max_bytes=1000)
    rsps.replace(responses.GET, "https://cdn.test/results/r.png", body=big)  # no Content-Length
    with pytest.raises(ResultDownloadError, match="limit"):
        download(make(clock), max_bytes=1000)
    assert len(rsps.calls) == 2  # not retried


def test_cancel_between_chunks(rsps, clock):
    rsps.add(responses.GET, "https://cdn.test/results/r.png", body=b"x" * (64 * 1024 * 4))
    seen = []

    def hook():
        seen.append(1)
        return len(seen) > 2

    with pytest.raises(RetouchCancelled):
        download(make(clock), max_bytes=10**7, check_cancel=hook)

    def raising():
        seen.append(1)
        if len(seen) > 6:
            raise Stop()

    with pytest.raises(Stop):
        download(make(clock), max_bytes=10**7, check_cancel=raising)
    assert len(rsps.calls) == 2


def test_download_refuses_non_http_urls(rsps, clock):
    with pytest.raises(ResultDownloadError):
        download(make(clock), url="file:///etc/passwd")
    assert not rsps.calls


# -- helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("5", 5.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (email.utils.formatdate(WALL + 30, usegmt=True), 30.0),
        (email.utils.formatdate(WALL - 30, usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value, expected):
    result = parse_retry_after(value, now=WALL)
    assert result == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    "url, bypass",
    [
        ("http://127.0.0.1:8080/x", True),
        ("http://[::1]:80/", True),
        ("http://localhost/", True),
        ("https://www.ailabapi.com/api", False),
        ("https://cdn.test/r.png", False),
    ],
)
def test_only_loopback_bypasses_proxies(url, bypass):
    assert (proxies_for(url) is not None) is bypass


def test_describe_url_drops_query_and_credentials():
    assert describe_url("https://u:p@cdn.test:8443/a/b.png?sig=x#f") == "cdn.test:8443/a/b.png"


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1}, {"max_delay": 0.5}, {"jitter": 1.5}, {"max_attempts": 2.0}],
)
def test_retry_settings_validation(kwargs):
    with pytest.raises(InvalidParameterError):
        RetrySettings(**kwargs)


def test_transport_repr_and_key_type(clock):
    transport = make(clock)
    assert SECRET not in repr(transport) and "api.test" in repr(transport)
    with pytest.raises(TypeError):
        Transport(BASE, SECRET, clock=clock)  # type: ignore[arg-type]


def test_a_retry_says_what_failed_although_the_network_error_is_not_kept(rsps, clock):
    """The requests exception is dropped (it holds the key), so the reason travels as words."""
    from beauty_api.run.progress_events import retry_reason

    rsps.add(responses.POST, URL, body=refused())
    rsps.add(responses.POST, URL, json=ok())
    events = []
    call(make(clock), on_retry=events.append)
    (event,) = events
    assert event.error.__cause__ is None and event.error.__context__ is None
    assert retry_reason(event.error) == "connection refused"
