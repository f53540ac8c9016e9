"""One image's way through ApiBackend: its progress events, cancel hook and concurrency slots.

Kept apart from backend.py so the pipeline there reads as the steps of "never pay twice", and
this as what every step reports and waits on.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from ..errors import RATE_LIMIT_CODES, ApiError
from .progress_events import Progress, ProgressCallback, RetryNotice, operation_name, retry_reason

if TYPE_CHECKING:
    from ..api.retry_policy import RetryEvent
    from ..clock import CancelCheck, Clock
    from .concurrency import AdaptiveLimiter


class ImageRun:
    """The per-image context: progress reporting, cancel hook and the batch's concurrency limiter."""

    def __init__(
        self,
        clock: Clock,
        index: int,
        started: float,
        on_progress: ProgressCallback | None,
        check_cancel: CancelCheck | None,
        limiter: AdaptiveLimiter | None,
    ) -> None:
        self.clock = clock
        self.index = index
        self.started = started
        self.on_progress = on_progress
        self.check_cancel = check_cancel
        self.limiter = limiter

    def elapsed(self) -> float:
        return self.clock.monotonic() - self.started

    def emit(self, stage: str, task_id: str | None = None, *, expected: float | None = None) -> None:
        self.send(Progress(self.index, stage, task_id, self.elapsed(), expected=expected))

    def send(self, progress: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(progress)

    def hold_local_work(self) -> None:
        """Hold one of the batch's permits for image work, if the batch has a gate (see `retouch`)."""
        gate = None if self.limiter is None else self.limiter.local_work
        if gate is not None:
            gate.hold(self.check_cancel)

    def in_flight(self) -> AbstractContextManager[None]:
        """Hold one of the limiter's slots (waiting, cancellably, for one to free up)."""
        return nullcontext() if self.limiter is None else self.limiter.slot(self.check_cancel)

    def on_retry(self, event: RetryEvent) -> None:
        """Called by the transport before each backoff: tell the limiter when the API says slow
        down, and the display what failed and when the next try is."""
        error = event.error
        rate_limited = isinstance(error, ApiError) and error.code in RATE_LIMIT_CODES
        if self.limiter is not None and rate_limited:
            self.limiter.on_rate_limited()
        notice = RetryNotice(
            event.attempt,
            event.max_attempts,
            retry_reason(error),
            event.delay,
            operation_name(event.operation),
        )
        self.send(Progress(self.index, "retrying", None, self.elapsed(), retry=notice))
