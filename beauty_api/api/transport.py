"""HTTP to the API: the key header only to the API, timeouts, and the one retry loop inside a deadline.

Rules that cost money or leak secrets if broken:
- The `ailabapi-api-key` header is added in `api_call` only, per request (never on the session),
  and redirects from the API are not followed: requests strips only `Authorization` when a
  redirect changes host, not custom headers, so following one could send the key elsewhere.
- Result downloads (result_download.py, a layer above this one) never carry the key (the result host is not the API),
  and may follow redirects.
- A submit (`safe_to_retry=False`) is retried only when it provably never reached the server
  (connect failures) or when the server answered with a definite, retryable error (failed
  requests are not billed). A submit that may have been received but got no readable answer
  raises SubmitOutcomeUnknown at once: resending blindly could create a second paid task.
- No sleep goes past the deadline; every sleep goes through the cancel hook.
- Environment proxies (HTTP(S)_PROXY / NO_PROXY) are honoured, except for loopback hosts.
- Logs are debug-only: method, host+path (never a query string: signed result URLs are
  secrets too), status, attempt. Never headers.

When to retry and how long to wait: retry_policy.py. What a network failure means:
network_failures.py.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urljoin

import requests
from requests import exceptions as rex

from ..clock import CancelCheck, Clock, Deadline, sleep_interruptibly
from ..clock import check_cancel as _raise_if_cancelled
from ..config import ENV_BASE_URL, ApiKey
from ..errors import (
    ApiError,
    ConfigurationError,
    DeadlineExceeded,
    ProtocolError,
    SubmitOutcomeUnknown,
    TaskFailedError,
    TransportError,
)
from .http_wait import send_cancellably
from .network_failures import (
    describe_url,
    failure_reason,
    host_of,
    is_certificate_error,
    is_retryable_failure,
    never_sent,
    proxies_for,
)
from .protocol import KEY_HEADER, check_answer
from .retry_policy import (
    MAX_RETRY_AFTER,
    MIN_ATTEMPT_SECONDS,
    MIN_SUBMIT_SECONDS,
    RetryableFailure,
    RetryEvent,
    RetryHook,
    RetrySettings,
    parse_retry_after,
)

POOL_SIZE = 16  # connections kept per host; the batch layer runs a few requests at once

T = TypeVar("T")

log = logging.getLogger(__name__)

# Reads one answer (HTTP status, body) into its JSON object, or raises what it means.
AnswerReader = Callable[[int, bytes], dict[str, Any]]


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
        self._owns_session = session is None
        self.session = session if session is not None else _default_session()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry = retry if retry is not None else RetrySettings()
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.wall_time = wall_time  # Retry-After dates are wall-clock times
        self.host = host_of(self.base_url)

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool, if this transport made it (a session passed in is the caller's)."""
        if self._owns_session:
            self.session.close()

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
        read_timeout: float | None = None,
    ) -> dict[str, Any]:
        """One API request with retries; returns the JSON object of the successful answer.

        `files` values must be bytes-based tuples, so every attempt rebuilds the multipart body.
        `read_answer` replaces protocol.check_answer (the task query uses check_query_answer).
        `read_timeout` replaces the transport's own for this call (a sync retouch answers only
        when processing is over, so it waits as long as the user's timeout allows).
        """
        if read_answer is None:

            def read_answer(status: int, body: bytes) -> dict[str, Any]:
                return check_answer(status, body, operation=operation)

        url = self.base_url + path
        read_limit = self.read_timeout if read_timeout is None else read_timeout
        min_time = (
            MIN_ATTEMPT_SECONDS
            if safe_to_retry
            else max(MIN_ATTEMPT_SECONDS, min(read_limit, MIN_SUBMIT_SECONDS))
        )
        return self.retrying(
            lambda timeout, attempt: self._attempt(
                method,
                url,
                params,
                data,
                files,
                operation,
                timeout,
                safe_to_retry,
                attempt,
                read_answer,
                # A request safe to resend is also safe to abandon on Cancel; a submit never is.
                check_cancel if safe_to_retry else None,
            ),
            operation=operation,
            deadline=deadline,
            min_time=min_time,
            check_cancel=check_cancel,
            on_retry=on_retry,
            read_timeout=read_limit,
        )

    def retrying(
        self,
        attempt_once: Callable[[tuple[float, float], int], T | RetryableFailure],
        *,
        operation: str,
        deadline: Deadline,
        min_time: float,
        check_cancel: CancelCheck | None,
        on_retry: RetryHook | None,
        read_timeout: float | None = None,
        attempts: int | None = None,
    ) -> T:
        """The one retry loop: attempt, and on a retryable failure back off, inside the deadline.

        `attempt_once(timeout, attempt)` returns its result, returns a RetryableFailure worth retrying,
        or raises what is final. `read_timeout` (default: the transport's) is clipped by the deadline;
        `attempts` (default: the retry settings') bounds the attempts.
        """
        last: BaseException | None = None
        max_attempts = attempts if attempts is not None else self.retry.max_attempts
        for attempt in range(1, max_attempts + 1):
            _check(check_cancel)
            timeout = self._timeout(deadline, min_time, read_timeout)
            if timeout is None:
                raise last if last is not None else _no_time(operation, deadline)
            outcome = attempt_once(timeout, attempt)
            if not isinstance(outcome, RetryableFailure):
                return outcome
            last = outcome.error
            delay = self._next_delay(attempt, outcome.retry_after, deadline, min_time, max_attempts)
            if delay is None:
                raise last
            event = RetryEvent(operation, last, attempt, max_attempts, delay)
            self._pause(event, on_retry, check_cancel)
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
        abandon_on_cancel: CancelCheck | None = None,
    ) -> dict[str, Any] | RetryableFailure:
        """Send once: the answer's JSON, or a retryable failure; anything final is raised.

        With `abandon_on_cancel`, the wait for the answer gives up within 0.05 s of a Cancel
        (http_wait.py). The requests exception of a failure comes back as a value, so nothing
        raised below has it as __context__.
        """
        started = self.clock.monotonic()
        response, failure = send_cancellably(
            lambda: self.session.request(
                method,
                url,
                params=params,
                data=data,
                files=files,
                headers={KEY_HEADER: self._api_key.reveal()},
                timeout=timeout,
                allow_redirects=False,
                # None values mean "no proxy" to requests (sessions.merge_setting); its annotations omit them.
                proxies=proxies_for(url),  # type: ignore[arg-type]
            ),
            abandon_on_cancel,
        )
        if response is None:
            # A requests exception holds the sent headers (the key) in `.request.headers`, and its
            # chain holds http.client frames whose locals are the raw request: it never becomes
            # part of an exception that leaves this package (no __cause__, no __context__, no local).
            assert failure is not None  # send_cancellably returns a response or a failure
            log.debug(
                "%s %s failed: %s (attempt %d)", method, describe_url(url), failure_reason(failure), attempt
            )
            error, final = self._network_failure(failure, operation, attempt, safe_to_retry)
            failure = None
            if final:
                raise error
            return RetryableFailure(error)
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
            return RetryableFailure(error, retry_after)
        except ProtocolError as error:
            if not safe_to_retry:
                raise self._unknown_outcome(operation, "HTTP 200 with an unreadable answer") from error
            return RetryableFailure(error)

    def _network_failure(
        self, exc: rex.RequestException, operation: str, attempt: int, safe_to_retry: bool
    ) -> tuple[TransportError, bool]:
        """The error for a request that got no answer, and whether it is final (not to be retried).

        Built from secret-free facts about `exc` only; the caller raises it after dropping `exc`.
        """
        reason = failure_reason(exc)
        if not safe_to_retry and not never_sent(exc):
            return self._unknown_outcome(operation, reason), True
        if is_certificate_error(exc):
            return TransportError(
                f"The Face Beauty Pro API at {self.host} presented a TLS certificate this machine does not "
                "trust. If a company proxy inspects HTTPS, point REQUESTS_CA_BUNDLE at its CA certificate; "
                f"otherwise check {ENV_BASE_URL} (now {self.base_url})."
            ), True
        error = TransportError(
            f"Could not reach the Face Beauty Pro API at {self.host} for the {operation} ({reason}; attempt "
            f"{attempt} of {self.retry.max_attempts}). Check the network connection and any proxy "
            f"(HTTPS_PROXY / NO_PROXY), and {ENV_BASE_URL} (now {self.base_url})."
        )
        error.reason = reason
        return error, not is_retryable_failure(exc)

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

    def _timeout(
        self, deadline: Deadline, min_time: float, read_timeout: float | None = None
    ) -> tuple[float, float] | None:
        """(connect, read) timeouts inside the deadline, or None when too little time is left."""
        remaining = deadline.remaining()
        if remaining < min_time:
            return None
        read = self.read_timeout if read_timeout is None else read_timeout
        return min(self.connect_timeout, remaining), min(read, remaining)

    def _next_delay(
        self,
        attempt: int,
        retry_after: float | None,
        deadline: Deadline,
        min_time: float,
        max_attempts: int | None = None,
    ) -> float | None:
        """Seconds to sleep before the next attempt, or None when no attempt fits any more.

        Backoff is clipped so one more attempt still fits in the deadline. A Retry-After longer
        than the time left ends the retries at once: trying earlier than asked would be refused.
        """
        if attempt >= (max_attempts if max_attempts is not None else self.retry.max_attempts):
            return None
        budget = deadline.remaining() - min_time
        if budget <= 0:
            return None
        if retry_after is not None:
            retry_after = min(retry_after, MAX_RETRY_AFTER)
            return retry_after if retry_after <= budget else None
        return min(self.retry.backoff(attempt, self.rng), budget)

    def _pause(self, event: RetryEvent, on_retry: RetryHook | None, hook: CancelCheck | None) -> None:
        log.debug("retrying in %.2f s after %s", event.delay, event.error.__class__.__name__)
        if on_retry is not None:
            on_retry(event)
        sleep_interruptibly(self.clock, event.delay, hook)


def _check(hook: CancelCheck | None) -> None:
    """Between network steps: the hook may raise its own exception (propagates untouched)."""
    _raise_if_cancelled(hook)


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
