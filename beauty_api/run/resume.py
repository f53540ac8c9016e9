"""Resuming a task recorded in the journal: ask the API first, retire what it no longer answers for.

A recorded task is resumed by asking the API about it (one cheap query), never by trusting the
recorded result URL alone: after an emulator restart, or 24 h later, the URL's host may be gone
for good, and retrying it on every run would keep the image stuck forever.

- The API no longer knows the task (404): the recorded result URL gets ONE quick try (a result
  host may outlive the task record); if that fails too, the task is retired (`TaskGone`) and the
  image is submitted anew - the old result cannot be had, so this does not pay twice for one.
- The API says the task failed: it was not billed; the row is forgotten and the error raised.
- The API says done: its (current) result URL is downloaded; an expired one retires the task.
- Anything else (API or result host unreachable): the outcome is unknown. ResumeFailed says so
  and names the one command that forgets the task; a plain re-run tries again without paying.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from ..errors import (
    ApiError,
    ResultDownloadError,
    ResultExpired,
    ResumeFailed,
    TaskFailedError,
    TransportError,
    is_account_error,
)

if TYPE_CHECKING:
    from ..api.client import FaceBeautyClient
    from ..clock import Deadline
    from ..ledger.journal import Claim
    from ..ledger.ledger_choice import AnyJournal
    from .image_run import ImageRun

log = logging.getLogger(__name__)

# The progress stage for a task_status the API reports (api_backend.py uses it while polling too).
STAGE_BY_STATUS = {0: "queued", 1: "processing", 2: "downloading"}

FORGET_COMMAND = "python -m beauty_api journal forget {task_id}"


class TaskSource(Protocol):
    """What resuming needs of the backend that recorded the task (ApiBackend is one): its client and
    journal, and its own way to wait for a task and fetch a result (so resumed and new tasks are
    polled, recorded and downloaded alike)."""

    client: FaceBeautyClient
    journal: AnyJournal | None

    def wait_for_result(self, task_id: str, deadline: Deadline, run: ImageRun) -> str: ...

    def download_result(self, fingerprint: str, url: str, run: ImageRun, task_id: str) -> bytes: ...


class TaskGone(Exception):
    """Internal: the recorded task's result can no longer be had; retire the row and submit anew."""


def resume_recorded(
    backend: TaskSource, fingerprint: str, claim: Claim, deadline: Deadline, run: ImageRun
) -> bytes:
    """The result bytes of the task `claim` names; TaskGone, TaskFailedError or ResumeFailed otherwise."""
    task_id = claim.task_id
    if not task_id:
        raise TaskGone("no task id was recorded")
    client = backend.client
    try:
        state = client.query(task_id, deadline=deadline, check_cancel=run.check_cancel, on_retry=run.on_retry)
    except TaskFailedError as error:
        if error.category != "not_found":
            if backend.journal is not None:
                backend.journal.forget(fingerprint, task_id=task_id)  # failed remotely: not billed
            raise
        data = _probe(backend, claim.result_url, run)
        if data is None:
            raise TaskGone(f"the API no longer knows task {task_id}") from None
        return data
    except (TransportError, ApiError) as error:  # not a cancel or a deadline: those propagate as they are
        if is_account_error(error):
            raise  # a refused key stops the whole batch (batch.py); it says nothing about the task
        if claim.result_url:  # the API cannot be asked; the result host may still answer
            try:
                return backend.download_result(fingerprint, claim.result_url, run, task_id)
            except ResultExpired:
                raise TaskGone(f"the recorded result of task {task_id} expired") from None
            except (ResultDownloadError, TransportError):
                pass
        raise _unknown(task_id, error) from None
    try:
        if state.done and state.result_url:
            url = state.result_url
        else:
            run.emit(STAGE_BY_STATUS.get(state.status, "processing"), task_id)
            url = backend.wait_for_result(task_id, deadline, run)
        return backend.download_result(fingerprint, url, run, task_id)
    except ResultExpired:
        raise TaskGone(f"the result of task {task_id} expired") from None
    except ResultDownloadError as error:
        raise _unknown(task_id, error) from None


def _probe(backend: TaskSource, url: str | None, run: ImageRun) -> bytes | None:
    """One quick try of a recorded result URL (no retries): its bytes, or None."""
    if not url:
        return None
    try:
        return backend.client.download(url, check_cancel=run.check_cancel, attempts=1)
    except ResultDownloadError as error:
        log.info("The recorded result is not there any more (%s).", error.__class__.__name__)
        return None


def _unknown(task_id: str, cause: BaseException) -> ResumeFailed:
    reason = " ".join(str(cause).split())
    return ResumeFailed(
        f"Task {task_id}, paid earlier for this image, could not be resumed ({reason}). Whether its result "
        "can still be fetched is unknown: a plain re-run tries again without paying. If the address that "
        "made it is gone for good (e.g. a restarted emulator), forget it with "
        f"`{FORGET_COMMAND.format(task_id=task_id)}`; the next run then submits the image again (15 credits).",
        task_id=task_id,
    )
