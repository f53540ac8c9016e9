"""HTTP for the client: the key header only to the API, timeouts, retries inside a deadline, capped downloads.

Rules that cost money or leak secrets if broken:
- The `ailabapi-api-key` header is added in `api_call` only, per request (never on the session),
  and redirects from the API are not followed: requests strips only `Authorization` when a
  redirect changes host, not custom headers, so following one could send the key elsewhere.
- Result downloads never carry the key (the result host is not the API), and may follow redirects.
- A submit (`safe_to_retry=False`) is retried only when it provably never reached the server
  (connect failures) or when the server answered with a definite, retryable error (failed
  requests are not billed). A submit that may have been received but got no readable answer
  raises SubmitOutcomeUnknown at once: resending blindly could create a second paid task.
- No sleep goes past the deadline; every sleep goes through the cancel hook.
- Environment proxies (HTTP(S)_PROXY / NO_PROXY) are honoured, except for loopback hosts.
- Logs are debug-only: method, host+path (never a query string: signed result URLs are
  secrets too), status, attempt. Never headers.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions as u3
from requests import exceptions as rex

from .clock import CancelCheck, Clock, Deadline, sleep_interruptibly
from .clock import check_cancel as _raise_if_cancelled
from .config import ENV_BASE_URL, ApiKey
from .errors import (
    ApiError,
    ConfigurationError,
    DeadlineExceeded,
    InvalidParameterError,
    ProtocolError,
    ResultDownloadError,
    ResultExpired,
    SubmitOutcomeUnknown,
    TaskFailedError,
    TransportError,
)
from .protocol import check_answer

KEY_HEADER = "ailabapi-api-key"
# The least time worth starting a request with: a query or download with less would only time out.
MIN_ATTEMPT_SECONDS = 1.0
# A submit needs more: cutting its read short turns a normal answer into an unknown (maybe paid) outcome.
MIN_SUBMIT_SECONDS = 5.0
CHUNK_BYTES = 64 * 1024
POOL_SIZE = 16  # connections kept per host; the batch layer runs a few requests at once
EXPIRED_STATUSES = (403, 404, 410)
TRANSIENT_STATUSES = (408, 425, 429, 500, 502, 503, 504)

T = TypeVar("T")

log = logging.getLogger("beauty_api")

RetryHook = Callable[[BaseException, float], None]
# Reads one answer (HTTP status, body) into its JSON object, or raises what it means.
AnswerReader = Callable[[int, bytes], dict[str, Any]]


@dataclass(frozen=True)
class RetrySettings:
    """Exponential backoff: `base_delay * 2**(n-1)` before retry n, at most `max_delay`.

    `jitter` is the fraction of each delay that is random: the delay is drawn uniformly from
    `[(1 - jitter) * d, d]` (0 = no jitter, 1 = "full jitter"), so many clients that hit a rate
    limit together do not come back together.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            problems.append(f"max_attempts must be an integer, got {self.max_attempts!r}")
        elif self.max_attempts < 1:
            problems.append(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not _finite(self.base_delay) or self.base_delay < 0:
            problems.append(f"base_delay must be >= 0 seconds, got {self.base_delay!r}")
        if not _finite(self.max_delay) or self.max_delay < 0:
            problems.append(f"max_delay must be >= 0 seconds, got {self.max_delay!r}")
        elif _finite(self.base_delay) and self.max_delay < self.base_delay:
            problems.append(f"max_delay ({self.max_delay}) must not be below base_delay ({self.base_delay})")
        if not _finite(self.jitter) or not 0 <= self.jitter <= 1:
            problems.append(f"jitter must be between 0 and 1, got {self.jitter!r}")
        if problems:
            raise InvalidParameterError("RetrySettings: " + "; ".join(problems) + ".")

    def backoff(self, failures: int, rng: random.Random) -> float:
        """The jittered delay before the retry that follows `failures` failed attempts (1-based)."""
        delay = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
        return delay * (1 - self.jitter * rng.random())


def _finite(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (`now` = Unix time)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if _finite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def describe_url(url: str) -> str:
    """host[:port]/path of a URL, without scheme, user info or query string (safe for logs and errors)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if port:
        host = f"{host}:{port}"
    return host + (parts.path or "/")


def proxies_for(url: str) -> dict[str, None] | None:
    """Keep loopback traffic (the emulator, a local gateway) away from HTTP(S)_PROXY.

    Proxies from the environment are honoured for every other host (requests' trust_env); a
    proxy cannot reach this machine's loopback anyway. None values tell requests "no proxy".
    """
    host = (urlsplit(url).hostname or "").lower()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost" or host.endswith(".localhost")
    return {"http": None, "https": None, "all": None} if loopback else None


def _host_of(url: str) -> str:
    return describe_url(url).split("/", 1)[0]


# -- classifying network failures -------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its args' exceptions (requests wraps urllib3 errors there) and its causes."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        item = todo.pop(0)
        if any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [a for a in getattr(item, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(item, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        for linked in (item.__cause__, item.__context__):
            if linked is not None:
                todo.append(linked)
    return seen


def _never_sent(exc: rex.RequestException) -> bool:
    """True when the request provably never reached the server (so even a submit may be resent).

    Connect timeouts, refused connections, DNS failures and proxy connect failures happen before
    a byte of the request is sent. Anything else (read timeout, reset or dropped connection, a
    broken chunked answer, an SSL error that may be mid-stream) may come after the server got it.
    """
    if isinstance(exc, rex.ConnectTimeout):
        return True
    if isinstance(exc, rex.ReadTimeout | rex.ChunkedEncodingError):
        return False
    if isinstance(exc, rex.ProxyError):
        return True
    if isinstance(exc, rex.ConnectionError):
        for item in _chain(exc):
            if isinstance(item, u3.NewConnectionError | u3.ConnectTimeoutError | ConnectionRefusedError):
                return True
            if isinstance(item, ssl.SSLCertVerificationError):
                return True
    return False


def _certificate_error(exc: BaseException) -> bool:
    return any(isinstance(item, ssl.SSLCertVerificationError) for item in _chain(exc))


def _retryable_failure(exc: rex.RequestException) -> bool:
    """Network failures worth another attempt (for requests that are safe to resend)."""
    if _certificate_error(exc):
        return False  # a certificate problem does not go away by itself
    return isinstance(
        exc,
        rex.ConnectionError | rex.Timeout | rex.ChunkedEncodingError | rex.ContentDecodingError,
    )


def _reason(exc: BaseException) -> str:
    """A short, secret-free description of a network failure (no URL, no headers)."""
    chain = _chain(exc)
    checks: list[tuple[type | tuple[type, ...], str]] = [
        (ssl.SSLCertVerificationError, "TLS certificate not trusted"),
        (u3.NameResolutionError, "host name not found"),
        (ConnectionRefusedError, "connection refused"),
        (rex.ConnectTimeout, "connect timeout"),
        (rex.ProxyError, "proxy error"),
        (rex.ReadTimeout, "no answer in time (read timeout)"),
        (rex.ChunkedEncodingError, "connection dropped while reading the answer"),
        (ConnectionResetError, "connection reset"),
        (rex.SSLError, "TLS error"),
        (u3.NewConnectionError, "cannot connect"),
        (u3.ProtocolError, "connection dropped"),
        (rex.ConnectionError, "connection failed"),
    ]
    for kind, text in checks:
        if any(isinstance(item, kind) for item in chain):
            return text
    return exc.__class__.__name__


@dataclass
class _Failure:
    """One failed attempt that may be retried, and how long the server asked us to wait."""

    error: BaseException
    retry_after: float | None = None


class Transport:
    """The one place that talks HTTP. Thread-safe: one session with a pool shared by worker threads."""

    def __init__(
        self,
        base_url: str,
        api_key: ApiKey,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        retry: RetrySettings | None = None,
        clock: Clock,
        rng: random.Random | None = None,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(api_key, ApiKey):
            raise TypeError("Transport needs a config.ApiKey (resolve_api_key() makes one)")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.session = session if session is not None else _default_session()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry = retry if retry is not None else RetrySettings()
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.wall_time = wall_time  # Retry-After dates are wall-clock times
        self.host = _host_of(self.base_url)

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r})"

    # -- API calls ----------------------------------------------------------------------------

    def api_call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, Any] | None = None,
        operation: str,
        deadline: Deadline,
        safe_to_retry: bool,
        check_cancel: CancelCheck | None = None,
        on_retry: RetryHook | None = None,
        read_answer: AnswerReader | None = None,
    ) -> dict[str, Any]:
        """One API request with retries; returns the JSON object of the successful answer.

        `files` values must be bytes-based tuples, so every attempt rebuilds the multipart body.
        `read_answer` replaces protocol.check_answer (the task query uses check_query_answer).
        """
        if read_answer is None:

            def read_answer(status: int, body: bytes) -> dict[str, Any]:
                return check_answer(status, body, operation=operation)

        url = self.base_url + path
        min_time = (
            MIN_ATTEMPT_SECONDS
            if safe_to_retry
            else max(MIN_ATTEMPT_SECONDS, min(self.read_timeout, MIN_SUBMIT_SECONDS))
        )
        return self._with_retries(
            lambda timeout, attempt: self._attempt(
                method, url, params, data, files, operation, timeout, safe_to_retry, attempt, read_answer
            ),
            operation=operation,
            deadline=deadline,
            min_time=min_time,
            check_cancel=check_cancel,
            on_retry=on_retry,
        )

    def _with_retries(
        self,
        attempt_once: Callable[[tuple[float, float], int], T | _Failure],
        *,
        operation: str,
        deadline: Deadline,
        min_time: float,
        check_cancel: CancelCheck | None,
        on_retry: RetryHook | None,
    ) -> T:
        """The one retry loop: attempt, and on a retryable failure back off, inside the deadline.

        `attempt_once(timeout, attempt)` returns its result, returns a _Failure worth retrying,
        or raises what is final.
        """
        last: BaseException | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            _check(check_cancel)
            timeout = self._timeout(deadline, min_time)
            if timeout is None:
                raise last if last is not None else _no_time(operation, deadline)
            outcome = attempt_once(timeout, attempt)
            if not isinstance(outcome, _Failure):
                return outcome
            last = outcome.error
            delay = self._next_delay(attempt, outcome.retry_after, deadline, min_time)
            if delay is None:
                raise last
            self._pause(last, delay, on_retry, check_cancel)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        files: Mapping[str, Any] | None,
        operation: str,
        timeout: tuple[float, float],
        safe_to_retry: bool,
        attempt: int,
        read_answer: AnswerReader,
    ) -> dict[str, Any] | _Failure:
        """Send once: the answer's JSON, or a retryable failure; anything final is raised."""
        started = self.clock.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                data=data,
                files=files,
                headers={KEY_HEADER: self._api_key.reveal()},
                timeout=timeout,
                allow_redirects=False,
                proxies=proxies_for(url),
            )
        except rex.RequestException as exc:
            log.debug("%s %s failed: %s (attempt %d)", method, describe_url(url), _reason(exc), attempt)
            return _Failure(self._network_failure(exc, operation, attempt, safe_to_retry))
        log.debug(
            "%s %s -> HTTP %d (attempt %d, %.2f s)",
            method,
            describe_url(url),
            response.status_code,
            attempt,
            self.clock.monotonic() - started,
        )
        if 300 <= response.status_code < 400:
            raise self._redirect_error(url, response, operation)
        try:
            return read_answer(response.status_code, response.content)
        except ApiError as error:
            if isinstance(error, TaskFailedError) or not error.retryable:
                raise
            if not safe_to_retry and _gateway_timeout(error):
                raise self._unknown_outcome(operation, f"HTTP {error.http_status} from a gateway") from error
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self.wall_time())
            return _Failure(error, retry_after)
        except ProtocolError as error:
            if not safe_to_retry:
                raise self._unknown_outcome(operation, "HTTP 200 with an unreadable answer") from error
            return _Failure(error)

    def _network_failure(
        self, exc: rex.RequestException, operation: str, attempt: int, safe_to_retry: bool
    ) -> TransportError:
        """The error for a request that got no answer; raised here when it must not be retried."""
        reason = _reason(exc)
        if not safe_to_retry and not _never_sent(exc):
            raise self._unknown_outcome(operation, reason) from exc
        if _certificate_error(exc):
            raise TransportError(
                f"The Face Beauty Pro API at {self.host} presented a TLS certificate this machine does not "
                "trust. If a company proxy inspects HTTPS, point REQUESTS_CA_BUNDLE at its CA certificate; "
                f"otherwise check {ENV_BASE_URL} (now {self.base_url})."
            ) from exc
        error = TransportError(
            f"Could not reach the Face Beauty Pro API at {self.host} for the {operation} ({reason}; attempt "
            f"{attempt} of {self.retry.max_attempts}). Check the network connection and any proxy "
            f"(HTTPS_PROXY / NO_PROXY), and {ENV_BASE_URL} (now {self.base_url})."
        )
        error.__cause__ = exc
        if not _retryable_failure(exc):
            raise error
        return error

    def _unknown_outcome(self, operation: str, reason: str) -> SubmitOutcomeUnknown:
        return SubmitOutcomeUnknown(
            f"The {operation} was sent to the Face Beauty Pro API at {self.host} but no usable answer came "
            f"back ({reason}). The API may have received it and created a task, which is billed if it "
            "completes. It was NOT "
            "sent again automatically, to avoid paying twice. Re-run to submit again (this may create a "
            "second paid task), or first look at the task history of your AILabTools account "
            "(https://www.ailabtools.com)."
        )

    def _redirect_error(self, url: str, response: requests.Response, operation: str) -> ConfigurationError:
        location = response.headers.get("Location", "")
        target = describe_url(urljoin(url, location)) if location else "an unnamed address"
        return ConfigurationError(
            f"The API at {self.host} answered the {operation} with HTTP {response.status_code}, a redirect "
            f"to {target}. Redirects from the API are not followed, so the API key is never sent to another "
            f"address. If that address is the right one, set {ENV_BASE_URL} to it (now {self.base_url})."
        )

    # -- timing -------------------------------------------------------------------------------

    def _timeout(self, deadline: Deadline, min_time: float) -> tuple[float, float] | None:
        """(connect, read) timeouts inside the deadline, or None when too little time is left."""
        remaining = deadline.remaining()
        if remaining < min_time:
            return None
        return min(self.connect_timeout, remaining), min(self.read_timeout, remaining)

    def _next_delay(
        self, attempt: int, retry_after: float | None, deadline: Deadline, min_time: float
    ) -> float | None:
        """Seconds to sleep before the next attempt, or None when no attempt fits any more.

        Backoff is clipped so one more attempt still fits in the deadline. A Retry-After longer
        than the time left ends the retries at once: trying earlier than asked would be refused.
        """
        if attempt >= self.retry.max_attempts:
            return None
        budget = deadline.remaining() - min_time
        if budget <= 0:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= budget else None
        return min(self.retry.backoff(attempt, self.rng), budget)

    def _pause(
        self,
        error: BaseException,
        delay: float,
        on_retry: RetryHook | None,
        hook: CancelCheck | None,
    ) -> None:
        log.debug("retrying in %.2f s after %s", delay, error.__class__.__name__)
        if on_retry is not None:
            on_retry(error, delay)
        sleep_interruptibly(self.clock, delay, hook)

    # -- downloads ----------------------------------------------------------------------------

    def download(
        self,
        url: str,
        *,
        deadline: Deadline,
        max_bytes: int,
        check_cancel: CancelCheck | None = None,
        on_retry: RetryHook | None = None,
    ) -> bytes:
        """The bytes at a result URL, without the API key, streamed and capped at `max_bytes`.

        403/404/410 raise ResultExpired at once (results live 24 h); network failures and 5xx
        are retried inside the deadline. Errors name host+path only: the query string of a
        signed URL is a secret.
        """
        where = describe_url(url)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise ResultDownloadError(
                f"The result address is not an http(s) URL ({where}); cannot download it."
            )
        return self._with_retries(
            lambda timeout, attempt: self._fetch(url, timeout, deadline, max_bytes, check_cancel, attempt),
            operation="result download",
            deadline=deadline,
            min_time=MIN_ATTEMPT_SECONDS,
            check_cancel=check_cancel,
            on_retry=on_retry,
        )

    def _fetch(
        self,
        url: str,
        timeout: tuple[float, float],
        deadline: Deadline,
        max_bytes: int,
        hook: CancelCheck | None,
        attempt: int,
    ) -> bytes | _Failure:
        where = describe_url(url)
        failure: _Failure | None = None
        try:
            response = self.session.get(
                url,
                headers=_download_headers(),
                timeout=timeout,
                stream=True,
                allow_redirects=True,
                proxies=proxies_for(url),
            )
        except rex.RequestException as exc:
            failure = self._download_failure(exc, where, attempt)
        if failure is not None:
            return failure
        with response:
            log.debug("GET %s -> HTTP %d (attempt %d)", where, response.status_code, attempt)
            self._check_download_status(response, where, max_bytes)
            if response.status_code != 200:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self.wall_time())
                return _Failure(
                    ResultDownloadError(
                        f"The result host answered HTTP {response.status_code} for {where} "
                        f"(attempt {attempt} of {self.retry.max_attempts})."
                    ),
                    retry_after,
                )
            return self._read_capped(response, where, deadline, max_bytes, hook, attempt)

    def _download_failure(self, exc: rex.RequestException, where: str, attempt: int) -> _Failure:
        error = ResultDownloadError(
            f"Downloading the result from {where} failed ({_reason(exc)}; attempt {attempt} of "
            f"{self.retry.max_attempts}). Check the network connection and any proxy; re-running "
            "downloads it again without paying (results are kept 24 h)."
        )
        if not _retryable_failure(exc):
            raise error from None  # not `from exc`: its text holds the signed URL
        return _Failure(error)

    def _check_download_status(self, response: requests.Response, where: str, max_bytes: int) -> None:
        """Raise for answers no retry can fix: expired/invalid URL, other 4xx, a declared size over the cap."""
        status = response.status_code
        if status in EXPIRED_STATUSES:
            raise ResultExpired(
                f"The result URL ({where}) answered HTTP {status}: it expired or is invalid (results are "
                "kept only 24 hours). Submit the image again to get a new result."
            )
        if status != 200 and status not in TRANSIENT_STATUSES:
            raise ResultDownloadError(
                f"The result host answered HTTP {status} for {where}; cannot download it."
            )
        declared = response.headers.get("Content-Length", "")
        if status == 200 and declared.isdigit() and int(declared) > max_bytes:
            raise ResultDownloadError(_too_large(where, max_bytes, int(declared)))

    def _read_capped(
        self,
        response: requests.Response,
        where: str,
        deadline: Deadline,
        max_bytes: int,
        hook: CancelCheck | None,
        attempt: int,
    ) -> bytes | _Failure:
        """Read the body in chunks, checking cancel and the deadline between chunks."""
        chunks: list[bytes] = []
        total = 0
        iterator = response.iter_content(CHUNK_BYTES)
        while True:
            _check(hook)
            if deadline.expired():
                raise DeadlineExceeded(
                    f"The result download from {where} did not finish before the deadline; re-run to "
                    "download it again (the task is paid and its result is kept 24 h)."
                )
            failure: _Failure | None = None
            try:
                chunk = next(iterator, None)
            except rex.RequestException as exc:
                failure = self._download_failure(exc, where, attempt)
            if failure is not None:
                return failure
            if chunk is None:
                break
            total += len(chunk)
            if total > max_bytes:
                raise ResultDownloadError(_too_large(where, max_bytes, None))
            chunks.append(chunk)
        if total == 0:
            return _Failure(ResultDownloadError(f"The result host sent an empty body for {where}."))
        return b"".join(chunks)


def _check(hook: CancelCheck | None) -> None:
    """Between network steps: the hook may raise its own exception (propagates untouched)."""
    _raise_if_cancelled(hook)


def _download_headers() -> dict[str, str | None]:
    # None deletes the header even if a caller-supplied session has it as a default header.
    return {KEY_HEADER: None, "Accept": "image/*, */*;q=0.5"}


def _too_large(where: str, max_bytes: int, declared: int | None) -> str:
    size = f" ({declared} bytes)" if declared is not None else ""
    return (
        f"The result at {where} is larger than the {max_bytes}-byte limit{size}; it was not downloaded "
        "in full. Raise max_download_bytes if such results are expected."
    )


def _gateway_timeout(error: ApiError) -> bool:
    """A code-less 504 to a submit: a gateway gave up waiting, the API may have created the task."""
    return error.http_status == 504 and not error.code


def _no_time(operation: str, deadline: Deadline) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"No time was left for the {operation} within the {deadline.seconds:g} s deadline; "
        "raise the timeout and re-run."
    )


def _default_session() -> requests.Session:
    """A session with a pool big enough for the batch layer's worker threads; env proxies honoured."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
