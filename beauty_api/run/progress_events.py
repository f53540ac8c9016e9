"""What a backend tells its caller while it works: `Progress` events, and their retry and resize notes.

Displays (the CLI's lines and live status, the ComfyUI progress text) read these; a backend sends
them from worker threads. `retry_reason` turns a failed attempt into a few secret-free words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..api.network_failures import failure_reason
from ..errors import RATE_LIMIT_CODES, ApiError, ProtocolError, TransportError


@dataclass(frozen=True)
class RetryNotice:
    """A failed attempt that will be tried again, so displays are not silent while retrying."""

    attempt: int  # the attempt that just failed, counted from 1
    max_attempts: int
    reason: str  # one line, never a secret: "connection refused", "HTTP 503", "rate limited (429)"
    next_try_s: float  # seconds until the next attempt
    operation: str = ""  # what failed: "submit", "status check", "result download", ...


@dataclass(frozen=True)
class ResizeNotice:
    """The upload was made smaller than the source to fit the API's limits (said once per image)."""

    source_size: tuple[int, int]  # (width, height) of the input
    sent_size: tuple[int, int]  # what was uploaded
    scaled_back: bool  # True: the result is resized back to source_size (False with keep_returned_size)


@dataclass(frozen=True)
class Progress:
    """One step of one image, for progress displays. Sent from worker threads.

    Stages: encoding, resized, cached, resumed, submitting, queued, processing, retrying,
    downloading, done, failed, not_sent. `retry` is set with stage "retrying", `resize` with
    stage "resized" (sent once, after encoding, when the upload is smaller than the input); `expected` (seconds) is the
    processing time the poller expects for this task, when it has an estimate; `reason` is the
    one-line cause with stage "failed" or "not_sent".
    """

    index: int
    stage: str
    task_id: str | None
    elapsed: float
    retry: RetryNotice | None = None
    expected: float | None = None
    reason: str | None = None
    resize: ResizeNotice | None = None


ProgressCallback = Callable[[Progress], None]


def retry_reason(error: BaseException) -> str:
    """Why an attempt failed, in a few words and without secrets: "HTTP 503 AI_SERVICE_TIMEOUT",
    "rate limited, HTTP 429 EXCEEDING_LIMITS", "connection refused", "read timeout"..."""
    if isinstance(error, ApiError):
        status = " ".join(part for part in (f"HTTP {error.http_status}", error.code) if part)
        return f"rate limited, {status}" if error.code in RATE_LIMIT_CODES else status
    if isinstance(error, ProtocolError):
        return "unreadable answer"
    if isinstance(error, TransportError) and error.reason:
        return error.reason
    answered = re.search(r"\bHTTP (\d{3})\b", str(error))
    if answered is not None and error.__cause__ is None:  # e.g. the result host answered 503
        return f"HTTP {answered.group(1)}"
    return failure_reason(error)


def operation_name(operation: str) -> str:
    """The transport's operation, as a display names it ("query of task <id>" -> "status check")."""
    return "status check" if operation.startswith("query of task") else operation
