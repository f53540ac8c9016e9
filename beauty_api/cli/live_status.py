"""The one live status line `retouch` keeps at the bottom of a terminal while a batch runs.

`7/20 done, 3 in flight, 1 failed, 105 credits, 41 s elapsed, ETA 1 min 18 s`: redrawn on each
event and once a second, so elapsed time and ETA move even while every task is processing.
Lines printed meanwhile (retries, resized uploads, warnings) appear above it (output.err).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from .output import end_live, show_live


@dataclass(frozen=True)
class BatchCounts:
    """Where a batch stands."""

    total: int
    done: int
    in_flight: int
    failed: int
    credits: int


def format_duration(seconds: float) -> str:
    """4.2 s, 12 s, 3 min 05 s, 1 h 02 min."""
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def status_text(counts: BatchCounts, elapsed: float) -> str:
    """The live line. ETA: the average time per finished image so far, times the images left
    (with several in flight at once that is the batch's throughput, not one image's time)."""
    finished = counts.done + counts.failed
    left = counts.total - finished
    if left <= 0:
        eta = "finishing"
    elif finished == 0:
        eta = "ETA after the first image"
    else:
        eta = f"ETA {format_duration(elapsed / finished * left)}"
    return (
        f"{counts.done}/{counts.total} done, {counts.in_flight} in flight, {counts.failed} failed, "
        f"{counts.credits} credits, {format_duration(elapsed)} elapsed, {eta}"
    )


class LiveStatus:
    """Keeps the live line drawn: `refresh()` on every event, and a ticker thread in between."""

    def __init__(self, text: Callable[[], str], tick_seconds: float | None = 1.0) -> None:
        self._text = text
        self._tick_seconds = tick_seconds
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        self.refresh()
        if self._tick_seconds is not None:
            self._ticker = threading.Thread(
                target=self._tick, args=(self._tick_seconds,), name="face-beauty-status", daemon=True
            )
            self._ticker.start()

    def refresh(self) -> None:
        if not self._stopped.is_set():
            show_live(self._text())

    def stop(self) -> None:
        self._stopped.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        end_live()

    def _tick(self, seconds: float) -> None:
        while not self._stopped.wait(seconds):
            self.refresh()
