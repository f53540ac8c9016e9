"""The one choke point for money: every paid request of every mode is sent by `send_paid`.

    claim (exclusive per fingerprint, alive while its owner lives)
      -> send (async submit or sync retouch; a heartbeat thread keeps the claim alive meanwhile)
      -> record the outcome before anything else: the task id, the sync result (into the result
         cache), "sent, answer not received", or "provably not sent" (claim released).

A Cancel or a first Ctrl-C never abandons a request on the wire: the transport checks the cancel
hook only between attempts, so the answer is waited for (bounded by the user's timeout) and
recorded. A second Ctrl-C calls `abandon_in_flight()`, which records every request still on
the wire as "outcome unknown" before the process quits. A request whose outcome is unknown is
not sent again until the user forgets it (`python -m beauty_api journal forget ...`).
Nothing else in the package calls the client's submit methods (tests/test_paid_request.py
checks the source for it).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import (
    BeautyError,
    ProtocolError,
    ResultDownloadError,
    SubmitOutcomeUnknown,
)
from ..ledger.journal_claims import HEARTBEAT_SECONDS, SUBMIT, UNKNOWN, Claim
from ..ledger.ledger_store import FORGET_HINT, wait_for_claim
from .concurrency import LimiterClosed

if TYPE_CHECKING:
    from ..api.client import FaceBeautyClient, SubmitReceipt, Upload
    from ..api.retry_policy import RetryHook
    from ..clock import CancelCheck, Clock, Deadline
    from ..ledger.ledger_store import ResultStore, TaskLedger
    from ..params import BeautyParams
    from .concurrency import AdaptiveLimiter

log = logging.getLogger(__name__)

_in_flight: dict[int, tuple[TaskLedger, str, str]] = {}
_in_flight_lock = threading.Lock()
_tokens = itertools.count(1)


class _NotSentYet(BaseException):
    """Internal wrapper: the cancel hook fired between attempts, so nothing of ours is on the wire."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


def send_paid(
    client: FaceBeautyClient,
    upload: Upload,
    params: BeautyParams,
    *,
    mode: str,
    ledger: TaskLedger | None,
    results: ResultStore,
    fingerprint: str,
    owner: str,
    deadline: Deadline,
    clock: Clock,
    aliases: Sequence[str] = (),
    check_cancel: CancelCheck | None = None,
    on_retry: RetryHook | None = None,
    on_sending: Callable[[], None] | None = None,
    limiter: AdaptiveLimiter | None = None,
    result_meta: Mapping[str, Any] | None = None,
) -> Claim | SubmitReceipt | bytes:
    """Send one paid request at most once per fingerprint; returns what the caller goes on with.

    A Claim when nothing was sent because the ledger knows the request: "resume" (poll its
    task) or "cached" (answered earlier: its result is in the result cache). Otherwise the
    SubmitReceipt (async, task id recorded) or the result bytes (sync, already in `results`).
    Raises SubmitOutcomeUnknown when the request was sent, or sent earlier, and its answer
    never came; LedgerUnavailable when the ledger cannot answer (nothing sent).
    """
    if ledger is not None:
        claim = wait_for_claim(
            ledger,
            fingerprint,
            owner,
            timeout=deadline.remaining(),
            clock=clock,
            check_cancel=check_cancel,
            aliases=aliases,
        )
        if claim.action == UNKNOWN:
            raise SubmitOutcomeUnknown(
                "A request for this image was sent earlier and its answer was not received, so a paid task "
                "may exist; it is not sent again. To pay for it again, run "
                f"`{FORGET_HINT.format(what=fingerprint[:16])}`."
            )
        if claim.action != SUBMIT:
            return claim
    token = next(_tokens)

    def cancel_between_attempts() -> object:
        # The transport asks only while no attempt is on the wire: a cancel now sends nothing.
        try:
            return check_cancel() if check_cancel is not None else None
        except BaseException as error:
            raise _NotSentYet(error) from None

    heartbeat = _Heartbeat(ledger, fingerprint, owner) if ledger is not None else None
    try:
        # A batch's first submit goes alone (slow start); without a limiter there is no turn to wait for.
        turn = (
            limiter.submit_turn(cancel_between_attempts) if limiter is not None else contextlib.nullcontext()
        )
        with turn:
            if on_sending is not None:
                on_sending()
            answer = _send(
                client,
                upload,
                params,
                mode,
                deadline,
                cancel_between_attempts,
                on_retry,
                ledger,
                fingerprint,
                owner,
                token,
                heartbeat,
            )
    except _NotSentYet as not_sent:
        _release(ledger, fingerprint, owner)
        raise not_sent.error from None
    except LimiterClosed:
        _release(ledger, fingerprint, owner)  # the batch's first request was refused: this one never left
        raise
    except (SubmitOutcomeUnknown, ProtocolError, ResultDownloadError) as error:
        if ledger is None:
            raise
        _record_unknown(ledger, fingerprint, owner)
        raise SubmitOutcomeUnknown(
            f"{error} Recorded as sent, answer not received: a re-run does not send it again; to pay for it "
            f"again, run `{FORGET_HINT.format(what=fingerprint[:16])}`."
        ) from None
    except BeautyError:
        _release(ledger, fingerprint, owner)  # a definite refusal, or never sent: no task exists
        raise
    except BaseException:
        if ledger is not None:  # e.g. KeyboardInterrupt mid-request: it may have been sent
            _record_unknown(ledger, fingerprint, owner)
        raise
    # Record the outcome before anything else may happen (a cancel is only looked at after this).
    if mode == "sync":
        assert isinstance(answer, bytes)
        kept = results.put(fingerprint, answer, dict(result_meta or {}))
        if ledger is None:
            return answer
        if kept:
            ledger.record_answered(fingerprint)
        elif not results.enabled:
            ledger.release(fingerprint, owner)  # the cache is off: a re-run pays again, by the user's choice
        else:  # answered, but the answer could not be kept: never pay again without being told to
            _record_unknown(ledger, fingerprint, owner)
            log.error(
                "The answer for image %s could not be kept in the result cache; a re-run will not pay for it "
                "again until `%s`.",
                fingerprint[:12],
                FORGET_HINT.format(what=fingerprint[:16]),
            )
        return answer
    receipt: SubmitReceipt = answer  # type: ignore[assignment]
    if ledger is not None:
        ledger.record_submitted(fingerprint, receipt.task_id, request_id=receipt.request_id)
    return receipt


def _send(
    client: FaceBeautyClient,
    upload: Upload,
    params: BeautyParams,
    mode: str,
    deadline: Deadline,
    check: CancelCheck,
    on_retry: RetryHook | None,
    ledger: TaskLedger | None,
    fingerprint: str,
    owner: str,
    token: int,
    heartbeat: _Heartbeat | None,
) -> SubmitReceipt | bytes:
    """The only two calls of the client's paid methods in the package."""
    if ledger is not None:
        ledger.mark_sending(fingerprint, owner)  # fails closed: nothing leaves unless this is written
        with _in_flight_lock:
            _in_flight[token] = (ledger, fingerprint, owner)
    if heartbeat is not None:
        heartbeat.start()
    try:
        if mode == "sync":
            return client.submit_sync(
                upload, params, deadline=deadline, check_cancel=check, on_retry=on_retry
            )
        return client.submit(upload, params, deadline=deadline, check_cancel=check, on_retry=on_retry)
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        with _in_flight_lock:
            _in_flight.pop(token, None)


def in_flight() -> int:
    """How many paid requests are on the wire right now (their answers not received yet)."""
    with _in_flight_lock:
        return len(_in_flight)


def abandon_in_flight(owner: str | None = None) -> int:
    """Before a process quits at once (second Ctrl-C): record every request on the wire (of
    `owner`, or all) as "sent, answer not received", so no re-run pays for it again. Returns how many."""
    with _in_flight_lock:
        pending = [item for item in _in_flight.values() if owner is None or item[2] == owner]
        for token in [t for t, item in _in_flight.items() if owner is None or item[2] == owner]:
            del _in_flight[token]
    for ledger, fingerprint, owner in pending:
        _record_unknown(ledger, fingerprint, owner)
    return len(pending)


def _release(ledger: TaskLedger | None, fingerprint: str, owner: str) -> None:
    if ledger is not None:
        ledger.release(fingerprint, owner)


def _record_unknown(ledger: TaskLedger, fingerprint: str, owner: str) -> None:
    if not ledger.record_unknown(fingerprint, owner):
        log.error(
            "A request for image %s was sent and its answer not received, and the ledger could not record "
            "that; a re-run may pay for it again.",
            fingerprint[:12],
        )


class _Heartbeat:
    """Keeps a claim alive while its request is on the wire (an upload may outlast any timeout)."""

    def __init__(self, ledger: TaskLedger, fingerprint: str, owner: str) -> None:
        self._ledger, self._fingerprint, self._owner = ledger, fingerprint, owner
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="face-beauty-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _beat(self) -> None:
        while not self._stopped.wait(HEARTBEAT_SECONDS):
            self._ledger.heartbeat(self._fingerprint, self._owner)
