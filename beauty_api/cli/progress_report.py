"""What `retouch` says while and after it works: per-image lines, the interrupt note, the summary.

On a terminal (without -v) one live status line (live_status.py) replaces the per-image stage
lines; logs and pipes get the line-based form. Either way, every retry and every upload that had
to be shrunk gets one line of its own, and the summary gives the total time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..clock import DEFAULT_CLOCK, Clock
from ..errors import ImageError, NotSent, group_by_message, name_images
from .live_status import BatchCounts, LiveStatus, format_duration, status_text
from .output import EXIT_FAILED, EXIT_OK, err, one_line, out
from .output_paths import save_atomically
from .retouch_job import RetouchJob

if TYPE_CHECKING:
    from ..run.backend import RetouchOutcome
    from ..run.batch import BatchResult
    from ..run.progress_events import Progress, ResizeNotice, RetryNotice


_STAGE_TEXT = {
    "cached": "from the result cache (no credits)",
    "resumed": "resuming a task paid earlier",
    "submitting": "submitting",
    "queued": "queued",
    "processing": "processing",
    "downloading": "downloading",
}


class BatchReporter:
    """Progress on stderr and result files on disk, as each image moves on (worker threads).

    `live`: keep one status line up to date instead of printing each image's stages (use it only
    when stderr is a terminal); `tick_seconds` is how often that line is redrawn between events.
    """

    def __init__(
        self,
        job: RetouchJob,
        *,
        live: bool = False,
        clock: Clock = DEFAULT_CLOCK,
        tick_seconds: float | None = 1.0,
    ) -> None:
        self.job = job
        self.total = len(job.inputs)
        self.clock = clock
        self.started_at = clock.monotonic()
        self.lock = threading.Lock()
        self.stage: dict[int, str] = {}
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.failed: set[int] = set()
        self.credits = 0
        self.task_shown: set[int] = set()
        self.written: dict[int, Path] = {}
        self.write_errors: dict[int, str] = {}
        self.not_sent: set[int] = set()
        self.live = LiveStatus(self.status_text, tick_seconds) if live else None

    def start(self) -> None:
        if self.live is not None:
            self.live.start()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()

    def elapsed(self) -> float:
        return self.clock.monotonic() - self.started_at

    def status_text(self) -> str:
        with self.lock:
            failed = len(self.failed) + len(self.write_errors)
            counts = BatchCounts(
                total=self.total,
                done=len(self.finished) - failed,
                in_flight=len(self.started - self.finished),
                failed=failed,
                credits=self.credits,
            )
        return status_text(counts, self.elapsed())

    def _prefix(self, index: int) -> str:
        return f"[{index + 1}/{self.total}] {self.job.inputs[index].name}"

    def on_progress(self, progress: Progress) -> None:
        if progress.retry is not None:
            err(f"{self._prefix(progress.index)}: {retry_text(progress.retry)}")
        if progress.resize is not None:
            err(f"{self._prefix(progress.index)}: {resize_text(progress.resize)}")
        text = _STAGE_TEXT.get(progress.stage)
        with self.lock:
            if progress.stage == "not_sent":
                self.not_sent.add(progress.index)
            if progress.stage in ("submitting", "resumed"):
                self.started.add(progress.index)
            if text is None or self.stage.get(progress.index) == progress.stage:
                return
            self.stage[progress.index] = progress.stage
            first_id = progress.task_id is not None and progress.index not in self.task_shown
            if first_id:
                self.task_shown.add(progress.index)
        if self.live is not None:
            self.live.refresh()
            return
        task = f" (task {progress.task_id})" if first_id else ""
        err(f"{self._prefix(progress.index)}: {text}{task} {progress.elapsed:.1f} s")

    def on_item_done(self, index: int, outcome: RetouchOutcome | None) -> None:
        with self.lock:
            self.finished.add(index)
            if outcome is None:
                self.failed.add(index)
            else:
                self.credits += outcome.credits_spent
        if outcome is None:
            with self.lock:
                sent = index not in self.not_sent
            self._say(f"{self._prefix(index)}: {'failed' if sent else 'not sent'}")
            return
        target = self.job.outputs[index]
        try:
            save_atomically(target, outcome.image)
        except (OSError, ImageError) as error:
            with self.lock:
                self.write_errors[index] = f"cannot write {target}: {one_line(error)}"
            self._say(f"{self._prefix(index)}: {outcome.origin}, but writing {target} failed")
            return
        with self.lock:
            self.written[index] = target
        credits = f", {outcome.credits_spent} credits" if outcome.credits_spent else ""
        credits += f", {outcome.note}" if outcome.note else ""  # the local engine's "no face"
        self._say(
            f"{self._prefix(index)}: done ({outcome.origin}, {outcome.seconds:.1f} s{credits}) -> {target}"
        )

    def _say(self, line: str) -> None:
        """A per-image line: printed in line mode; on a terminal the live line shows it instead."""
        if self.live is None:
            err(line)
        else:
            self.live.refresh()

    def unfinished_started(self) -> int:
        """Images whose task was submitted or resumed but not finished: the journal holds them."""
        with self.lock:
            return len(self.started - self.finished)


def retry_text(retry: RetryNotice) -> str:
    """`submit failed (connection refused), attempt 1 of 5; next try in 2.0 s`."""
    what = retry.operation or "request"
    return (
        f"{what} failed ({retry.reason}), attempt {retry.attempt} of {retry.max_attempts}; "
        f"next try in {retry.next_try_s:.1f} s"
    )


def resize_text(resize: ResizeNotice) -> str:
    """`5000x3000 is over the API's limits (4095 px a side, 2 MB): sent as 4095x2457, ...`."""
    (width, height), (sent_w, sent_h) = resize.source_size, resize.sent_size
    after = (
        f"the result is scaled back to {width}x{height}"
        if resize.scaled_back
        else "the result keeps that size (--keep-size)"
    )
    return f"{width}x{height} is over the API's limits (4095 px a side, 2 MB): sent as {sent_w}x{sent_h}, {after}"


def report_interrupt(reporter: BatchReporter, mode: str) -> None:
    in_flight = reporter.unfinished_started()
    written = len(reporter.written)
    done = f"{written} finished image(s) were written; " if written else ""
    if mode == "sync":
        sent = (
            f"{in_flight} image(s) had been sent: their answers were waited for and kept in the result cache "
            "(or, where none came, recorded as sent, answer not received, so a re-run does not pay again); "
            if in_flight
            else ""
        )
        err(
            f"interrupted: {done}{sent}images not yet sent were not sent; re-run the same command to retouch "
            "the rest (answered ones come from the result cache)."
        )
    elif in_flight:
        err(
            f"interrupted: {done}{in_flight} image(s) were in flight; every task already submitted is recorded "
            "in the task journal, so re-running the same command resumes it without paying again."
        )
    else:
        err(f"interrupted: {done}no task was in flight, so nothing more was paid.")


def report_result(job: RetouchJob, reporter: BatchReporter, result: BatchResult) -> int:
    for index in sorted(reporter.written):
        out(str(reporter.written[index]))
    failed = [(f.index, f.error) for f in result.failures if not isinstance(f.error, NotSent)]
    codes = {f.index: f.code for f in result.failures}
    lines = [
        (indices, _failure_text(codes[indices[0]], text))
        for text, indices in group_by_message(failed).items()
    ]
    lines += [([index], text) for index, text in reporter.write_errors.items()]
    for indices, text in sorted(lines):  # one refusal of the key is said once, not once per image
        names = f" ({job.inputs[indices[0]].name})" if len(indices) == 1 else ""
        err(f"error: {name_images(indices, offset=1)}{names}: {text}")
    failures = [*failed, *reporter.write_errors.items()]
    not_sent = result.not_sent
    if not_sent:
        err(
            f"not sent: {name_images(not_sent, offset=1)}: the batch stopped at the error above, which every "
            "image would get; nothing was paid for them. Fix it, then re-run the same command."
        )
    err(summary_line(result, len(failures), reporter.elapsed(), len(not_sent)))
    return EXIT_FAILED if failures or not_sent else EXIT_OK


def _failure_text(code: str, error: object) -> str:
    """The error on one line, led by its code unless the text already names it."""
    text = one_line(error)
    return text if not code or code in text else f"{code}: {text}"


def summary_line(result: BatchResult, failed: int, seconds: float, not_sent: int = 0) -> str:
    counts = result.counts()
    skipped = f", {not_sent} not sent" if not_sent else ""
    local = f"{counts['local']} local, " if counts.get("local") else ""
    return (
        f"summary: {len(result.outcomes)} image(s): {local}{counts['new']} new, {counts['cached']} cached, "
        f"{counts['resumed']} resumed, {failed} failed{skipped}; {result.credits_spent} credits spent; "
        f"{format_duration(seconds)} in all"
    )


def describe_settings(job: RetouchJob, backend: str, max_faces: int | None = None) -> str:
    """The one line `retouch` prints before it starts: every setting it will use, defaults included
    (a slider left at its default of 50 still changes the picture: set it to 0 to leave it off)."""
    from ..params import SLIDER_NAMES, filter_name

    params = job.params
    sliders = " ".join(f"{name}={getattr(params, name)}" for name in SLIDER_NAMES)
    look = (
        "none" if params.filter_type is None else f"{params.filter_type} ({filter_name(params.filter_type)})"
    )
    faces = "" if max_faces is None else f" max_faces={max_faces}"
    return f"settings ({backend}): {sliders} filter={look}{faces} (a control at 0 is off)"
