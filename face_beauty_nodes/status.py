"""What the Face Beauty Pro node shows: its progress bar and its text, in every state.

`NodeStatus` turns the batch's progress events (beauty_api.run.progress_events.Progress, from worker
threads) and the run's end (a BatchResult, a cancel, an error) into a `StatusView`: a bar
position and a few short lines. It is plain Python (no ComfyUI), so every state is tested
with synthetic events; `StatusPublisher` pushes the view to ComfyUI through bridge.py.

Rules the text follows: images are numbered from 1; lines stay short, so the node
never wraps mid-phrase at 100% zoom; a failed or unsent image never moves the bar as if it
were done; credits are worded so that the text stays true when ComfyUI later re-serves the
node's output from its own cache ("paid N credits when made", "this run" only for 0).
"""

from __future__ import annotations

import logging
import math
import textwrap
import threading
from dataclasses import dataclass, field

from ..beauty_api.clock import DEFAULT_CLOCK, Clock
from ..beauty_api.run.backend import RetouchOutcome
from ..beauty_api.run.batch import ORIGINS, BatchResult
from ..beauty_api.run.progress_events import Progress, RetryNotice
from . import bridge

log = logging.getLogger("beauty_api.nodes.status")  # one logger tree for the pack

# The bar counts this many steps per image, so it moves through the stages of a single image.
STEPS_PER_IMAGE = 100
# Where each stage puts an image's part of the bar. Processing moves on from its start towards
# PROCESSING_END as time passes (against the expected duration, or a guess without one).
STAGE_STEPS = {
    "encoding": 5,
    "resumed": 15,
    "submitting": 10,
    "queued": 20,
    "processing": 25,
    "downloading": 90,
    "cached": 100,
    "done": 100,
}
PROCESSING_END = 85
# Without an estimate from the API, processing is assumed to take about this long (seconds).
DEFAULT_EXPECTED_SECONDS = 10.0
# Longest text line; ComfyUI's node is ~340 px wide, about 45 characters of its font.
LINE_WIDTH = 40
# At most this many images are described one by one while a batch runs.
SHOWN_IMAGES = 3
# An error that stopped the run gets this many lines (the error dialog has the whole message).
ERROR_LINES = 6
CANCELLED_LINES = ("cancelled", "queue again to resume", "without paying")
RETRY_LINE = "queue again to retry"  # the node's last line after images were passed through
REQUEUE_RETRIES = (
    "queue again to retry the failed image(s); the others come back from the result cache, 0 credits"
)
REQUEUE_KEEPS = (
    "use_cache is off, so a re-queue keeps this output (a retry would pay for every image again); "
    "turn use_cache on to retry only the failed image(s)"
)


@dataclass
class _Image:
    """What is known about one image of the batch."""

    stage: str = "waiting"
    since: float = 0.0  # when this stage began, on the display's clock
    step: int = 0  # its bar steps while running (never lowered by a repeated event)
    expected: float | None = None
    retry: RetryNotice | None = None
    reason: str | None = None


@dataclass(frozen=True)
class StatusView:
    """One frame of the node's display."""

    value: int  # bar position, 0..total
    total: int
    lines: tuple[str, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class NodeStatus:
    """The node's state for one run; events may come from any thread, `view()` from one."""

    def __init__(self, total: int, clock: Clock = DEFAULT_CLOCK) -> None:
        self.total = total
        self.clock = clock
        self.started = clock.monotonic()
        self._lock = threading.Lock()
        self._images = [_Image(since=self.started) for _ in range(total)]
        self._ended: float | None = None
        self._final: tuple[str, ...] | None = None

    # -- events (any thread) ------------------------------------------------------------------

    def on_progress(self, progress: Progress) -> None:
        """Record a stage of one image; a repeated stage (each poll) keeps when it began."""
        if not 0 <= progress.index < self.total:
            return
        now = self.clock.monotonic()
        with self._lock:
            image = self._images[progress.index]
            if progress.stage != image.stage or progress.stage == "retrying":
                image.since = now
            image.stage = progress.stage
            image.retry = progress.retry
            if progress.expected is not None:
                image.expected = progress.expected
            if progress.reason:
                image.reason = one_line(progress.reason)
            image.step = max(image.step, STAGE_STEPS.get(progress.stage, 0))

    def on_item_done(self, index: int, outcome: RetouchOutcome | None) -> None:
        """The batch's per-image end: an outcome, or None for a failure."""
        if not 0 <= index < self.total:
            return
        with self._lock:
            image = self._images[index]
            if outcome is not None:
                image.stage = "cached" if outcome.origin == "cached" else "done"
                image.step = STEPS_PER_IMAGE
            elif image.stage != "not_sent":
                image.stage = "failed"

    def finish(
        self, result: BatchResult, passed_through: bool = False, retry_on_requeue: bool = False
    ) -> None:
        """The batch ended: per-image results, failures with their reasons, and the summary."""
        for index, outcome in enumerate(result.outcomes):
            if outcome is not None:
                self.on_item_done(index, outcome)
        with self._lock:
            for failure in result.failures:
                if 0 <= failure.index < self.total:
                    image = self._images[failure.index]
                    if image.stage != "not_sent":
                        image.stage = "failed"
                    image.reason = image.reason or one_line(str(failure.error))
            self._final = self._summary(result, passed_through, retry_on_requeue)
            self._ended = self.clock.monotonic()

    def cancelled(self) -> None:
        """Cancel was pressed: paid tasks stay in the journal and a re-run resumes them."""
        with self._lock:
            self._final = CANCELLED_LINES
            self._ended = self.clock.monotonic()

    def stopped(self, message: str) -> None:
        """The run stopped on an error (a missing key, a bad value, a failed batch...)."""
        with self._lock:
            if self._final is None or not any(i.stage in ("failed", "not_sent") for i in self._images):
                self._final = ("error", *wrap(one_line(message), max_lines=ERROR_LINES))
            self._ended = self.clock.monotonic()

    # -- the view (the node's event loop) ------------------------------------------------------

    def view(self) -> StatusView:
        with self._lock:
            now = self.clock.monotonic() if self._ended is None else self._ended
            value = sum(self._bar_step(image, now) for image in self._images)
            lines = self._final or self._running_lines(now)
        return StatusView(value, self.total * STEPS_PER_IMAGE, tuple(lines))

    def _bar_step(self, image: _Image, now: float) -> int:
        if image.stage in ("failed", "not_sent"):
            return 0  # never "done": the bar shows only what was really achieved
        if image.stage == "processing":
            expected = image.expected or DEFAULT_EXPECTED_SECONDS
            share = min(1.0, (now - image.since) / expected) if expected > 0 else 1.0
            start = STAGE_STEPS["processing"]
            return max(image.step, start + int((PROCESSING_END - start) * share))
        return image.step

    def _running_lines(self, now: float) -> list[str]:
        seconds = int(now - self.started)
        if self.total == 1:
            image = self._images[0]
            if image.stage == "waiting":
                return [f"starting · {seconds} s"]
            return [*stage_lines(image, now), f"{seconds} s so far"]
        finished = sum(1 for image in self._images if image.stage in ("done", "cached"))
        lines = [f"{finished} of {self.total} done · {seconds} s"]
        active = [
            (number, image)
            for number, image in enumerate(self._images, start=1)
            if image.stage not in ("waiting", "done", "cached")
        ]
        for number, image in active[:SHOWN_IMAGES]:
            lines.append(f"image {number}: {compact_stage(image, now)}")
        if len(active) > SHOWN_IMAGES:
            lines.append(f"+{len(active) - SHOWN_IMAGES} more")
        return lines

    def _summary(self, result: BatchResult, passed_through: bool, retry: bool) -> tuple[str, ...]:
        seconds = int(self.clock.monotonic() - self.started)
        counts = result.counts()
        failed = [(n, i) for n, i in enumerate(self._images, start=1) if i.stage == "failed"]
        unsent = [(n, i) for n, i in enumerate(self._images, start=1) if i.stage == "not_sent"]
        if (failed or unsent) and not passed_through:
            return self._failure_lines(seconds, counts, failed, unsent)
        parts = [f"{counts[origin]} {origin}" for origin in ORIGINS if counts[origin]]
        if failed or unsent:
            parts.append(f"{len(failed) + len(unsent)} passed through")
        lines = [f"done · {', '.join(parts) or 'nothing to do'} · {seconds} s", credit_line(result)]
        for number, image in (failed + unsent)[:SHOWN_IMAGES]:
            lines += wrap(f"image {number}: {image.reason or image.stage}")
        if (failed or unsent) and retry:
            lines.append(RETRY_LINE)
        return tuple(lines)

    def _failure_lines(
        self,
        seconds: int,
        counts: dict[str, int],
        failed: list[tuple[int, _Image]],
        unsent: list[tuple[int, _Image]],
    ) -> tuple[str, ...]:
        if self.total == 1:
            image = (failed or unsent)[0][1]
            head = "failed" if failed else "not sent"
            return (f"{head} · {seconds} s", *wrap(image.reason or "see the error"))
        done = sum(counts.values())
        parts = [f"{done} of {self.total} done", f"{len(failed)} failed"]
        if unsent:
            parts.append(f"{len(unsent)} not sent")
        lines = [" · ".join(parts)]
        described = [(n, "failed", i) for n, i in failed] + [(n, "not sent", i) for n, i in unsent]
        for number, what, image in described[:SHOWN_IMAGES]:
            lines += wrap(f"image {number} {what}: {image.reason or 'see the error'}")
        if len(described) > SHOWN_IMAGES:
            lines.append(f"+{len(described) - SHOWN_IMAGES} more")
        return tuple(lines)


def stage_lines(image: _Image, now: float) -> list[str]:
    """A single image's stage, in full (one image: there is room for it)."""
    in_stage = int(now - image.since)
    if image.stage == "retrying" and image.retry is not None:
        retry = image.retry
        countdown = retry_countdown(retry, now - image.since)
        following = f"next try in {countdown} s" if countdown else "trying again now"
        return [
            f"attempt {retry.attempt} of {retry.max_attempts} failed:",
            *wrap(one_line(retry.reason)),
            following,
        ]
    if image.stage == "processing":
        if image.expected:
            return [f"processing {in_stage} s of ~{math.ceil(image.expected)} s"]
        return [f"processing {in_stage} s"]
    if image.stage == "queued":
        return [f"submitted, queued {in_stage} s"]
    return [STAGE_WORDS.get(image.stage, image.stage)]


def compact_stage(image: _Image, now: float) -> str:
    """One image's stage in a few words, for one line of a batch."""
    in_stage = int(now - image.since)
    if image.stage == "retrying" and image.retry is not None:
        retry = image.retry
        countdown = retry_countdown(retry, now - image.since)
        when = f"in {countdown} s" if countdown else "now"
        return f"retry {retry.attempt + 1}/{retry.max_attempts} {when}"
    if image.stage == "processing":
        expected = f"/~{math.ceil(image.expected)}" if image.expected else ""
        return f"processing {in_stage}{expected} s"
    if image.stage in ("failed", "not_sent"):
        return STAGE_WORDS[image.stage]
    return STAGE_WORDS.get(image.stage, image.stage)


STAGE_WORDS = {
    "encoding": "encoding",
    "submitting": "submitting",
    "resumed": "resuming a paid task",
    "queued": "queued",
    "processing": "processing",
    "retrying": "retrying",
    "downloading": "downloading",
    "done": "done",
    "cached": "from cache",
    "failed": "failed",
    "not_sent": "not sent",
}


def retry_countdown(retry: RetryNotice, since_notice: float) -> int:
    return max(0, math.ceil(retry.next_try_s - since_notice))


def credit_line(result: BatchResult) -> str:
    """Credits, worded to stay true when ComfyUI later re-serves this output from its cache."""
    if result.credits_spent:
        return f"paid {result.credits_spent} credits when made"
    return "0 credits this run"


def one_line(text: str) -> str:
    """The first line of a message, whitespace collapsed (the error dialog has the rest)."""
    first = next((line for line in text.strip().splitlines() if line.strip()), "")
    return " ".join(first.split())


def wrap(text: str, width: int = LINE_WIDTH, max_lines: int = 4) -> list[str]:
    """Short lines at word boundaries, so the node never breaks "3 s" or "image 1" apart."""
    lines = textwrap.wrap(text, width=width, break_long_words=True) or [""]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], textwrap.shorten(" ".join(lines[max_lines - 1 :]), width)]
    return lines


def report_text(result: BatchResult, passed_through: bool, retry_on_requeue: bool = False) -> str:
    """The node's `report` output: one line per image (numbered from 1), the total, and what a
    re-queue does about images passed through.

    Worded like the node's text: "paid ... when made" stays true when ComfyUI re-serves it.
    """
    failed = {failure.index: failure for failure in result.failures}
    lines = []
    for index, outcome in enumerate(result.outcomes):
        number = index + 1
        if outcome is None:
            failure = failed.get(index)
            detail = f"{failure.code}: {one_line(str(failure.error))}" if failure else "not retouched"
            unchanged = " (passed through unchanged)" if passed_through else ""
            lines.append(f"image {number}: FAILED{unchanged} {detail}")
            continue
        if outcome.origin == "local":  # the offline engine: no task, never paid
            lines.append(f"image {number}: local, {outcome.note}, {outcome.seconds:.2f} s, 0 credits")
            continue
        task = f"task {outcome.task_id}" if outcome.task_id else "no task"
        paid = (
            f"paid {outcome.credits_spent} credits when made"
            if outcome.credits_spent
            else "0 credits (paid before)"
        )
        lines.append(f"image {number}: {outcome.origin}, {task}, {outcome.seconds:.1f} s, {paid}")
    counts = result.counts()
    local = f"{counts['local']} local, " if counts["local"] else ""
    lines.append(
        f"total: {len(result.outcomes)} image(s): {local}{counts['new']} new, {counts['cached']} cached, "
        f"{counts['resumed']} resumed, {len(result.failures)} failed; {credit_line(result)}"
    )
    if result.failures and passed_through:
        lines.append(REQUEUE_RETRIES if retry_on_requeue else REQUEUE_KEEPS)
    return "\n".join(lines)


class StatusPublisher:
    """Pushes a NodeStatus to ComfyUI (bar and text), only when something changed."""

    def __init__(self, status: NodeStatus, node_id: str | None) -> None:
        self.status = status
        self.node_id = node_id
        self._bar = bridge.progress_bar(status.total * STEPS_PER_IMAGE, node_id)
        self._shown_value = -1
        self._shown_text = ""

    def publish(self, bar: bool = True) -> None:
        """Send the current view. ComfyUI's bar hook may raise its interrupt: that propagates.

        The text goes first, so a final state is shown even when the bar hook raises.
        """
        view = self.status.view()
        if view.text != self._shown_text:
            self._shown_text = view.text
            bridge.send_progress_text(view.text, self.node_id)
        if bar and view.value != self._shown_value:
            self._shown_value = view.value
            try:
                self._bar.update_absolute(view.value, view.total)
            except Exception as error:
                if bridge.is_interrupt(error):
                    raise
                log.debug("progress bar update failed: %s", error)

    def publish_final(self) -> None:
        """The last frame after a cancel or an error: text only, never raising."""
        try:
            self.publish(bar=False)
        except Exception as error:  # a display hiccup must not replace the real error
            log.debug("final progress text failed: %s", error)


__all__ = (
    "STEPS_PER_IMAGE",
    "NodeStatus",
    "StatusPublisher",
    "StatusView",
    "report_text",
)
