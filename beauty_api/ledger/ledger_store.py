"""The ledger's storage interface: what the money path asks of wherever the ledger lives.

`TaskJournal` (SQLite, one file per OS user) is the backend today; a second backend (e.g. a
shared PostgreSQL database, issue 18) implements `TaskLedger` and `ResultStore` and every
front-end works unchanged. The choke point (run/paid_request.py) only uses these methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..clock import DEFAULT_CLOCK, CancelCheck, Clock, sleep_interruptibly
from ..errors import DeadlineExceeded, LedgerUnavailable
from .journal_claims import WAIT, Claim

if TYPE_CHECKING:
    from .journal_rows import JournalEntry

FORGET_HINT = "python -m beauty_api journal forget {what}"


class TaskLedger(Protocol):
    """Claims and outcomes per request fingerprint. `claim` fails closed (LedgerUnavailable)."""

    def claim(self, fingerprint: str, owner: str, *, aliases: Sequence[str] = ()) -> Claim: ...

    def heartbeat(self, fingerprint: str, owner: str) -> bool: ...

    def mark_sending(self, fingerprint: str, owner: str) -> None: ...

    def record_submitted(self, fingerprint: str, task_id: str, *, request_id: str = "") -> bool: ...

    def record_unknown(self, fingerprint: str, owner: str | None = None) -> bool: ...

    def record_answered(self, fingerprint: str) -> bool: ...

    def record_result_url(self, fingerprint: str, url: str) -> bool: ...

    def record_done(self, fingerprint: str) -> bool: ...

    def release(self, fingerprint: str, owner: str) -> bool: ...

    def forget(self, fingerprint: str, *, task_id: str | None = None) -> bool: ...

    def get(self, fingerprint: str) -> JournalEntry | None: ...


class ResultStore(Protocol):
    """Paid results by fingerprint (result_cache.ResultCache, or NullCache when switched off)."""

    def get(self, key: str) -> Any: ...

    enabled: bool

    def put(self, key: str, data: bytes, meta: Mapping[str, Any] | None = None) -> bool: ...


def wait_for_claim(
    ledger: TaskLedger,
    fingerprint: str,
    owner: str,
    *,
    timeout: float,
    clock: Clock = DEFAULT_CLOCK,
    check_cancel: CancelCheck | None = None,
    poll_interval: float = 0.25,
    aliases: Sequence[str] = (),
) -> Claim:
    """`ledger.claim()` until the answer is not "wait" and the ledger is not locked.

    Raises DeadlineExceeded after `timeout` seconds of `clock` while another live owner sends,
    the last LedgerUnavailable while the ledger stays locked (at once when it is damaged, newer
    or not writable), and whatever `check_cancel` raises.
    """
    end = clock.monotonic() + timeout
    while True:
        claim: Claim | None
        try:
            claim = ledger.claim(fingerprint, owner, aliases=aliases)
        except LedgerUnavailable as error:
            if not error.transient or end - clock.monotonic() <= 0:
                raise
            claim = None
        if claim is not None and claim.action != WAIT:
            return claim
        left = end - clock.monotonic()
        if left <= 0:
            holder = claim.owner if claim is not None and claim.owner else "another process"
            raise DeadlineExceeded(
                f"Another process ({holder}) is sending this same image and has not recorded its outcome "
                "yet; nothing was sent. Re-run in a moment to pick up its result without paying again "
                f"(if no such process runs any more: `{FORGET_HINT.format(what=fingerprint[:16])}`)."
            )
        sleep_interruptibly(clock, min(poll_interval, left), check_cancel)
