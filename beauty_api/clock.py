"""Time as a dependency: waiting code takes a Clock so tests can advance time instead of sleeping.

Also the one place that turns a cancel hook into an exception, so every wait in the package
reacts to Cancel the same way and within `CANCEL_CHECK_INTERVAL` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from .errors import RetouchCancelled

CANCEL_CHECK_INTERVAL = 0.25

CancelCheck = Callable[[], object]


class Clock(Protocol):
    """Monotonic time and sleeping; the only source of either in this package."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock for tests: `sleep` advances time at once; safe to share between threads."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if seconds > 0:
                self._now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def check_cancel(hook: CancelCheck | None) -> None:
    """Call the cancel hook: it may raise its own exception, or return truthy to cancel."""
    if hook is not None and hook():
        raise RetouchCancelled("Cancelled before the result was ready; a re-run resumes the paid task.")


def sleep_interruptibly(clock: Clock, seconds: float, hook: CancelCheck | None) -> None:
    """Sleep `seconds` in short slices, checking the cancel hook before each one."""
    end = clock.monotonic() + seconds
    while True:
        check_cancel(hook)
        left = end - clock.monotonic()
        if left <= 0:
            return
        clock.sleep(min(left, CANCEL_CHECK_INTERVAL))


DEFAULT_CLOCK = SystemClock()


class Deadline:
    """An overall time budget shared by every step of one retouch (submit, polls, download)."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.expires_at = clock.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - self.clock.monotonic())

    def expired(self) -> bool:
        return self.clock.monotonic() >= self.expires_at
