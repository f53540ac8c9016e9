"""How many images are being decoded, encoded or written on this machine at once: a few.

A batch's threads outnumber its tasks in flight (the spares prepare the next images), and each
image being decoded or encoded briefly needs several full-size copies of itself. Letting every
thread do that at once makes the peak memory grow with the concurrency and the image size, for no
speed-up beyond the number of cores. `LocalWorkGate` hands out a few permits; a thread holds one
from loading an input until its upload is encoded, and again while a result is decoded and
written, never while waiting for the API (`AdaptiveLimiter.slot` lets go of it first).

A permit belongs to a thread, so the batch can take one before loading an image and the backend
can end it after encoding, without either knowing what the other did.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .. import clock as _clock
from ..clock import CANCEL_CHECK_INTERVAL, CancelCheck

MAX_DEFAULT_PERMITS = 4


def default_permits(concurrency: int) -> int:
    """Enough to keep the cores busy and the next wave ready: 2..4, never more than needed."""
    return max(2, min(os.cpu_count() or 2, concurrency, MAX_DEFAULT_PERMITS))


class LocalWorkGate:
    """At most `permits` threads doing image work at once; each thread holds at most one permit."""

    def __init__(self, permits: int) -> None:
        self.permits = permits
        self._semaphore = threading.BoundedSemaphore(permits)
        self._mine = threading.local()

    def holding(self) -> bool:
        """Whether the calling thread holds a permit."""
        return getattr(self._mine, "held", False)

    def hold(self, check_cancel: CancelCheck | None = None) -> None:
        """Take a permit for this thread (no-op if it has one); waits, checking the cancel hook."""
        if self.holding():
            return
        while True:
            _clock.check_cancel(check_cancel)
            if self._semaphore.acquire(timeout=CANCEL_CHECK_INTERVAL):
                self._mine.held = True
                return

    def release(self) -> None:
        """Give this thread's permit back (no-op if it has none)."""
        if self.holding():
            self._mine.held = False
            self._semaphore.release()

    @contextmanager
    def working(self, check_cancel: CancelCheck | None = None) -> Iterator[None]:
        """Hold a permit for the body (continuing one already held), and give it back after."""
        self.hold(check_cancel)
        try:
            yield
        finally:
            self.release()
