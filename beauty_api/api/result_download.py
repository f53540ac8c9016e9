"""Result downloads: no API key, redirects followed, streamed and capped, retried inside the deadline.

403/404/410 mean the result expired (results live 24 h); network failures and 5xx are retried by
the transport's one retry loop. Errors name host+path only: the query string of a signed URL is a
secret.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from requests import exceptions as rex

from ..clock import CancelCheck, Deadline
from ..clock import check_cancel as raise_if_cancelled
from ..errors import DeadlineExceeded, ResultDownloadError, ResultExpired
from .http_wait import send_cancellably
from .network_failures import describe_url, failure_reason, is_retryable_failure, proxies_for
from .protocol import KEY_HEADER
from .retry_policy import MIN_ATTEMPT_SECONDS, RetryableFailure, RetryHook, parse_retry_after

if TYPE_CHECKING:
    from .transport import Transport

CHUNK_BYTES = 64 * 1024
EXPIRED_STATUSES = (403, 404, 410)
TRANSIENT_STATUSES = (408, 425, 429, 500, 502, 503, 504)

log = logging.getLogger(__name__)


def download_result(
    transport: Transport,
    url: str,
    *,
    deadline: Deadline,
    max_bytes: int,
    check_cancel: CancelCheck | None = None,
    on_retry: RetryHook | None = None,
    attempts: int | None = None,
) -> bytes:
    """The bytes at a result URL, without the API key, streamed and capped at `max_bytes`.

    403/404/410 raise ResultExpired at once (results live 24 h); network failures and 5xx
    are retried inside the deadline. Errors name host+path only: the query string of a
    signed URL is a secret.
    """
    where = describe_url(url)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise ResultDownloadError(f"The result address is not an http(s) URL ({where}); cannot download it.")
    return transport.retrying(
        lambda timeout, attempt: _fetch(transport, url, timeout, deadline, max_bytes, check_cancel, attempt),
        operation="result download",
        deadline=deadline,
        min_time=MIN_ATTEMPT_SECONDS,
        check_cancel=check_cancel,
        on_retry=on_retry,
        attempts=attempts,
    )


def _fetch(
    transport: Transport,
    url: str,
    timeout: tuple[float, float],
    deadline: Deadline,
    max_bytes: int,
    hook: CancelCheck | None,
    attempt: int,
) -> bytes | RetryableFailure:
    where = describe_url(url)
    # Free and safe to abandon: the wait for the answer gives up within 0.05 s of a Cancel.
    response, exc = send_cancellably(
        lambda: transport.session.get(
            url,
            # None values mean "unset" to requests (sessions.merge_setting); its annotations omit them.
            headers=_download_headers(),  # type: ignore[arg-type]
            timeout=timeout,
            stream=True,
            allow_redirects=True,
            proxies=proxies_for(url),  # type: ignore[arg-type]
        ),
        hook,
    )
    if response is None:
        assert exc is not None  # send_cancellably returns a response or a failure
        failure = _download_failure(transport, exc, where, attempt)
        exc = None
        return failure
    with response:
        log.debug("GET %s -> HTTP %d (attempt %d)", where, response.status_code, attempt)
        _check_download_status(response, where, max_bytes)
        if response.status_code != 200:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=transport.wall_time())
            return RetryableFailure(
                ResultDownloadError(
                    f"The result host answered HTTP {response.status_code} for {where} "
                    f"(attempt {attempt} of {transport.retry.max_attempts})."
                ),
                retry_after,
            )
        return _read_capped(transport, response, where, deadline, max_bytes, hook, attempt)


def _download_failure(
    transport: Transport, exc: rex.RequestException, where: str, attempt: int
) -> RetryableFailure:
    error = ResultDownloadError(
        f"Downloading the result from {where} failed ({failure_reason(exc)}; attempt {attempt} of "
        f"{transport.retry.max_attempts}). Check the network connection and any proxy; re-running "
        "downloads it again without paying (results are kept 24 h)."
    )
    if not is_retryable_failure(exc):
        raise error from None  # not `from exc`: its text holds the signed URL
    return RetryableFailure(error)


def _check_download_status(response: requests.Response, where: str, max_bytes: int) -> None:
    """Raise for answers no retry can fix: expired/invalid URL, other 4xx, a declared size over the cap."""
    status = response.status_code
    if status in EXPIRED_STATUSES:
        raise ResultExpired(
            f"The result URL ({where}) answered HTTP {status}: it expired or is invalid (results are "
            "kept only 24 hours). Submit the image again to get a new result."
        )
    if status != 200 and status not in TRANSIENT_STATUSES:
        raise ResultDownloadError(f"The result host answered HTTP {status} for {where}; cannot download it.")
    declared = response.headers.get("Content-Length", "")
    if status == 200 and declared.isdigit() and int(declared) > max_bytes:
        raise ResultDownloadError(_too_large(where, max_bytes, int(declared)))


def _read_capped(
    transport: Transport,
    response: requests.Response,
    where: str,
    deadline: Deadline,
    max_bytes: int,
    hook: CancelCheck | None,
    attempt: int,
) -> bytes | RetryableFailure:
    """Read the body in chunks, checking cancel and the deadline between chunks."""
    chunks: list[bytes] = []
    total = 0
    iterator = response.iter_content(CHUNK_BYTES)
    while True:
        raise_if_cancelled(hook)
        if deadline.expired():
            raise DeadlineExceeded(
                f"The result download from {where} did not finish before the deadline; re-run to "
                "download it again (the task is paid and its result is kept 24 h)."
            )
        failure: RetryableFailure | None = None
        try:
            chunk = next(iterator, None)
        except rex.RequestException as exc:
            failure = _download_failure(transport, exc, where, attempt)
        if failure is not None:
            return failure
        if chunk is None:
            break
        total += len(chunk)
        if total > max_bytes:
            raise ResultDownloadError(_too_large(where, max_bytes, None))
        chunks.append(chunk)
    if total == 0:
        return RetryableFailure(ResultDownloadError(f"The result host sent an empty body for {where}."))
    return b"".join(chunks)


def _download_headers() -> dict[str, str | None]:
    # None deletes the header even if a caller-supplied session has it as a default header.
    return {KEY_HEADER: None, "Accept": "image/*, */*;q=0.5"}


def _too_large(where: str, max_bytes: int, declared: int | None) -> str:
    size = f" ({declared} bytes)" if declared is not None else ""
    return (
        f"The result at {where} is larger than the {max_bytes}-byte limit{size}; it was not downloaded "
        "in full. Raise max_download_bytes if such results are expected."
    )
