"""The task journal: which paid tasks exist for which request, so nothing is ever paid for twice.

A row per request fingerprint records the task id BEFORE anyone waits for it, so a re-run after
a crash, a Cancel, a timeout on our side or a re-queue resumes the task instead of submitting
again. `claim()` is atomic across threads and processes (SQLite `BEGIN IMMEDIATE`): of two
ComfyUI instances or a CLI beside ComfyUI retouching the same image at once, exactly one is
told to submit; the others wait for its task id and then resume (poll) the same task.

Row states: 'submitting' (claimed, task id not known yet) -> 'submitted' (task id recorded)
-> 'result' (result URL known) -> 'done' (result downloaded and cached). A row older than
`task_lifetime` (results live 24 h) is treated as absent and purged.

No secret ever reaches this module: its inputs are fingerprints, task ids, request ids and
result URLs. The file is still private (0o600) because result URLs may be signed.

Bookkeeping is best effort: disk trouble is logged and never breaks a retouch (a failed
`claim` answers "submit"). A failure to record a submitted task id is logged as an ERROR,
because that is the one case where a later re-run may pay again.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from ..clock import DEFAULT_CLOCK, CancelCheck, Clock, sleep_interruptibly
from ..errors import DeadlineExceeded, InvalidParameterError
from .journal_claims import (
    CLAIM_TIMEOUT,
    RESUME,
    SUBMIT,
    WAIT,
    Claim,
    claim_is_stale,
    new_owner,
    owner_is_dead,
)
from .journal_rows import COLUMNS as _COLUMNS
from .journal_rows import JournalEntry, create_schema, entry_from_row
from .private_store import PrivateSqlite

# Re-exported: callers import the journal's whole vocabulary from here.
__all__ = ["CLAIM_TIMEOUT", "RESUME", "SUBMIT", "WAIT", "Claim", "JournalEntry", "TaskJournal"]
__all__ += ["new_owner", "owner_is_dead"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TASK_LIFETIME = 24 * 3600.0


class TaskJournal:
    """SQLite record of submitted tasks, shared by threads and processes (a connection per call).

    `time_source` is wall-clock time (rows are compared across processes and restarts);
    `task_lifetime` is how long a task's result can still be fetched; `claim_timeout` is how
    long a 'submitting' claim of a live owner is honoured - it must exceed the longest submit
    (upload plus retries), or a slow submitter may be taken over and the image paid twice.
    """

    def __init__(
        self,
        path: Path,
        *,
        time_source: Callable[[], float] = time.time,
        task_lifetime: float = TASK_LIFETIME,
        claim_timeout: float = CLAIM_TIMEOUT,
    ) -> None:
        if task_lifetime <= 0 or claim_timeout <= 0:
            raise InvalidParameterError(
                f"task_lifetime ({task_lifetime}) and claim_timeout ({claim_timeout}) must be > 0 seconds."
            )
        self.path = Path(path)
        self.task_lifetime = float(task_lifetime)
        self.claim_timeout = float(claim_timeout)
        self._now = time_source
        self._db = PrivateSqlite(
            self.path,
            version=SCHEMA_VERSION,
            setup=create_schema,
            label="task journal",
            synchronous="FULL",  # a recorded task id must survive a power cut, not only a crash
        )
        try:
            self._db.open()
        except (sqlite3.Error, OSError) as error:
            log.warning(
                "The task journal at %s cannot be opened (%s); tasks are not recorded until it can be, "
                "so an interrupted run may pay again.",
                self.path,
                error,
            )
        else:
            self.purge_expired()

    # -- claiming ----------------------------------------------------------------------------

    def claim(self, fingerprint: str, owner: str) -> Claim:
        """Atomically decide whether this caller submits, resumes a recorded task, or waits.

        If the journal cannot be used at all, answers "submit" (with a warning): the retouch
        goes on, only without protection against paying twice.
        """
        _require(fingerprint, "fingerprint")
        _require(owner, "owner")
        return self._db.run(
            lambda: self._claim(fingerprint, owner),
            fallback=Claim(SUBMIT),
            what="claim an image (submitting without protection against paying twice)",
        )

    def _claim(self, fingerprint: str, owner: str) -> Claim:
        with self._db.write() as conn:
            now = self._now()
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
            entry = self._entry(row) if row is not None else None
            if entry is not None and now >= entry.expires_at:
                entry = None  # its results are gone: as if it never existed (replaced below)
            if entry is not None:
                if entry.state == "submitting":
                    if not self._stale(entry, now):
                        return Claim(WAIT)
                    log.info(
                        "Taking over a stale claim on image %s from %s (claimed %.0f s ago).",
                        fingerprint[:12],
                        entry.owner,
                        now - entry.claimed_at,
                    )
                elif entry.task_id or entry.result_url:
                    return Claim(
                        RESUME,
                        task_id=entry.task_id,
                        result_url=entry.result_url,
                        submitted_at=entry.submitted_at,
                    )
            conn.execute(
                f"INSERT OR REPLACE INTO tasks ({_COLUMNS}) VALUES (?, 'submitting', NULL, ?, ?, NULL, NULL, '', ?)",
                (fingerprint, owner, now, now),
            )
            return Claim(SUBMIT)

    def _stale(self, entry: JournalEntry, now: float) -> bool:
        return claim_is_stale(entry.claimed_at, entry.owner, now, self.claim_timeout)

    def heartbeat(self, fingerprint: str, owner: str) -> bool:
        """Our 'submitting' claim is still alive: move its time to now. True when it is still ours.

        The submitter calls this while its submit is retrying (journal_claims.HEARTBEAT_SECONDS),
        so a submit that outlives `claim_timeout` (long Retry-After waits, a slow upload) is never
        taken over by another process while its owner lives.
        """
        _require(fingerprint, "fingerprint")
        _require(owner, "owner")

        def op() -> bool:
            with self._db.write() as conn:
                cursor = conn.execute(
                    "UPDATE tasks SET claimed_at = ?, updated_at = ?"
                    " WHERE fingerprint = ? AND state = 'submitting' AND owner = ?",
                    (self._now(), self._now(), fingerprint, owner),
                )
                return cursor.rowcount > 0

        return self._db.run(op, fallback=False, what="keep a claim alive")

    def wait_for_claim(
        self,
        fingerprint: str,
        owner: str,
        *,
        timeout: float,
        clock: Clock = DEFAULT_CLOCK,
        check_cancel: CancelCheck | None = None,
        poll_interval: float = 0.25,
    ) -> Claim:
        """`claim()` until the answer is not "wait"; returns a "submit" or "resume" claim.

        Another process submitting the same image records its task id within seconds, or dies
        (its claim is then taken over), or exceeds `claim_timeout` (also taken over). Raises
        DeadlineExceeded after `timeout` seconds of `clock`, and whatever `check_cancel` raises
        (or RetouchCancelled) within `poll_interval` of a cancel.
        """
        end = clock.monotonic() + timeout
        while True:
            claim = self.claim(fingerprint, owner)
            if claim.action != WAIT:
                return claim
            left = end - clock.monotonic()
            if left <= 0:
                raise DeadlineExceeded(
                    "Another process is submitting this same image and has not recorded its task yet; "
                    "re-run in a moment to pick up its result without paying again."
                )
            sleep_interruptibly(clock, min(poll_interval, left), check_cancel)

    # -- recording ---------------------------------------------------------------------------

    def record_submitted(self, fingerprint: str, task_id: str, *, request_id: str = "") -> bool:
        """Record the paid task of a claim, before waiting for it. True when recorded.

        A failure is logged as an ERROR: the task is paid, and a re-run after a crash would not
        know it and pay again.
        """
        _require(fingerprint, "fingerprint")
        _require(task_id, "task_id")

        def op() -> bool:
            with self._db.write() as conn:
                now = self._now()
                row = conn.execute(
                    "SELECT task_id, state FROM tasks WHERE fingerprint = ?", (fingerprint,)
                ).fetchone()
                if row is not None and row[0] and row[0] != task_id and row[1] != "submitting":
                    log.warning(
                        "Image %s already had task %s recorded; replacing it with task %s (both were paid).",
                        fingerprint[:12],
                        row[0],
                        task_id,
                    )
                if row is None:
                    conn.execute(
                        f"INSERT INTO tasks ({_COLUMNS}) VALUES (?, 'submitted', ?, '', ?, ?, NULL, ?, ?)",
                        (fingerprint, task_id, now, now, request_id, now),
                    )
                else:
                    conn.execute(
                        "UPDATE tasks SET state = 'submitted', task_id = ?, submitted_at = ?, result_url = NULL,"
                        " request_id = ?, updated_at = ? WHERE fingerprint = ?",
                        (task_id, now, request_id, now, fingerprint),
                    )
            return True

        return self._db.run(
            op,
            fallback=False,
            what=f"record paid task {task_id} (request_id {request_id or '-'}); if this run is "
            "interrupted, a re-run will not know it and will pay again",
            level=logging.ERROR,
        )

    def record_result_url(self, fingerprint: str, url: str) -> bool:
        """Record where the finished task's result is, so a re-run can download it without polling."""
        _require(fingerprint, "fingerprint")
        _require(url, "url")

        def op() -> bool:
            with self._db.write() as conn:
                cursor = conn.execute(
                    "UPDATE tasks SET result_url = ?, updated_at = ?,"
                    " state = CASE WHEN state = 'done' THEN 'done' ELSE 'result' END"
                    " WHERE fingerprint = ? AND task_id IS NOT NULL",
                    (url, self._now(), fingerprint),
                )
                return cursor.rowcount > 0

        return self._db.run(op, fallback=False, what="record a result URL")

    def record_done(self, fingerprint: str) -> bool:
        """The result is downloaded and cached. The row stays until it expires, so a cache miss
        within the task lifetime can download the result again without paying."""
        _require(fingerprint, "fingerprint")

        def op() -> bool:
            with self._db.write() as conn:
                cursor = conn.execute(
                    "UPDATE tasks SET state = 'done', updated_at = ?"
                    " WHERE fingerprint = ? AND state IN ('submitted', 'result', 'done')",
                    (self._now(), fingerprint),
                )
                return cursor.rowcount > 0

        return self._db.run(op, fallback=False, what="mark a task done")

    def release(self, fingerprint: str, owner: str) -> bool:
        """Drop our own 'submitting' claim: the submit ended without a task id we could record.

        The pipeline also releases after SubmitOutcomeUnknown: the API has no way to find a
        task without its id, so holding the claim would only make the next run wait
        `claim_timeout` and then submit anyway. The error has told the user that a re-run
        may pay again; re-running is their decision, not a silent retry.
        """
        _require(fingerprint, "fingerprint")

        def op() -> bool:
            with self._db.write() as conn:
                cursor = conn.execute(
                    "DELETE FROM tasks WHERE fingerprint = ? AND state = 'submitting' AND owner = ?",
                    (fingerprint, owner),
                )
                return cursor.rowcount > 0

        return self._db.run(op, fallback=False, what="release a claim")

    def forget(self, fingerprint: str, *, task_id: str | None = None) -> bool:
        """Drop the row: the task failed or expired remotely, so the next run submits anew.

        Pass the `task_id` you found dead: the row is then only dropped if it still names that
        task, so a task another process submitted meanwhile is not forgotten.
        """
        _require(fingerprint, "fingerprint")

        def op() -> bool:
            with self._db.write() as conn:
                if task_id is None:
                    cursor = conn.execute("DELETE FROM tasks WHERE fingerprint = ?", (fingerprint,))
                else:
                    cursor = conn.execute(
                        "DELETE FROM tasks WHERE fingerprint = ? AND task_id = ?", (fingerprint, task_id)
                    )
                return cursor.rowcount > 0

        return self._db.run(op, fallback=False, what="forget a task")

    def forget_matching(self, what: str | None) -> int:
        """Drop every row (`what` None), or the rows whose task id is `what` or whose fingerprint
        starts with it (at least 8 characters); returns how many. For `journal forget`."""

        def op() -> int:
            with self._db.write() as conn:
                if what is None:
                    return conn.execute("DELETE FROM tasks").rowcount
                if len(what) < 8:
                    return conn.execute("DELETE FROM tasks WHERE task_id = ?", (what,)).rowcount
                return conn.execute(
                    "DELETE FROM tasks WHERE task_id = ? OR substr(fingerprint, 1, ?) = ?",
                    (what, len(what), what.lower()),
                ).rowcount

        return self._db.run(op, fallback=0, what="forget tasks")

    # -- reading and housekeeping ------------------------------------------------------------

    def get(self, fingerprint: str) -> JournalEntry | None:
        """The live row of a fingerprint, or None (also for an expired row)."""

        def op() -> JournalEntry | None:
            with self._db.read() as conn:
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM tasks WHERE fingerprint = ?", (fingerprint,)
                ).fetchone()
            if row is None:
                return None
            entry = self._entry(row)
            return None if self._now() >= entry.expires_at else entry

        return self._db.run(op, fallback=None, what="read the journal")

    def entries(self) -> list[JournalEntry]:
        """Every live row, most recently updated first."""

        def op() -> list[JournalEntry]:
            with self._db.read() as conn:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM tasks ORDER BY updated_at DESC").fetchall()
            now = self._now()
            return [entry for entry in map(self._entry, rows) if now < entry.expires_at]

        return self._db.run(op, fallback=[], what="read the journal")

    def purge_expired(self) -> int:
        """Delete rows whose task lifetime is over; returns how many."""

        def op() -> int:
            with self._db.write() as conn:
                cutoff = self._now() - self.task_lifetime
                cursor = conn.execute(
                    "DELETE FROM tasks WHERE COALESCE(submitted_at, claimed_at) <= ?", (cutoff,)
                )
                return cursor.rowcount

        return self._db.run(op, fallback=0, what="purge expired rows")

    def _entry(self, row: tuple) -> JournalEntry:
        return entry_from_row(row, self.task_lifetime)


def _require(value: object, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidParameterError(f"{name} must be a non-empty string, got {value!r}.")
