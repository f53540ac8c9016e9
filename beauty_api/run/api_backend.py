"""ApiBackend: the RetouchBackend over the paid Face Beauty Pro API, with result cache and task journal.

This is where "never pay twice, never lose a result" happens, in this order:
1. the result cache answers an identical request with no API call;
2. the task journal resumes a task recorded by an earlier run (crash, Cancel, timeout,
   re-queue) or by another process working on the same image right now;
3. otherwise the image is submitted, and the task id is recorded BEFORE waiting;
4. the downloaded result is decoded, cached, and only then marked done in the journal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..api.retry_policy import RetryEvent
from ..api.task_timings import TaskPolling, TaskTimings
from ..clock import CancelCheck, Clock, Deadline
from ..clock import check_cancel as raise_if_cancelled
from ..codec import EncodedImage, SourceImage, attach_alpha, decode_image, encode_for_upload, fit_to_size
from ..errors import (
    ImageError,
    SubmitOutcomeUnknown,
    TaskFailedError,
)
from ..ledger.fingerprint import request_fingerprint
from ..ledger.journal import new_owner
from ..ledger.journal_claims import HEARTBEAT_SECONDS
from ..ledger.ledger_choice import AnyCache, AnyJournal, open_ledger
from ..ledger.result_cache import NullCache
from ..ledger.storage_paths import state_dir, timings_path
from ..params import BeautyParams
from .backend import CREDITS_PER_IMAGE, DEFAULT_OPTIONS, RetouchOptions, RetouchOutcome
from .image_run import ImageRun
from .progress_events import (
    Progress,
    ProgressCallback,
    ResizeNotice,
)
from .resume import STAGE_BY_STATUS, TaskGone, resume_recorded

if TYPE_CHECKING:
    import numpy as np

    from ..api.client import ClientSettings, FaceBeautyClient
    from ..api.protocol import TaskState
    from ..ledger.journal import Claim
    from .concurrency import AdaptiveLimiter

log = logging.getLogger(__name__)


class ApiBackend:
    """RetouchBackend over the Face Beauty Pro API, with result cache and task journal."""

    def __init__(
        self,
        client: FaceBeautyClient,
        *,
        journal: AnyJournal | None = None,
        cache: AnyCache | None = None,
        clock: Clock | None = None,
        timings: TaskTimings | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.cache = cache if cache is not None else NullCache()
        self.clock = clock or client.clock
        self.owner = new_owner()
        # How long this API's tasks take, so polling looks when the result is due (memory-only by default).
        self.timings = timings if timings is not None else TaskTimings()

    def close(self) -> None:
        """Close the client's HTTP connections; `with ApiBackend.from_environment() as backend:` does it."""
        self.client.close()

    def __enter__(self) -> ApiBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def from_environment(
        cls,
        *,
        settings: ClientSettings | None = None,
        comfy_user_dir: Path | None = None,
        use_cache: bool | None = None,
    ) -> ApiBackend:
        """Key and address from the environment / config file; journal and cache at their usual place.

        Raises ConfigurationError (saying how to set the key) before anything else happens.
        """
        from ..api.client import FaceBeautyClient

        client = FaceBeautyClient(settings=settings)
        directory = state_dir(comfy_user_dir=comfy_user_dir)
        ledger = open_ledger(directory, use_cache=use_cache)  # FACE_BEAUTY_LEDGER_URL: a farm's PostgreSQL
        return cls(
            client,
            journal=ledger.journal,
            cache=ledger.cache,
            timings=TaskTimings(timings_path(directory)),
        )

    # -- the pipeline -------------------------------------------------------------------------

    def retouch(
        self,
        source: SourceImage,
        params: BeautyParams,
        *,
        options: RetouchOptions = DEFAULT_OPTIONS,
        index: int = 0,
        on_progress: ProgressCallback | None = None,
        check_cancel: CancelCheck | None = None,
        limiter: AdaptiveLimiter | None = None,
    ) -> RetouchOutcome:
        """Retouch one image, from the cache, a resumed task or a new paid task.

        With a `limiter`, only the remote part (submit, wait, download) holds one of its slots:
        encoding the next image and decoding the last overlap with the tasks in flight.
        """
        started = self.clock.monotonic()
        run = ImageRun(self.clock, index, started, on_progress, check_cancel, limiter)
        raise_if_cancelled(check_cancel)  # a batch cancelled before this image began encodes nothing
        run.emit("encoding")
        # Image work holds one of the batch's few permits (local_work.py): from here to the upload
        # (the limiter's slot gives it back), and from the result's decoding on (the batch gives it
        # back once the result is written), so few images are ever decoded at once.
        run.hold_local_work()
        upload = encode_for_upload(source)
        shape = _Shape(source.size, source.alpha)
        del source  # from here on only the upload bytes: an image waiting for the API holds no pixels
        if upload.resized:
            notice = ResizeNotice(upload.source_size, upload.size, not options.keep_returned_size)
            run.send(Progress(index, "resized", None, run.elapsed(), resize=notice))
        fields = self.client.form_fields(params, options.mode)
        fingerprint = request_fingerprint(
            self.client.ENDPOINT, options.mode, fields, upload.data, base_url=self.client.base_url
        )

        if options.use_cache:
            raise_if_cancelled(check_cancel)
            cached = self.cache.get(fingerprint)
            if cached is not None:
                try:
                    image = self._finish(cached.data, shape, options)
                except ImageError:
                    log.warning("A cached result did not decode; fetching it again.")
                else:
                    run.emit("cached", cached.meta.get("task_id"))
                    return RetouchOutcome(image, "cached", cached.meta.get("task_id"), run.elapsed(), 0)

        if options.mode == "sync":
            with run.in_flight():
                run.emit("submitting")
                data = self.client.submit_sync(
                    upload,
                    params,
                    deadline=self.client.new_deadline(),
                    check_cancel=check_cancel,
                    on_retry=run.on_retry,
                )
            run.hold_local_work()
            image = self._keep(fingerprint, data, shape, options, task_id=None)
            run.emit("done")
            return RetouchOutcome(image, "new", None, run.elapsed(), CREDITS_PER_IMAGE)

        with run.in_flight():
            data, origin, task_id = self._async_result(
                fingerprint, upload, params, self.client.new_deadline(), run
            )
        run.hold_local_work()
        image = self._keep(fingerprint, data, shape, options, task_id=task_id)
        if self.journal is not None:
            self.journal.record_done(fingerprint)
        run.emit("done", task_id)
        credits = CREDITS_PER_IMAGE if origin == "new" else 0
        return RetouchOutcome(image, origin, task_id, run.elapsed(), credits)

    def _async_result(
        self, fingerprint: str, upload: EncodedImage, params: BeautyParams, deadline: Deadline, run: ImageRun
    ) -> tuple[bytes, str, str]:
        """The result bytes of a resumed or new task, and which of the two it was."""
        journal = self.journal
        while journal is not None:  # without a journal: always a new task
            claim = self._claim(fingerprint, deadline, run)
            if claim is None or claim.action == "submit":
                break
            if claim.action == "unknown":  # the shared ledger: sent earlier, its answer never came
                raise SubmitOutcomeUnknown(
                    "This image was sent earlier by a worker that stopped before its answer came, so a paid "
                    "task may exist; nothing was sent again. To send it again: "
                    f"`python -m beauty_api journal forget {fingerprint[:16]}`."
                )
            task_id = claim.task_id
            if task_id is None:  # the journal records a task id with every resumable claim
                raise RuntimeError(f"the task journal returned a {claim.action!r} claim without a task id")
            run.emit("resumed", task_id)
            try:
                data = resume_recorded(self, fingerprint, claim, deadline, run)
            except TaskGone as gone:
                # Its result can no longer be had (expired, or the API no longer knows the task).
                log.info("Recorded task %s is gone (%s); submitting again.", task_id, gone)
                journal.forget(fingerprint, task_id=task_id)
                continue
            return data, "resumed", task_id

        run.emit("submitting")
        # The API's clock starts once the upload is in, not when its answer reaches us (a busy
        # server or client can take a while with that): the schedule counts from the attempt sent.
        sent_at = [self.clock.monotonic()]

        def on_submit_retry(event: RetryEvent) -> None:
            run.on_retry(event)
            sent_at[0] = self.clock.monotonic() + event.delay

        mark_sending = getattr(self.journal, "mark_sending", None)  # the shared ledger's 'sending'
        if mark_sending is not None:
            mark_sending(fingerprint, self.owner)
        try:
            receipt = self.client.submit(
                upload,
                params,
                deadline=deadline,
                check_cancel=self._keeping_claim_alive(fingerprint, run.check_cancel),
                on_retry=on_submit_retry,
            )
        except SubmitOutcomeUnknown:
            record_unknown = getattr(self.journal, "record_unknown", None)
            if record_unknown is not None:
                record_unknown(fingerprint, self.owner)
            elif self.journal is not None:
                self.journal.release(fingerprint, self.owner)
            raise
        except BaseException:
            if self.journal is not None:
                self.journal.release(fingerprint, self.owner)
            raise
        submitted_at = sent_at[0]
        if self.journal is not None:
            self.journal.record_submitted(fingerprint, receipt.task_id, request_id=receipt.request_id)
        try:
            url = self.wait_for_result(receipt.task_id, deadline, run, submitted_at=submitted_at)
        except TaskFailedError:
            if self.journal is not None:
                self.journal.forget(fingerprint, task_id=receipt.task_id)
            raise
        return self.download_result(fingerprint, url, run, receipt.task_id), "new", receipt.task_id

    def _keeping_claim_alive(self, fingerprint: str, check_cancel: CancelCheck | None) -> CancelCheck | None:
        """The cancel hook for a submit, which also keeps our journal claim alive while it retries.

        The transport calls the hook at least every 0.25 s while it waits (backoff, Retry-After),
        so the claim's time moves on every HEARTBEAT_SECONDS and no other process takes over a
        submit that is still alive, however long it takes (issue: 'never pay twice').
        """
        journal = self.journal
        if journal is None:
            return check_cancel
        last_beat = self.clock.monotonic()

        def check() -> object:
            nonlocal last_beat
            now = self.clock.monotonic()
            if now - last_beat >= HEARTBEAT_SECONDS:
                last_beat = now
                journal.heartbeat(fingerprint, self.owner)
            return check_cancel() if check_cancel is not None else None

        return check

    def _claim(self, fingerprint: str, deadline: Deadline, run: ImageRun) -> Claim | None:
        """Ask the journal what to do; while another live process is submitting this image, wait."""
        if self.journal is None:
            return None
        return self.journal.wait_for_claim(
            fingerprint,
            self.owner,
            timeout=deadline.remaining(),
            clock=self.clock,
            check_cancel=run.check_cancel,
        )

    def wait_for_result(
        self, task_id: str, deadline: Deadline, run: ImageRun, *, submitted_at: float | None = None
    ) -> str:
        """Poll until done; a task submitted just now is looked at around when this API's tasks
        have been finishing, and teaches when this one did (task_timings.TaskPolling)."""
        polling = TaskPolling(self.timings, self.client.base_url, self.clock, submitted_at)
        if submitted_at is not None:
            run.emit("queued", task_id, expected=polling.expected)  # the task id is known from here on

        def on_state(state: TaskState) -> None:
            polling.saw(state.done)
            run.emit(STAGE_BY_STATUS.get(state.status, "processing"), task_id, expected=polling.expected)

        url = self.client.wait(
            task_id,
            deadline=deadline,
            on_state=on_state,
            check_cancel=run.check_cancel,
            on_retry=run.on_retry,
            schedule=self.client.poll_times(polling.expectation),
            since=polling.since,
        )
        polling.finished()
        return url

    def download_result(self, fingerprint: str, url: str, run: ImageRun, task_id: str) -> bytes:
        if self.journal is not None:
            self.journal.record_result_url(fingerprint, url)
        run.emit("downloading", task_id)
        # The task is paid for by now: its download gets a full deadline of its own.
        return self.client.download(
            url, deadline=self.client.new_deadline(), check_cancel=run.check_cancel, on_retry=run.on_retry
        )

    def _keep(
        self,
        fingerprint: str,
        data: bytes,
        shape: _Shape,
        options: RetouchOptions,
        *,
        task_id: str | None,
    ) -> np.ndarray:
        """Decode a paid result, then store it (a result that does not decode is not worth keeping)."""
        image = self._finish(data, shape, options)
        if options.use_cache:
            self.cache.put(
                fingerprint,
                data,
                {"task_id": task_id, "source_size": list(shape.size), "mode": options.mode},
            )
        return image

    @staticmethod
    def _finish(data: bytes, shape: _Shape, options: RetouchOptions) -> np.ndarray:
        rgb = decode_image(data)
        if not options.keep_returned_size:
            rgb = fit_to_size(rgb, shape.size)
        return attach_alpha(rgb, shape.alpha)


@dataclass(frozen=True)
class _Shape:
    """What a result needs of its input once the upload is encoded: the size and the alpha channel."""

    size: tuple[int, int]
    alpha: np.ndarray | None
