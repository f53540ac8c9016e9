"""protocol: every documented and UNCONFIRMED answer shape of shared/api/contract.md."""

from __future__ import annotations

import base64
import json

import pytest

from beauty_api.api.protocol import (
    TaskState,
    check_answer,
    check_query_answer,
    decode_sync_result,
    find_result_url,
    parse_task_id,
    parse_task_state,
    snippet,
)
from beauty_api.errors import ApiError, ProtocolError, TaskFailedError

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
URL = "https://cdn.example.com/results/abc.png?Expires=1&Signature=SIGNED-SECRET"

# The documented success example of the query endpoint (all public fields, legacy ones included).
DOC_SUCCESS = {
    "request_id": "req-1",
    "log_id": "log-1",
    "error_code": 0,
    "error_code_str": "",
    "error_msg": "",
    "error_detail": {"status_code": 200, "code": "", "code_message": "", "message": ""},
    "task_status": 0,
    "result_url": "",
}


def error_body(code: str, status: int, message: str = "msg", code_message: str = "code msg") -> dict:
    return {
        "request_id": "req-9",
        "log_id": "log-9",
        "error_code": status,
        "error_code_str": code,
        "error_msg": f"legacy {message}",
        "error_detail": {
            "status_code": status,
            "code": code,
            "code_message": code_message,
            "message": message,
        },
    }


# -- check_answer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        DOC_SUCCESS,
        {"task_id": "t"},  # no public fields at all
        {"error_code": "0", "error_detail": {"code": None}, "error_code_str": None, "task_id": "t"},
        {"error_detail": {"status_code": 200, "code": "", "message": ""}, "task_id": "t"},  # current doc
    ],
)
def test_success_shapes(body):
    assert check_answer(200, json.dumps(body).encode(), operation="submit") == body


def test_error_detail_answer_becomes_api_error_with_every_field():
    body = error_body("ERROR_NO_FACE_IN_FILE", 422, message="pic not has face")
    with pytest.raises(ApiError) as info:
        check_answer(422, json.dumps(body), operation="submit")
    error = info.value
    assert (error.http_status, error.code, error.api_message) == (
        422,
        "ERROR_NO_FACE_IN_FILE",
        "pic not has face",
    )
    assert (error.request_id, error.log_id, error.operation) == ("req-9", "log-9", "submit")
    assert error.category == "face" and not error.retryable
    assert "req-9" in str(error) and "submit" in str(error)
    assert error.raw == body


def test_message_falls_back_to_code_message_then_error_msg():
    body = error_body("EXCEEDING_LIMITS", 429, message="", code_message="Exceeds limit.")
    with pytest.raises(ApiError) as info:
        check_answer(429, json.dumps(body), operation="submit")
    assert info.value.api_message == "Exceeds limit."
    assert info.value.retryable
    legacy_only = {
        "error_code": 422,
        "error_code_str": "FILE_CONTENT_NON_COMPLIANCE",
        "error_msg": "222202 - pic",
    }
    with pytest.raises(ApiError) as info:
        check_answer(422, json.dumps(legacy_only), operation="submit")
    assert (info.value.code, info.value.api_message) == ("FILE_CONTENT_NON_COMPLIANCE", "222202 - pic")
    assert info.value.category == "content"


@pytest.mark.parametrize(
    "status, body",
    [
        (200, {"error_code": 429, "task_id": "t"}),  # error_code alone
        (200, {"error_detail": {"code": "EXCEEDING_LIMITS"}, "task_id": "t"}),  # code on a 200
        (200, {"error_code_str": "UNKNOWN_ERROR", "task_id": "t"}),  # legacy code alone
        (500, {"task_id": "t"}),  # clean fields but not HTTP 200
        (201, {"task_id": "t"}),
    ],
)
def test_success_needs_http_200_and_clean_fields(status, body):
    with pytest.raises(ApiError):
        check_answer(status, json.dumps(body), operation="query")


def test_credits_429_is_final_but_rate_limit_429_is_retryable():
    for code, retryable in (("ERROR_NOT_ENOUGH_CREDITS", False), ("EXCEEDING_LIMITS", True)):
        with pytest.raises(ApiError) as info:
            check_answer(429, json.dumps(error_body(code, 429)), operation="submit")
        assert info.value.retryable is retryable


def test_html_502_from_a_proxy_is_a_retryable_api_error():
    page = b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
    with pytest.raises(ApiError) as info:
        check_answer(502, page, operation="submit")
    error = info.value
    assert error.code == "" and error.http_status == 502 and error.retryable
    assert "502 Bad Gateway" in str(error)


@pytest.mark.parametrize("body", [b"not json at all", b"[1, 2]", b'"text"', b"", b"\xff\xfe{"])
def test_200_that_is_not_a_json_object_is_a_protocol_error(body):
    with pytest.raises(ProtocolError) as info:
        check_answer(200, body, operation="query of task t")
    assert "HTTP 200" in str(info.value)


def test_snippet_is_short_and_one_line():
    text = snippet("x\n" * 500)
    assert len(text) <= 120 and "\n" not in text
    assert snippet(b"") == "(empty body)"


# -- task id -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [({"task_id": "abc"}, "abc"), ({"data": {"task_id": "def"}}, "def"), ({"task_id": 123}, "123")],
)
def test_task_id_locations(body, expected):
    assert parse_task_id(body) == expected


@pytest.mark.parametrize("body", [{}, {"task_id": ""}, {"data": {}}, {"data": "x"}, {"task_id": None}])
def test_missing_task_id(body):
    with pytest.raises(ProtocolError, match="task_id"):
        parse_task_id({**body, "request_id": "req-5"})


# -- task state --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"task_status": 2, "result_url": URL},
        {"task_status": 2, "data": {"result_url": URL}},
        {"task_status": 2, "data": {"image_url": URL}},
        {"task_status": 2, "data": {"image": URL}},
        {"task_status": 2, "data": {"images": [URL, "https://other"]}},
        {"task_status": 2, "data": {"url": URL}},
        {"data": {"task_status": 2, "result_url": URL}},
        {"data": {"taskStatus": "2", "image_url": URL}},
        {"task_status": " 2 ", "result_url": URL},
        {"task_status": 2, "result_url": "", "data": {"image": "iVBORw0KGgo=", "images": [URL]}},
    ],
)
def test_done_state_in_every_location(body):
    state = parse_task_state({**DOC_SUCCESS, **body} if "task_status" in body else body, task_id="t1")
    assert state == TaskState(2, URL, {})
    assert state.done and state.result_url == URL


@pytest.mark.parametrize("raw, status", [(0, 0), (1, 1), ("0", 0), ("1", 1)])
def test_pending_states(raw, status):
    state = parse_task_state({"task_status": raw, "result_url": ""}, task_id="t1")
    assert state.status == status and state.result_url is None and not state.done
    assert state.label in ("queued", "processing")


def test_state_repr_hides_the_signed_query():
    state = parse_task_state({"task_status": 2, "result_url": URL}, task_id="t1")
    assert "SIGNED-SECRET" not in repr(state)
    assert "cdn.example.com/results/abc.png" in repr(state)


def test_status_3_with_error_fields():
    body = {**error_body("PROCESSING_FAILURE", 500), "error_code": 0, "task_status": 3}
    body["error_detail"] = {**body["error_detail"], "status_code": 200}
    with pytest.raises(TaskFailedError) as info:
        parse_task_state(body, task_id="t7")
    assert info.value.task_id == "t7" and info.value.code == "PROCESSING_FAILURE"
    assert "t7" in str(info.value)


def test_status_3_with_error_fields_under_data():
    body = {
        "task_status": 3,
        "data": {"error_detail": {"code": "ERROR_NO_FACE_IN_FILE", "message": "no face"}},
    }
    with pytest.raises(TaskFailedError) as info:
        parse_task_state(body, task_id="t7")
    assert info.value.code == "ERROR_NO_FACE_IN_FILE" and info.value.category == "face"


def test_status_3_without_any_error_fields():
    with pytest.raises(TaskFailedError) as info:
        parse_task_state({"data": {"task_status": "3"}}, task_id="t8")
    assert info.value.code == "" and "without a reason" in info.value.api_message


@pytest.mark.parametrize("raw", [7, "FAILED", "PROCESS_FAILED", 2.5, True, [2], "-1"])
def test_unknown_status_is_named(raw):
    with pytest.raises(ProtocolError) as info:
        parse_task_state({"task_status": raw}, task_id="t9")
    assert repr(raw) in str(info.value) and "t9" in str(info.value)


def test_missing_status():
    with pytest.raises(ProtocolError, match="task_status"):
        parse_task_state({"data": {}}, task_id="t9")


@pytest.mark.parametrize(
    "body",
    [
        {"task_status": 2, "result_url": ""},
        {"task_status": 2},
        {"task_status": 2, "result_url": "ftp://x/y.png"},
        {"task_status": 2, "data": {"image": "iVBORw0KGgo="}},
    ],
)
def test_done_without_url(body):
    with pytest.raises(ProtocolError, match="no result URL"):
        parse_task_state(body, task_id="t3")


def test_find_result_url_ignores_non_http_values():
    assert find_result_url({"result_url": "javascript:alert(1)", "data": {"images": [{"url": URL}]}}) is None


# -- sync result -------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "body",
    [
        {"result": b64(PNG)},
        {"result": "data:image/png;base64," + b64(PNG)},
        {"result": "DATA:image/jpeg;BASE64," + b64(PNG)},
        {"data": {"result": b64(PNG)}},
        {"result": "\n".join(b64(PNG)[i : i + 16] for i in range(0, len(b64(PNG)), 16)) + "\n"},
        {"result": b64(PNG).rstrip("=")},
        {"result": base64.urlsafe_b64encode(PNG + b"\xfb\xff").decode().rstrip("=")},
    ],
)
def test_sync_result_variants(body):
    data = decode_sync_result({**DOC_SUCCESS, "task_type": "sync", **body})
    assert data.startswith(PNG)


@pytest.mark.parametrize(
    "body",
    [{}, {"result": ""}, {"result": "   "}, {"result": "data:image/png;base64,"}, {"result": None}],
)
def test_sync_result_missing(body):
    with pytest.raises(ProtocolError, match="no result image"):
        decode_sync_result(body)


@pytest.mark.parametrize("text", ["not*base64!", "data:image/png,rawbytes"])
def test_sync_result_unreadable(text):
    with pytest.raises(ProtocolError):
        decode_sync_result({"result": text})


# -- the task query's own reading --------------------------------------------------------------


def test_query_answer_reporting_a_failed_task_is_a_task_failure_whatever_the_fields():
    status3 = {**error_body("PROCESSING_FAILURE", 500), "task_status": 3}  # emulator "status3" shape
    with pytest.raises(TaskFailedError) as info:
        check_query_answer(200, json.dumps(status3), task_id="t1", operation="query")
    assert info.value.code == "PROCESSING_FAILURE" and info.value.task_id == "t1"
    with pytest.raises(TaskFailedError) as info:
        check_query_answer(
            500, json.dumps(error_body("PROCESSING_FAILURE", 500)), task_id="t2", operation="q"
        )
    assert info.value.http_status == 500


def test_query_answer_otherwise_reads_like_any_answer():
    assert check_query_answer(200, json.dumps({"task_status": 1}), task_id="t", operation="q") == {
        "task_status": 1
    }
    with pytest.raises(ApiError) as info:
        check_query_answer(500, json.dumps(error_body("UNKNOWN_ERROR", 500)), task_id="t", operation="q")
    assert not isinstance(info.value, TaskFailedError) and info.value.retryable
    with pytest.raises(ProtocolError):
        check_query_answer(200, b"{", task_id="t", operation="q")
