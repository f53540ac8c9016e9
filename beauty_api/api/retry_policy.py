"""When to try an HTTP request again: backoff with jitter, Retry-After, the least time worth an attempt.

Pure policy (no I/O): `transport.Transport`'s retry loop asks it how long to wait and whether
another attempt still fits in the deadline.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ..errors import InvalidParameterError

# The least time worth starting a request with: a query or download with less would only time out.
MIN_ATTEMPT_SECONDS = 1.0
# A submit needs more: cutting its read short turns a normal answer into an unknown (maybe paid) outcome.
MIN_SUBMIT_SECONDS = 5.0


@dataclass(frozen=True)
class RetryEvent:
    """A failed attempt about to be tried again: what the retry loop tells `on_retry` hooks."""

    operation: str  # what failed: "submit", "status check", "result download", ...
    error: BaseException  # why (its text may be long; see backend for a one-line reason)
    attempt: int  # the attempt that failed, counted from 1
    max_attempts: int
    delay: float  # seconds until the next attempt


RetryHook = Callable[[RetryEvent], None]


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


# The longest Retry-After honoured (as ComfyUI core caps it): a server asking for an hour must not
# hold a batch, or a journal claim, that long; one more attempt after 150 s is cheap (refusals are free).
MAX_RETRY_AFTER = 150.0


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


@dataclass
class RetryableFailure:
    """One failed attempt that may be retried, and how long the server asked us to wait."""

    error: BaseException
    retry_after: float | None = None
