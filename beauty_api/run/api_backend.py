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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..api.retry_policy import RetryEvent
from ..api.task_timings import TaskPolling, TaskTimings
from ..clock import CancelCheck, Clock, Deadline
from ..clock import check_cancel as raise_if_cancelled
from ..codec import EncodedImage, SourceImage, attach_alpha, decode_image, encode_for_upload, fit_to_size
from ..errors import (
    ImageError,
    ResumeFailed,
    TaskFailedError,
)
from ..ledger.fingerprint import legacy_fingerprint, pixel_digest, request_fingerprint
from ..ledger.journal_claims import RESUME, Claim, new_owner
from ..ledger.ledger_choice import AnyCache, AnyJournal, open_ledger
from ..ledger.ledger_store import FORGET_HINT
from ..ledger.result_cache import NullCache
from ..ledger.state_merge import adopt_state
from ..ledger.storage_paths import legacy_comfy_dir, state_dir, timings_path
from ..params import BeautyParams
from .backend import CREDITS_PER_IMAGE, DEFAULT_OPTIONS, RetouchOptions, RetouchOutcome
from .image_run import ImageRun
from .paid_request import send_paid
from .progress_events import (
    Progress,
    ProgressCallback,
    ResizeNotice,
)
from .resume import STAGE_BY_STATUS, TaskGone, resume_recorded

if TYPE_CHECKING:
    import numpy as np

    from ..api.client import ClientSettings, FaceBeautyClient, SubmitReceipt
    from ..api.protocol import TaskState
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
        self._sent_at: dict[str, float] = {}  # when each async request of this backend was last sent

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
        """Key and address from the environment / config file; journal and cache in the per-user state folder.

        `comfy_user_dir`: ComfyUI's user folder, whose older ledger is merged in on first use.

        Raises ConfigurationError (saying how to set the key) before anything else happens.
        """
        from ..api.client import FaceBeautyClient

        client = FaceBeautyClient(settings=settings)
        directory = state_dir()  # one ledger per OS user, whoever asks
        if comfy_user_dir is not None:  # ComfyUI's own ledger from before: taken over on first use
            adopt_state(legacy_comfy_dir(comfy_user_dir), directory)
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
        pixels = pixel_digest(source)
        upload = encode_for_upload(source)
        shape = _Shape(source.size, source.alpha)
        del source  # from here on only the upload bytes: an image waiting for the API holds no pixels
        if upload.resized:
            notice = ResizeNotice(upload.source_size, upload.size, not options.keep_returned_size)
            run.send(Progress(index, "resized", None, run.elapsed(), resize=notice))
        fields = self.client.form_fields(params, options.mode)
        base_url = self.client.base_url
        fingerprint = request_fingerprint(
            self.client.ENDPOINT, options.mode, fields, pixels, base_url=base_url
        )
        # Entries written before fingerprint v3 are found under their old key (fingerprint.py).
        legacy = legacy_fingerprint(
            self.client.ENDPOINT, options.mode, fields, upload.data, base_url=base_url
        )

        if options.use_cache:
            raise_if_cancelled(check_cancel)
            outcome = self._from_cache(fingerprint, (legacy,), shape, options, run)
            if outcome is not None:
                return outcome

        deadline = self.client.new_deadline()
        with run.in_flight():
            while True:
                answer: Claim | SubmitReceipt | bytes | ResumedResult
                answer = self._send(fingerprint, legacy, upload, params, options, deadline, run)
                if not isinstance(answer, Claim):
                    break
                if answer.action == RESUME:
                    data = self._resume(fingerprint, answer, deadline, run)
                    if data is not None:
                        answer = ResumedResult(data, answer.task_id or "")
                        break
                    continue
                # "cached": answered earlier and kept; never paid again without being told to.
                cached_outcome = self._from_cache(fingerprint, (), shape, options, run)
                if cached_outcome is not None:
                    return cached_outcome
                raise ResumeFailed(
                    "This image was answered earlier and its result kept in the result cache, which cannot give "
                    "it back now (unreadable, cleared or evicted); nothing was sent. A re-run tries again without "
                    f"paying; to pay for it again, run `{FORGET_HINT.format(what=fingerprint[:16])}`.",
                    task_id="",
                )
            if isinstance(answer, bytes):  # sync: the answer is the result, already in the cache
                data, origin, task_id = answer, "new", None
            elif isinstance(answer, ResumedResult):
                data, origin, task_id = answer.data, "resumed", answer.task_id
            else:
                assert not isinstance(answer, Claim)  # the loop only breaks on an answer
                task_id, origin = answer.task_id, "new"
                data = self._new_task_result(fingerprint, answer, deadline, run)
        run.hold_local_work()
        image = self._keep(
            fingerprint, data, shape, options, task_id=task_id, stored=origin == "new" and task_id is None
        )
        if self.journal is not None and task_id is not None:
            self.journal.record_done(fingerprint)
        run.emit("done", task_id)
        credits = CREDITS_PER_IMAGE if origin == "new" else 0
        return RetouchOutcome(image, origin, task_id, run.elapsed(), credits)

    def _from_cache(
        self,
        fingerprint: str,
        aliases: tuple[str, ...],
        shape: _Shape,
        options: RetouchOptions,
        run: ImageRun,
    ) -> RetouchOutcome | None:
        for key in (fingerprint, *aliases):
            cached = self.cache.get(key)
            if cached is None:
                continue
            try:
                image = self._finish(cached.data, shape, options)
            except ImageError:
                log.warning("A cached result did not decode; fetching it again.")
                return None
            if key != fingerprint:  # an entry from before fingerprint v3: keep it under its new key too
                self.cache.put(fingerprint, cached.data, cached.meta)
            run.emit("cached", cached.meta.get("task_id"))
            return RetouchOutcome(image, "cached", cached.meta.get("task_id"), run.elapsed(), 0)
        return None

    def _send(
        self,
        fingerprint: str,
        legacy: str,
        upload: EncodedImage,
        params: BeautyParams,
        options: RetouchOptions,
        deadline: Deadline,
        run: ImageRun,
    ) -> Claim | SubmitReceipt | bytes:
        """Through the one choke point (paid_request.py); remembers when an async request was sent."""

        def on_retry(event: RetryEvent) -> None:
            run.on_retry(event)
            self._sent_at[fingerprint] = self.clock.monotonic() + event.delay

        def on_sending() -> None:
            run.emit("submitting")
            self._sent_at[fingerprint] = self.clock.monotonic()

        return send_paid(
            self.client,
            upload,
            params,
            mode=options.mode,
            ledger=self.journal,
            results=self.cache,
            fingerprint=fingerprint,
            aliases=(legacy,),
            owner=self.owner,
            deadline=deadline,
            clock=self.clock,
            check_cancel=run.check_cancel,
            on_retry=on_retry,
            on_sending=on_sending,
            limiter=run.limiter,
            result_meta={"task_id": None, "source_size": list(upload.source_size), "mode": options.mode},
        )

    def _resume(self, fingerprint: str, claim: Claim, deadline: Deadline, run: ImageRun) -> bytes | None:
        """The result of a recorded task, or None when it is gone (its row is then forgotten)."""
        task_id = claim.task_id
        run.emit("resumed", task_id)
        try:
            return resume_recorded(self, fingerprint, claim, deadline, run)
        except TaskGone as gone:
            # Its result can no longer be had (expired, or the API no longer knows the task).
            log.info("Recorded task %s is gone (%s); submitting again.", task_id, gone)
            if self.journal is not None:
                self.journal.forget(fingerprint, task_id=task_id)
            return None

    def _new_task_result(
        self, fingerprint: str, receipt: SubmitReceipt, deadline: Deadline, run: ImageRun
    ) -> bytes:
        """Wait for a task submitted just now and download its result."""
        # The API's clock starts once the upload is in, not when its answer reaches us.
        submitted_at = self._sent_at.pop(fingerprint, self.clock.monotonic())
        try:
            url = self.wait_for_result(receipt.task_id, deadline, run, submitted_at=submitted_at)
        except TaskFailedError:
            if self.journal is not None:
                self.journal.forget(fingerprint, task_id=receipt.task_id)
            raise
        return self.download_result(fingerprint, url, run, receipt.task_id)

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
        stored: bool = False,
    ) -> np.ndarray:
        """Decode a paid result, then store it (a result that does not decode is not worth keeping).

        `stored`: the choke point already put it in the cache (a sync answer is kept at once)."""
        image = self._finish(data, shape, options)
        if options.use_cache and not stored:
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
class ResumedResult:
    """The result bytes of a task paid earlier and resumed now."""

    data: bytes = field(repr=False)
    task_id: str


@dataclass(frozen=True)
class _Shape:
    """What a result needs of its input once the upload is encoded: the size and the alpha channel."""

    size: tuple[int, int]
    alpha: np.ndarray | None
