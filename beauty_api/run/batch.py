"""Retouching many images: bounded, adaptive concurrency; order kept; one failure never hides the rest.

Every image runs to its own end: a failed image is reported with its index, code and
message while the others finish, so their paid results are kept (and cached). A cancel is
different: it stops every image at once and propagates the caller's own exception, because
ComfyUI's interrupt flag is reset by the first check that sees it and the other workers
must stop too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from ..clock import CancelCheck, check_cancel
from ..codec import SourceImage
from ..errors import BatchFailed, BeautyError, NotSent, RetouchCancelled, is_account_error
from ..params import BeautyParams
from .backend import DEFAULT_OPTIONS, RetouchBackend, RetouchOptions, RetouchOutcome
from .concurrency import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    AdaptiveLimiter,
    LimiterClosed,
    check_concurrency,
)
from .local_work import LocalWorkGate, default_permits
from .progress_events import Progress, ProgressCallback

__all__ = ["DEFAULT_CONCURRENCY", "MAX_CONCURRENCY", "BatchResult", "ItemFailure", "retouch_batch"]
ORIGINS = ("new", "cached", "resumed", "local")  # "local": the offline engine (beauty_api.local)
# The image of an outcome handed to `on_item_done` and then let go (`keep_images=False`).
RELEASED_IMAGE = np.empty((0, 0, 3), dtype=np.uint8)
RELEASED_IMAGE.setflags(write=False)


@dataclass(frozen=True)
class ItemFailure:
    """One image that failed, with its place in the batch."""

    index: int
    error: BaseException

    @property
    def code(self) -> str:
        return getattr(self.error, "code", "") or type(self.error).__name__


@dataclass
class BatchResult:
    """Per-image outcomes in input order (None where the image failed) and the failures."""

    outcomes: list[RetouchOutcome | None]
    failures: list[ItemFailure] = field(default_factory=list)
    limit_history: list[int] = field(default_factory=list)

    @property
    def not_sent(self) -> list[int]:
        """Images never sent because the batch stopped at an account error (nothing paid for them)."""
        return [f.index for f in self.failures if isinstance(f.error, NotSent)]

    @property
    def credits_spent(self) -> int:
        return sum(outcome.credits_spent for outcome in self.outcomes if outcome is not None)

    def counts(self) -> dict[str, int]:
        """How many images were new (paid this run), cached and resumed."""
        return {
            origin: sum(1 for outcome in self.outcomes if outcome is not None and outcome.origin == origin)
            for origin in ORIGINS
        }

    def raise_for_failures(self) -> None:
        """Raise BatchFailed naming every failed image; the successful ones are already cached."""
        if self.failures:
            raise BatchFailed([(f.index, f.error) for f in self.failures], len(self.outcomes))

    def report(self) -> str:
        """One line per image (cached, resumed or new; task id; time) and a total with credits spent."""
        failed = {f.index: f for f in self.failures}
        lines = []
        for index, outcome in enumerate(self.outcomes):
            if outcome is None:
                failure = failed.get(index)
                if failure is not None and isinstance(failure.error, NotSent):
                    lines.append(f"image {index}: not sent")
                    continue
                lines.append(
                    f"image {index}: FAILED {failure.code if failure else ''}: {failure.error if failure else ''}"
                )
                continue
            task = f"task {outcome.task_id}" if outcome.task_id else "no task"
            note = f", {outcome.note}" if outcome.note else ""
            lines.append(
                f"image {index}: {outcome.origin}, {task}, {outcome.seconds:.1f} s, "
                f"{outcome.credits_spent} credits{note}"
            )
        counts = self.counts()
        local = f"{counts['local']} local, " if counts["local"] else ""
        lines.append(
            f"total: {len(self.outcomes)} image(s): {local}{counts['new']} new, {counts['cached']} cached, "
            f"{counts['resumed']} resumed, {len(self.failures)} failed; {self.credits_spent} credits spent this run"
        )
        return "\n".join(lines)


class _Abort(Exception):
    """Internal: another worker saw the cancel (or a bug); stop this one too."""


class _CancelGate:
    """Shares one cancel decision between workers.

    The caller's hook may be one-shot (ComfyUI's resets its flag when it raises), so the first
    exception it produces is remembered, every other worker stops, and that exception is what
    the caller gets back.
    """

    def __init__(self, hook: CancelCheck | None) -> None:
        self.hook = hook
        self.event = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def __call__(self) -> None:
        if self.event.is_set():
            raise _Abort()
        try:
            check_cancel(self.hook)
        except BaseException as error:
            self.stop(error)
            raise

    def stop(self, error: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = error
            self.event.set()


def retouch_batch(
    backend: RetouchBackend,
    sources: Sequence[SourceImage],
    params: BeautyParams,
    *,
    options: RetouchOptions = DEFAULT_OPTIONS,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: ProgressCallback | None = None,
    on_item_done: Callable[[int, RetouchOutcome | None], None] | None = None,
    check_cancel: CancelCheck | None = None,
    keep_images: bool = True,
) -> BatchResult:
    """Retouch `sources` with at most `concurrency` tasks in flight, lowered on rate limits.

    Failures of single images (any BeautyError) are collected, not raised: call
    `raise_for_failures()` to fail, or pass the originals through. An error no other image can
    escape (bad key, no credits, locked account) stops the batch at once: no image starts a
    request after it, and those not sent fail with NotSent (stage "not_sent"). A cancel, or an
    unexpected error, stops the whole batch and is re-raised unchanged.

    Memory stays flat however long the batch: `sources[i]` is read only when image i's turn
    comes (pass a lazy Sequence, e.g. `codec.LazySources`, and nothing is decoded early), a few
    images at a time are decoded/encoded/written (local_work.py), and with `keep_images=False`
    each result goes to `on_item_done` and is then let go (its outcome keeps `RELEASED_IMAGE`).
    """
    work = LocalWorkGate(default_permits(check_concurrency(concurrency)))
    limiter = AdaptiveLimiter(concurrency, close_on=is_account_error, local_work=work)
    gate = _CancelGate(check_cancel)
    result = BatchResult(outcomes=[None] * len(sources))
    record_lock = threading.Lock()

    def not_sent(index: int, cause: BaseException) -> None:
        reason = (
            "not sent: the batch stopped at an error every image would get "
            f"({getattr(cause, 'code', '') or type(cause).__name__}); nothing was paid for this image"
        )
        with record_lock:
            result.failures.append(ItemFailure(index, NotSent(reason + ".")))
        if on_progress is not None:
            on_progress(Progress(index, "not_sent", None, 0.0, reason=reason))
        if on_item_done is not None:
            on_item_done(index, None)

    def run_one(index: int) -> None:
        stopped_by = limiter.closed_by
        if stopped_by is not None:
            not_sent(index, stopped_by)
            return
        try:
            _run_one(index)
        finally:
            work.release()  # whatever permit this thread still holds (see local_work.py)

    def _run_one(index: int) -> None:
        try:
            work.hold(gate)  # loading this image's pixels is local work, until its upload is encoded
            outcome = backend.retouch(
                sources[index],  # not kept here: the backend lets go of the pixels once encoded
                params,
                options=options,
                index=index,
                on_progress=on_progress,
                check_cancel=gate,
                limiter=limiter,
            )
            limiter.on_success()
        except _Abort:
            return
        except LimiterClosed as closed:
            not_sent(index, closed.args[0])
            return
        except RetouchCancelled as error:
            gate.stop(error)
            return
        except BeautyError as error:
            with record_lock:
                result.failures.append(ItemFailure(index, error))
            _notify(on_progress, on_item_done, index, None)
            return
        except BaseException as error:
            gate.stop(error)
            return
        with record_lock:
            result.outcomes[index] = outcome
        # Writing or copying the result is local work too: this continues the permit the backend
        # took to decode it, so a decoded result never waits for a permit.
        with work.working():
            _notify(on_progress, on_item_done, index, outcome)
        if not keep_images:
            with record_lock:
                result.outcomes[index] = replace(outcome, image=RELEASED_IMAGE)

    if sources:
        # Twice as many threads as slots: the spare ones encode the next images (and decode finished
        # ones) while `concurrency` tasks are in flight, so that CPU work stays off the critical path.
        workers = min(2 * concurrency, len(sources))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="face-beauty") as pool:
            for _ in pool.map(run_one, range(len(sources))):
                pass
    if gate.error is not None:
        raise gate.error
    result.failures.sort(key=lambda failure: failure.index)
    result.limit_history = limiter.history()
    return result


def _notify(
    on_progress: ProgressCallback | None,
    on_item_done: Callable[[int, RetouchOutcome | None], None] | None,
    index: int,
    outcome: RetouchOutcome | None,
) -> None:
    if outcome is None and on_progress is not None:
        on_progress(Progress(index, "failed", None, 0.0))  # the reason is in BatchResult.failures
    if on_item_done is not None:
        on_item_done(index, outcome)
