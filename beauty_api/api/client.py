"""FaceBeautyClient: submit an image, poll the task, download the result; one method per API step.

No caching, ledger or batching here (run/ does that): this layer maps the API's steps onto methods, each with a deadline, a cancel hook and the transport's retry rules.
Construction resolves the key and address, so a missing key fails before any request.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import requests

from ..clock import DEFAULT_CLOCK, CancelCheck, Clock, Deadline, sleep_interruptibly
from ..config import resolve_api_key, resolve_base_url
from ..errors import (
    ApiError,
    DeadlineExceeded,
    InvalidParameterError,
    ProtocolError,
    SubmitOutcomeUnknown,
    TaskFailedError,
)
from ..params import BeautyParams
from ..timeouts import DEFAULT_TIMEOUT
from .poll_schedule import Expectation, fixed_times, query_times
from .protocol import (
    TaskState,
    check_query_answer,
    decode_sync_result,
    find_result_url,
    parse_task_id,
    parse_task_state,
    sync_result_text,
)
from .result_download import download_result
from .retry_policy import MIN_ATTEMPT_SECONDS, RetryHook, RetrySettings
from .transport import Transport

if TYPE_CHECKING:
    from ..config import ApiKey

MODES = ("async", "sync")
# Query errors that are about the account or the load, not about the task: the task may be fine,
# so they are not turned into TaskFailedError (which makes the pipeline forget the paid task).
_NOT_ABOUT_THE_TASK = frozenset({"auth", "credits", "rate_limit"})


class Upload(Protocol):
    """What `submit` needs of an upload (codec.EncodedImage has these); read-only, so frozen objects fit."""

    @property
    def data(self) -> bytes: ...

    @property
    def mime_type(self) -> str: ...

    @property
    def filename(self) -> str: ...


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value  # not NaN
        and 0 < value < float("inf")
    )


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts and polling. `timeout` is the overall deadline of one retouch (submit, polls, download).

    Polling: by default (`poll_initial=None`) the task is looked at around the moment it is
    expected to finish (poll_schedule.py, learned from earlier tasks). A `poll_initial` asks for
    the plain schedule instead: first look after `poll_initial`, each wait `poll_factor` times
    longer. Either way no two looks are more than `poll_max` apart (the vendor's documented 5 s).
    """

    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    poll_initial: float | None = None
    poll_max: float = 5.0
    poll_factor: float = 1.5
    max_download_bytes: int = 64 * 1024**2
    retry: RetrySettings = field(default_factory=RetrySettings)

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be a positive number of seconds, got {getattr(self, name)!r}"
            for name in ("timeout", "connect_timeout", "read_timeout", "poll_initial", "poll_max")
            if not _positive(getattr(self, name))
            and not (name == "poll_initial" and self.poll_initial is None)
        ]
        if (
            _positive(self.poll_initial) and _positive(self.poll_max) and self.poll_initial > self.poll_max  # type: ignore[operator]
        ):
            problems.append(f"poll_initial ({self.poll_initial}) must not exceed poll_max ({self.poll_max})")
        if not _positive(self.poll_factor) or self.poll_factor < 1:
            problems.append(f"poll_factor must be a number >= 1, got {self.poll_factor!r}")
        if (
            isinstance(self.max_download_bytes, bool)
            or not isinstance(self.max_download_bytes, int)
            or self.max_download_bytes <= 0
        ):
            problems.append(f"max_download_bytes must be a positive integer, got {self.max_download_bytes!r}")
        if not isinstance(self.retry, RetrySettings):
            problems.append(f"retry must be a RetrySettings, got {type(self.retry).__name__}")
        if problems:
            raise InvalidParameterError("ClientSettings: " + "; ".join(problems) + ".")


@dataclass(frozen=True)
class SubmitReceipt:
    """What the API said when it accepted a task; keep `request_id`/`log_id` for support."""

    task_id: str
    request_id: str
    log_id: str


class FaceBeautyClient:
    """The Face Beauty Pro API: `submit` -> `wait` -> `download`, or `submit_sync` in one call."""

    ENDPOINT = "/api/portrait/effects/face-beauty-pro"
    QUERY_ENDPOINT = "/api/common/query-async-task-result"

    def __init__(
        self,
        api_key: str | ApiKey | None = None,
        base_url: str | None = None,
        *,
        settings: ClientSettings | None = None,
        session: requests.Session | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings if settings is not None else ClientSettings()
        self.clock = clock if clock is not None else DEFAULT_CLOCK
        self.base_url = resolve_base_url(base_url)
        self.transport = Transport(
            self.base_url,
            resolve_api_key(api_key),
            session=session,
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            retry=self.settings.retry,
            clock=self.clock,
            rng=rng,
        )

    def __repr__(self) -> str:
        return f"FaceBeautyClient(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the HTTP connections this client opened; `with FaceBeautyClient(...) as client:` does it."""
        self.transport.close()

    def __enter__(self) -> FaceBeautyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def new_deadline(self, seconds: float | None = None) -> Deadline:
        """A fresh overall deadline (`settings.timeout` by default) to share across the steps of one retouch."""
        return Deadline(self.clock, self.settings.timeout if seconds is None else seconds)

    def form_fields(self, params: BeautyParams, mode: str) -> dict[str, str]:
        """The exact text fields sent with the image (the pipeline hashes them to identify a paid request)."""
        if mode not in MODES:
            raise InvalidParameterError(f"mode: {mode!r} is not one of {', '.join(MODES)}.")
        if not isinstance(params, BeautyParams):
            raise InvalidParameterError(f"params must be a BeautyParams, got {type(params).__name__}.")
        return {"task_type": mode, **params.to_form()}

    # -- submit -------------------------------------------------------------------------------

    def submit(
        self,
        upload: Upload,
        params: BeautyParams,
        *,
        deadline: Deadline | None = None,
        check_cancel: CancelCheck | None = None,
        on_retry: RetryHook | None = None,
    ) -> SubmitReceipt:
        """Create an async task (paid when it completes). Never resent when the outcome is unknown."""
        body = self._post(upload, params, "async", "submit", deadline, check_cancel, on_retry)
        try:
            task_id = parse_task_id(body)
        except ProtocolError as error:
            raise SubmitOutcomeUnknown(
                f"{error} A task was probably created and will be billed if it completes, but it cannot be "
                "followed; it was not submitted again, to avoid paying twice."
            ) from error
        return SubmitReceipt(task_id, _text(body.get("request_id")), _text(body.get("log_id")))

    def submit_sync(
        self,
        upload: Upload,
        params: BeautyParams,
        *,
        deadline: Deadline | None = None,
        check_cancel: CancelCheck | None = None,
        on_retry: RetryHook | None = None,
    ) -> bytes:
        """Retouch in one request (`task_type=sync`); returns the result image's bytes."""
        deadline = deadline if deadline is not None else self.new_deadline()
        body = self._post(upload, params, "sync", "sync retouch", deadline, check_cancel, on_retry)
        text = sync_result_text(body)
        url = text if text.lower().startswith(("http://", "https://")) else None
        if not text:
            url = find_result_url(body)
        if url is not None:  # not documented for this API, but a sibling API answers sync with a URL
            # Already paid: the download is not abandoned on Cancel (the deadline still bounds it).
            return self.download(url, deadline=deadline)
        try:
            return decode_sync_result(body)
        except ProtocolError as error:
            raise ProtocolError(
                f"{error} The API reported success, so this request was probably billed."
            ) from None

    def _post(
        self,
        upload: Upload,
        params: BeautyParams,
        mode: str,
        operation: str,
        deadline: Deadline | None,
        check_cancel: CancelCheck | None,
        on_retry: RetryHook | None,
    ) -> dict:
        fields = self.form_fields(params, mode)
        data = upload.data
        if not isinstance(data, bytes | bytearray | memoryview) or not data:
            raise InvalidParameterError("upload.data must be the image's bytes (not a stream, not empty).")
        # bytes, not a file object: requests rebuilds the multipart body from them on every attempt
        files = {"image": (upload.filename, bytes(data), upload.mime_type)}
        return self.transport.api_call(
            "POST",
            self.ENDPOINT,
            data=fields,
            files=files,
            operation=operation,
            deadline=deadline if deadline is not None else self.new_deadline(),
            safe_to_retry=False,
            check_cancel=check_cancel,
            on_retry=on_retry,
            # A sync answer comes only when processing is over: wait as long as the user's timeout.
            read_timeout=self.settings.timeout if mode == "sync" else None,
        )

    # -- polling ------------------------------------------------------------------------------

    def query(
        self,
        task_id: str,
        *,
        deadline: Deadline | None = None,
        check_cancel: CancelCheck | None = None,
        on_retry: RetryHook | None = None,
    ) -> TaskState:
        """One look at a task.

        TaskFailedError when the answer is about the task itself: task_status 3, a processing
        failure, a non-retryable error (e.g. 413), or 404/410 (category not_found: the task expired
        or is unknown, so the caller can forget it and resubmit). Account problems (key, credits,
        rate limit) and transient errors that outlived the retries raise ApiError: the task may be
        fine, and a re-run resumes it.
        """
        task_id = _check_task_id(task_id)
        operation = f"query of task {task_id}"
        try:
            body = self.transport.api_call(
                "GET",
                self.QUERY_ENDPOINT,
                params={"task_id": task_id},
                operation=operation,
                read_answer=lambda status, answer: check_query_answer(
                    status, answer, task_id=task_id, operation=operation
                ),
                deadline=deadline if deadline is not None else self.new_deadline(),
                safe_to_retry=True,
                check_cancel=check_cancel,
                on_retry=on_retry,
            )
        except TaskFailedError:
            raise
        except ApiError as error:
            if error.retryable or error.category in _NOT_ABOUT_THE_TASK:
                raise
            raise _as_task_failure(task_id, error) from error
        return parse_task_state(body, task_id=task_id)

    def poll_times(self, expectation: Expectation | None = None) -> Iterator[float]:
        """When `wait` looks (seconds after `since`): around `expectation`, or the plain schedule if set."""
        settings = self.settings
        if settings.poll_initial is not None:
            return fixed_times(settings.poll_initial, settings.poll_factor, settings.poll_max)
        return query_times(expectation, max_interval=settings.poll_max)

    def wait(
        self,
        task_id: str,
        *,
        deadline: Deadline | None = None,
        on_state: Callable[[TaskState], None] | None = None,
        check_cancel: CancelCheck | None = None,
        on_retry: RetryHook | None = None,
        schedule: Iterable[float] | None = None,
        since: float | None = None,
    ) -> str:
        """Poll until the task is done and return its result URL.

        Looks at the times of `schedule` (seconds after `since`, the clock's time the submit was
        sent; default now), `poll_times()` by default; a time already past is skipped. The
        last sleep is clipped so a final query still fits before the deadline; then
        DeadlineExceeded (the task may still finish: a re-run resumes it through the journal).
        """
        task_id = _check_task_id(task_id)
        deadline = deadline if deadline is not None else self.new_deadline()
        since = self.clock.monotonic() if since is None else since
        times = iter(schedule if schedule is not None else self.poll_times())
        state: TaskState | None = None
        while True:
            budget = deadline.remaining() - MIN_ATTEMPT_SECONDS
            if budget <= 0:
                raise _still_running(task_id, deadline, state)
            elapsed = self.clock.monotonic() - since
            moment = next((t for t in times if t >= elapsed), None)  # times already past: skipped
            delay = self.settings.poll_max if moment is None else moment - elapsed
            sleep_interruptibly(self.clock, min(delay, budget), check_cancel)
            state = self.query(task_id, deadline=deadline, check_cancel=check_cancel, on_retry=on_retry)
            if on_state is not None:
                on_state(state)
            if state.done and state.result_url:
                return state.result_url

    # -- result -------------------------------------------------------------------------------

    def download(
        self,
        url: str,
        *,
        deadline: Deadline | None = None,
        check_cancel: CancelCheck | None = None,
        on_retry: RetryHook | None = None,
        attempts: int | None = None,
    ) -> bytes:
        """The result file's bytes (never sent with the API key), at most `settings.max_download_bytes`.

        `attempts` bounds the tries (default: the retry settings'); 1 probes whether a result is still there.
        """
        return download_result(
            self.transport,
            url,
            deadline=deadline if deadline is not None else self.new_deadline(),
            max_bytes=self.settings.max_download_bytes,
            check_cancel=check_cancel,
            on_retry=on_retry,
            attempts=attempts,
        )


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _check_task_id(task_id: object) -> str:
    if not isinstance(task_id, str) or not task_id.strip():
        raise InvalidParameterError(f"task_id must be a non-empty string, got {task_id!r}.")
    return task_id.strip()


def _as_task_failure(task_id: str, error: ApiError) -> TaskFailedError:
    return TaskFailedError(
        task_id=task_id,
        http_status=error.http_status,
        code=error.code,
        api_message=error.api_message,
        request_id=error.request_id,
        log_id=error.log_id,
        raw=error.raw,
    )


def _still_running(task_id: str, deadline: Deadline, state: TaskState | None) -> DeadlineExceeded:
    status = state.label if state is not None else "not checked yet"
    return DeadlineExceeded(
        f"Task {task_id} did not finish within the {deadline.seconds:g} s timeout (last status: {status}). "
        "It may still finish on the AILabTools side: re-running the same image resumes this task "
        "instead of paying again (results are kept 24 h). Raise the timeout if this keeps happening.",
        task_id=task_id,
    )
