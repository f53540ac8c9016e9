"""Reading the API's answers: pure functions over (status, body), no HTTP.

The vendor documents some shapes and leaves others UNCONFIRMED (shared/api/contract.md), so
every reader here accepts each plausible variant: the result URL at the top level or under
`data`, the task status as an int or digits, the error in `error_detail` or in the legacy
`error_code_str`/`error_msg` fields, the sync result as bare base64 or a `data:` URI.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import ApiError, ProtocolError, TaskFailedError

# The request header that carries the API key (sent only to the API host, never to result hosts).
KEY_HEADER = "ailabapi-api-key"
STATUS_QUEUED = 0
STATUS_PROCESSING = 1
STATUS_DONE = 2
STATUS_FAILED = 3  # undocumented; every official SDK treats it as failure
KNOWN_STATUSES = {
    STATUS_QUEUED: "queued",
    STATUS_PROCESSING: "processing",
    STATUS_DONE: "done",
    STATUS_FAILED: "failed",
}
SNIPPET_CHARS = 120
# Codes that, on the task query, describe the task's own processing (not the query request).
TASK_FAILURE_CODES = frozenset({"PROCESSING_FAILURE"})

# Where a result URL may be, in the order the contract recommends looking.
_URL_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("result_url",),
    ("data", "result_url"),
    ("data", "image_url"),
    ("data", "image"),
    ("data", "images", 0),
    ("data", "url"),
)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def snippet(body: bytes | str, limit: int = SNIPPET_CHARS) -> str:
    """A short one-line excerpt of a body for error messages (an HTML page is reduced to its title)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    title = _TITLE.search(text)
    if title and title.group(1).strip():
        text = "HTML page: " + title.group(1)
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_object(body: bytes | str) -> dict[str, Any] | None:
    """The JSON object in `body`, or None when it is not JSON or not an object."""
    try:
        value = json.loads(body)
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def _dig(payload: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(payload, list) or len(payload) <= step:
                return None
        elif not isinstance(payload, dict):
            return None
        payload = payload[step] if isinstance(step, int) else payload.get(step)
    return payload


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _is_zero(value: Any) -> bool:
    """`error_code` means success when 0, "0", None or absent."""
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value == 0
    return _text(value) == "0"


def _detail(payload: dict[str, Any]) -> dict[str, Any]:
    detail = payload.get("error_detail")
    return detail if isinstance(detail, dict) else {}


def error_fields(payload: dict[str, Any]) -> dict[str, str]:
    """code / api_message / request_id / log_id of an answer, from the current or legacy fields."""
    detail = _detail(payload)
    code = _text(detail.get("code")) or _text(payload.get("error_code_str"))
    message = (
        _text(detail.get("message")) or _text(detail.get("code_message")) or _text(payload.get("error_msg"))
    )
    return {
        "code": code,
        "api_message": message,
        "request_id": _text(payload.get("request_id")),
        "log_id": _text(payload.get("log_id")),
    }


def is_success(payload: dict[str, Any]) -> bool:
    """The public fields say success: no error_code, no error_detail.code, no legacy error_code_str."""
    return (
        _is_zero(payload.get("error_code"))
        and not _text(_detail(payload).get("code"))
        and not _text(payload.get("error_code_str"))
    )


def check_answer(http_status: int, body: bytes | str, *, operation: str) -> dict[str, Any]:
    """The JSON object of a successful answer; otherwise raise what the answer means.

    Success needs HTTP 200 and clean public fields. An error answer raises ApiError, classified
    by its code. A non-200 that is not JSON (a proxy's HTML 502 page) raises ApiError with
    code "" so the HTTP status decides (5xx stays retryable). A 200 that is not a JSON object
    raises ProtocolError (the transport decides whether that is worth a retry).
    """
    payload = _parse_object(body)
    if payload is None:
        if http_status == 200:
            raise ProtocolError(
                f"Face Beauty Pro {operation}: the API answered HTTP 200 with something that is not a JSON "
                f"object: {snippet(body)!r}."
            )
        raise ApiError(
            http_status=http_status,
            code="",
            api_message=f"the answer is not JSON: {snippet(body)!r}",
            operation=operation,
        )
    if http_status == 200 and is_success(payload):
        return payload
    raise ApiError(http_status=http_status, operation=operation, raw=payload, **error_fields(payload))


def _says_failed(payload: dict[str, Any]) -> bool:
    raw = _raw_status(payload)
    return (isinstance(raw, int) and not isinstance(raw, bool) and raw == STATUS_FAILED) or (
        isinstance(raw, str) and raw.strip() == str(STATUS_FAILED)
    )


def check_query_answer(
    http_status: int, body: bytes | str, *, task_id: str, operation: str
) -> dict[str, Any]:
    """Like check_answer, for the task query: an answer that reports the TASK failed raises TaskFailedError.

    That is task_status 3 (with or without error fields, whatever the HTTP status) or a
    task-processing code such as PROCESSING_FAILURE (the query itself answering the task's
    error is the shape third parties observed). Re-asking would not change these answers, so
    the transport does not retry them even when the code alone would be "retryable".
    """
    payload = _parse_object(body)
    if payload is not None:
        code = error_fields(payload)["code"]
        if _says_failed(payload) or code in TASK_FAILURE_CODES:
            raise TaskFailedError(
                task_id=task_id, http_status=http_status, raw=payload, **_failure_fields(payload)
            )
    return check_answer(http_status, body, operation=operation)


def parse_task_id(body: dict[str, Any]) -> str:
    """The task id of an async submit answer: `task_id`, or `data.task_id` (as the SDK reads it)."""
    for path in (("task_id",), ("data", "task_id")):
        value = _dig(body, path)
        if isinstance(value, str | int) and not isinstance(value, bool) and _text(value):
            return _text(value)
    ids = error_fields(body)
    raise ProtocolError(
        "The API accepted the submit but its answer has no task_id, so the task cannot be followed "
        f"(request_id {ids['request_id'] or 'none'}; quote it to AILabTools support)."
    )


def find_result_url(body: dict[str, Any]) -> str | None:
    """The first http(s) URL among the known result fields, or None."""
    for path in _URL_PATHS:
        value = _dig(body, path)
        if isinstance(value, str) and _is_http_url(value.strip()):
            return value.strip()
    return None


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def strip_query(url: str) -> str:
    """scheme://host/path of a URL: signed result URLs carry their secret in the query string."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(frozen=True)
class TaskState:
    """One answer of the task query: the status (0 queued, 1 processing, 2 done) and the result URL."""

    status: int
    result_url: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        return KNOWN_STATUSES.get(self.status, str(self.status))

    @property
    def done(self) -> bool:
        return self.status == STATUS_DONE

    def __repr__(self) -> str:  # the result URL's query string is a secret: keep it out of logs
        url = None if self.result_url is None else strip_query(self.result_url)
        return f"TaskState(status={self.status}, result_url={url!r})"


def _raw_status(body: dict[str, Any]) -> Any:
    for path in (("task_status",), ("data", "task_status"), ("data", "taskStatus")):
        value = _dig(body, path)
        if value is not None and value != "":
            return value
    return None


def _unknown_status(value: Any, task_id: str) -> ProtocolError:
    return ProtocolError(
        f"The API reported task {task_id} with status {value!r}, which this client does not know "
        "(expected 0 queued, 1 processing, 2 done or 3 failed); the API may have changed: "
        "update the pack, or report it."
    )


def _status_number(value: Any, task_id: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise _unknown_status(value, task_id)


def _failure_fields(body: dict[str, Any]) -> dict[str, str]:
    """Error fields of a failed task, looked for at the top level and then under `data`."""
    fields = error_fields(body)
    data = body.get("data")
    if isinstance(data, dict):
        nested = error_fields(data)
        for name in ("code", "api_message"):
            fields[name] = fields[name] or nested[name]
    if not fields["api_message"]:
        fields["api_message"] = "the API reported the task as failed (task_status 3) without a reason"
    return fields


def parse_task_state(body: dict[str, Any], *, task_id: str) -> TaskState:
    """The state of a task from a successful query answer.

    Status 3 raises TaskFailedError; an unknown status, or status 2 with no result URL, raises
    ProtocolError (waiting longer would not help).
    """
    raw = _raw_status(body)
    if raw is None:
        raise ProtocolError(
            f"The query of task {task_id} answered without a task_status (looked at task_status, "
            "data.task_status, data.taskStatus); the API may have changed."
        )
    status = _status_number(raw, task_id)
    if status == STATUS_FAILED:
        raise TaskFailedError(task_id=task_id, http_status=200, raw=body, **_failure_fields(body))
    if status not in KNOWN_STATUSES:
        raise _unknown_status(raw, task_id)
    url = find_result_url(body)
    if status == STATUS_DONE and url is None:
        raise ProtocolError(
            f"Task {task_id} is done but the answer has no result URL (looked at result_url and "
            "data.result_url/image_url/image/images[0]/url); the API may have changed."
        )
    return TaskState(status=status, result_url=url, raw=body)


def _decode_base64(text: str) -> bytes:
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        return base64.b64decode(compact, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ProtocolError(
            f"The sync answer's result is not valid base64 ({error}); the API may have changed."
        ) from None


def sync_result_text(body: dict[str, Any]) -> str:
    """The `result` string of a sync answer (top level, else `data.result`), or ""."""
    for path in (("result",), ("data", "result")):
        value = _dig(body, path)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def decode_sync_result(body: dict[str, Any]) -> bytes:
    """The image bytes of a sync answer: bare base64 or a `data:<type>;base64,` URI, whitespace and
    missing padding tolerated."""
    text = sync_result_text(body)
    if text.lower().startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header.lower():
            raise ProtocolError("The sync answer's result is a data: URI that is not base64-encoded.")
    data = _decode_base64(text) if text.strip() else b""
    if not data:
        raise ProtocolError(
            "The sync answer has no result image (no `result` or `data.result`); the API may have "
            "changed, or use the async mode."
        )
    return data
