"""Fault injection for the emulator: the failures a real network and a real API produce.

A `FaultPlan` is a thread-safe list of armed faults. Each fault is consumed once per matching
request (or per created task, for `fail_tasks`) until its count runs out, so a test can say
"the next two submits are rate-limited" and then check that the client recovered. Faults can be
armed and cleared while the emulator is serving.

How each fault looks to a `requests` client is described in the method docstrings; the
emulator's server decides the order in which they apply (see `server.py`).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace

ENDPOINTS: tuple[str, ...] = ("submit", "query", "credits", "download")
FAILURE_SHAPES: tuple[str, ...] = ("status3", "status3_plain", "http_error")


@dataclass(frozen=True)
class Fault:
    """One armed fault; `remaining` is how many more matching requests it will hit."""

    kind: str
    endpoint: str
    remaining: int
    status: int = 0
    code: str = ""
    retry_after: float | None = None
    seconds: float = 0.0
    after_processing: bool = False
    shape: str | None = None


def _check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"fault count must be a non-negative integer, got {n!r}")
    return n


def _check_endpoint(endpoint: str) -> str:
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; use one of {', '.join(ENDPOINTS)}")
    return endpoint


class FaultPlan:
    """Armed faults, consumed by the emulator's request handlers; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    # -- arming -------------------------------------------------------------------------------

    def rate_limit_submits(
        self,
        n: int,
        retry_after: float | None = None,
        code: str = "EXCEEDING_LIMITS",
        status: int = 429,
    ) -> FaultPlan:
        """The next `n` submits answer `status`/`code` (no task, nothing billed).

        `retry_after` adds a `Retry-After` header in seconds (a float such as 0.05 is written
        as "0.05", a whole number as "2"). Use `code="AI_SERVICE_FLOW_RESTRICTION", status=503`
        for the upstream flavour of rate limiting.
        """
        return self._arm(
            Fault("rate_limit", "submit", _check_count(n), status, code, retry_after=retry_after)
        )

    def fail_tasks(self, n: int, code: str = "PROCESSING_FAILURE", shape: str | None = None) -> FaultPlan:
        """The next `n` accepted submits fail when processing ends, with `code`; failed tasks are not billed.

        `shape` (None = the emulator's `failure_shape`) chooses how the query reports it:
        "status3" = HTTP 200, task_status 3 and the error fields filled in; "status3_plain" =
        HTTP 200, task_status 3, public fields all saying success; "http_error" = the query
        itself answers the code's HTTP status with the error body. A sync submit that takes
        one of these answers the error at once with the code's HTTP status.
        """
        if shape is not None and shape not in FAILURE_SHAPES:
            raise ValueError(f"unknown failure shape {shape!r}; use one of {', '.join(FAILURE_SHAPES)}")
        return self._arm(Fault("fail_task", "task", _check_count(n), code=code, shape=shape))

    def drop_connections(self, endpoint: str, n: int, after_processing: bool = False) -> FaultPlan:
        """The next `n` requests to `endpoint` get their connection closed instead of an answer.

        The request body is read first, then the socket is closed with no status line, which
        `requests` reports as `requests.ConnectionError` (RemoteDisconnected).
        For "submit": `after_processing=False` drops before anything is created;
        `after_processing=True` creates (and later bills) the task, then drops: the ambiguous
        outcome. For "query"/"download"/"credits": `after_processing=True` sends the status line,
        headers and half of the body, then closes: `requests` raises
        `requests.exceptions.ChunkedEncodingError` (IncompleteRead) while reading the body.
        """
        return self._arm(
            Fault(
                "drop",
                _check_endpoint(endpoint),
                _check_count(n),
                after_processing=bool(after_processing),
            )
        )

    def server_errors(
        self, endpoint: str, n: int, status: int = 502, code: str = "AI_SERVICE_ERROR"
    ) -> FaultPlan:
        """The next `n` requests to `endpoint` answer `status` with the error body (plain text on the CDN).

        Nothing is created or billed for a submit answered this way.
        """
        return self._arm(Fault("server_error", _check_endpoint(endpoint), _check_count(n), status, code))

    def slow(self, endpoint: str, n: int, seconds: float) -> FaultPlan:
        """The next `n` requests to `endpoint` are processed at once but answered `seconds` later.

        A slow submit therefore creates its task even if the client times out first: a client
        read timeout on submit is an ambiguous outcome, as with the real API.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        return self._arm(Fault("slow", _check_endpoint(endpoint), _check_count(n), seconds=float(seconds)))

    def malformed_json(self, endpoint: str, n: int) -> FaultPlan:
        """The next `n` requests to `endpoint` get HTTP 200 with the real body cut in half.

        For the API endpoints that is truncated JSON (a submit's task IS created: the answer was
        mangled after processing); for "download" it is a truncated image with a matching
        Content-Length, so the HTTP exchange succeeds and decoding fails.
        """
        return self._arm(Fault("malformed", _check_endpoint(endpoint), _check_count(n)))

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    # -- inspection and consumption (used by the server) -------------------------------------

    def pending(self) -> list[dict[str, object]]:
        """The faults still armed, as dicts (tests assert this is empty when all were consumed)."""
        with self._lock:
            return [asdict(fault) for fault in self._faults]

    def take(self, kind: str, endpoint: str) -> Fault | None:
        """Consume one use of the first armed fault of `kind` for `endpoint`; None if there is none."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.kind == kind and fault.endpoint == endpoint:
                    left = fault.remaining - 1
                    if left > 0:
                        self._faults[index] = replace(fault, remaining=left)
                    else:
                        del self._faults[index]
                    return fault
        return None

    def _arm(self, fault: Fault) -> FaultPlan:
        if fault.remaining > 0:
            with self._lock:
                self._faults.append(fault)
        return self

    def __repr__(self) -> str:
        return f"FaultPlan({self.pending()!r})"
