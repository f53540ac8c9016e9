"""What `retouch` says while and after it works: per-image lines, the interrupt note, the summary."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ImageError
from .output import EXIT_FAILED, EXIT_OK, err, one_line, out
from .output_paths import save_atomically
from .retouch_job import RetouchJob

if TYPE_CHECKING:
    from ..backend import Progress, RetouchOutcome
    from ..batch import BatchResult


_STAGE_TEXT = {
    "cached": "from the result cache (no credits)",
    "resumed": "resuming a task paid earlier",
    "submitting": "submitting",
    "queued": "queued",
    "processing": "processing",
    "downloading": "downloading",
}


class BatchReporter:
    """Progress lines on stderr and result files on disk, as each image moves on (worker threads)."""

    def __init__(self, job: RetouchJob) -> None:
        self.job = job
        self.total = len(job.inputs)
        self.lock = threading.Lock()
        self.stage: dict[int, str] = {}
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.task_shown: set[int] = set()
        self.written: dict[int, Path] = {}
        self.write_errors: dict[int, str] = {}

    def _prefix(self, index: int) -> str:
        return f"[{index + 1}/{self.total}] {self.job.inputs[index].name}"

    def on_progress(self, progress: Progress) -> None:
        text = _STAGE_TEXT.get(progress.stage)
        with self.lock:
            if progress.stage in ("submitting", "resumed"):
                self.started.add(progress.index)
            if text is None or self.stage.get(progress.index) == progress.stage:
                return
            self.stage[progress.index] = progress.stage
            first_id = progress.task_id is not None and progress.index not in self.task_shown
            if first_id:
                self.task_shown.add(progress.index)
        task = f" (task {progress.task_id})" if first_id else ""
        err(f"{self._prefix(progress.index)}: {text}{task} {progress.elapsed:.1f} s")

    def on_item_done(self, index: int, outcome: RetouchOutcome | None) -> None:
        with self.lock:
            self.finished.add(index)
        if outcome is None:
            err(f"{self._prefix(index)}: failed")
            return
        target = self.job.outputs[index]
        try:
            save_atomically(target, outcome.image)
        except (OSError, ImageError) as error:
            with self.lock:
                self.write_errors[index] = f"cannot write {target}: {one_line(error)}"
            err(f"{self._prefix(index)}: {outcome.origin}, but writing {target} failed")
            return
        with self.lock:
            self.written[index] = target
        credits = f", {outcome.credits_spent} credits" if outcome.credits_spent else ""
        err(f"{self._prefix(index)}: done ({outcome.origin}, {outcome.seconds:.1f} s{credits}) -> {target}")

    def unfinished_started(self) -> int:
        """Images whose task was submitted or resumed but not finished: the journal holds them."""
        with self.lock:
            return len(self.started - self.finished)


def report_interrupt(reporter: BatchReporter, mode: str) -> None:
    in_flight = reporter.unfinished_started()
    written = len(reporter.written)
    done = f"{written} finished image(s) were written; " if written else ""
    if mode == "sync":
        err(
            f"interrupted: {done}{in_flight} image(s) not yet sent were cancelled, so nothing was paid for them; "
            "re-run the same command to retouch the rest (finished ones come from the result cache)."
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
    failures = [(f.index, f"{f.code}: {one_line(f.error)}") for f in result.failures]
    failures += list(reporter.write_errors.items())
    for index, text in sorted(failures):
        err(f"error: image {index + 1} ({job.inputs[index].name}): {text}")
    err(summary_line(result, len(failures)))
    return EXIT_FAILED if failures else EXIT_OK


def summary_line(result: BatchResult, failed: int) -> str:
    counts = result.counts()
    return (
        f"summary: {len(result.outcomes)} image(s): {counts['new']} new, {counts['cached']} cached, "
        f"{counts['resumed']} resumed, {failed} failed; {result.credits_spent} credits spent"
    )
