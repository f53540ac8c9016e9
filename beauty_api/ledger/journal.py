"""The task journal: the SQLite `TaskLedger` (ledger_store.py), one row per request fingerprint.

A row records the claim BEFORE a request is sent and its outcome (task id, result, "outcome
unknown") right after, so a re-run after a crash, Cancel, timeout or re-queue resumes instead of
paying again. `claim()` is atomic across threads and processes (`BEGIN IMMEDIATE`), and fails
closed: it answers from the file or raises LedgerUnavailable (one line: the file and the fix); a
damaged file is never replaced behind the user's back (`journal reset`). Bookkeeping after the
answer stays best effort. A row's age decides nothing (journal_claims.decide_claim). Readers read while
another process writes (WAL). No secret reaches it; the file is 0o600 (result URLs may be signed).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError
from .journal_claims import (
    CACHED,
    CLAIM_TIMEOUT,
    FORGET_AFTER,
    RESUME,
    SUBMIT,
    UNKNOWN,
    WAIT,
    Claim,
    decide_claim,
    marks_unknown,
    new_owner,
    owner_is_dead,
    warn_if_replacing,
)
from .journal_rows import COLUMNS as _COLUMNS
from .journal_rows import (
    SCHEMA_VERSION,
    JournalEntry,
    create_schema,
    entry_from_row,
    migrate_schema,
    require_text,
    select_row,
)
from .ledger_store import wait_for_claim
from .private_store import PrivateSqlite, move_aside

# Re-exported: callers import the journal's whole vocabulary from here.
__all__ = ["CACHED", "CLAIM_TIMEOUT", "RESUME", "SUBMIT", "UNKNOWN", "WAIT", "Claim", "JournalEntry"]
__all__ += ["TaskJournal", "new_owner", "owner_is_dead"]

log = logging.getLogger(__name__)


class TaskJournal:
    """SQLite record of claims and paid requests, shared by threads and processes (a connection per call).

    `time_source` is wall-clock time (rows are compared across processes and restarts);
    `claim_timeout` is how long the claim of an owner on another host survives without a
    heartbeat (a local owner's claim lives as long as its process: journal_claims.py);
    `busy_timeout` is how long one call waits for another process's write lock. A row is kept
    until the API says its task is gone (or the user forgets it); rows older than FORGET_AFTER
    are purged as housekeeping when the journal opens, unknown outcomes excepted.
    """

    def __init__(
        self,
        path: Path,
        *,
        time_source: Callable[[], float] = time.time,
        claim_timeout: float = CLAIM_TIMEOUT,
        busy_timeout: float = 15.0,
    ) -> None:
        if claim_timeout <= 0:
            raise InvalidParameterError(f"claim_timeout ({claim_timeout}) must be > 0 seconds.")
        self.path = Path(path)
        self.claim_timeout = float(claim_timeout)
        self._now = time_source
        self._db = PrivateSqlite(
            self.path,
            version=SCHEMA_VERSION,
            setup=create_schema,
            migrate=migrate_schema,
            label="task journal",
            synchronous="FULL",  # a recorded task id must survive a power cut, not only a crash
            busy_timeout=busy_timeout,
            heal=False,  # a damaged journal may still know paid tasks: it fails closed instead
        )
        try:
            self._db.open()
        except (sqlite3.Error, OSError) as error:
            # Not fatal here (`journal list` still opens it): every claim raises LedgerUnavailable.
            log.warning("The task journal at %s cannot be opened yet (%s).", self.path, error)
        else:
            self.purge_expired()

    # -- claiming ----------------------------------------------------------------------------

    def claim(self, fingerprint: str, owner: str, *, aliases: Sequence[str] = ()) -> Claim:
        """Atomically decide whether this caller submits, resumes, waits, reads the cache or refuses.

        `aliases` are older fingerprints of the same request (fingerprint.py): a row found under
        one is moved to `fingerprint` in the same transaction. Raises LedgerUnavailable when the
        journal cannot answer (`.transient` while another process holds its lock).
        """
        require_text(fingerprint, "fingerprint")
        require_text(owner, "owner")
        return self._db.run_strict(lambda: self._claim(fingerprint, owner, aliases))

    def _claim(self, fingerprint: str, owner: str, aliases: Sequence[str]) -> Claim:
        with self._db.write() as conn:
            now = self._now()
            row = select_row(conn, fingerprint)
            for alias in aliases:
                if row is not None:
                    break
                row = select_row(conn, alias)
                if row is not None:
                    conn.execute(
                        "UPDATE tasks SET fingerprint = ? WHERE fingerprint = ?", (fingerprint, alias)
                    )
            entry = entry_from_row(row) if row is not None else None
            claim = decide_claim(entry, now, self.claim_timeout)
            if marks_unknown(entry, claim):
                conn.execute("UPDATE tasks SET state = 'unknown' WHERE fingerprint = ?", (fingerprint,))
            if claim.action == SUBMIT:
                conn.execute(
                    f"INSERT OR REPLACE INTO tasks ({_COLUMNS}) VALUES (?, 'submitting', NULL, ?, ?, NULL, NULL, '', ?)",
                    (fingerprint, owner, now, now),
                )
            return claim

    def heartbeat(self, fingerprint: str, owner: str) -> bool:
        """Our claim is alive (the choke point's heartbeat thread, while sending): True when still ours."""
        require_text(fingerprint, "fingerprint")
        require_text(owner, "owner")

        def op() -> bool:
            with self._db.write() as conn:
                cursor = conn.execute(
                    "UPDATE tasks SET claimed_at = ?, updated_at = ?"
                    " WHERE fingerprint = ? AND state IN ('submitting', 'sending') AND owner = ?",
                    (self._now(), self._now(), fingerprint, owner),
                )
                return cursor.rowcount > 0

        return self._db.run(op, fallback=False, what="keep a claim alive")

    def wait_for_claim(self, fingerprint: str, owner: str, **kwargs: Any) -> Claim:
        """`claim()` until it is not "wait" (ledger_store.wait_for_claim)."""
        return wait_for_claim(self, fingerprint, owner, **kwargs)

    # -- recording ---------------------------------------------------------------------------

    def record_submitted(self, fingerprint: str, task_id: str, *, request_id: str = "") -> bool:
        """Record the paid task of a claim, before waiting for it. True when recorded (a failure is an ERROR)."""
        require_text(fingerprint, "fingerprint")
        require_text(task_id, "task_id")

        def op() -> bool:
            with self._db.write() as conn:
                now = self._now()
                row = conn.execute(
                    "SELECT task_id, state FROM tasks WHERE fingerprint = ?", (fingerprint,)
                ).fetchone()
                if row is not None:
                    warn_if_replacing(fingerprint, row[0], row[1], task_id)
                conn.execute(
                    f"INSERT OR REPLACE INTO tasks ({_COLUMNS}) VALUES (?, 'submitted', ?, '', ?, ?, NULL, ?, ?)",
                    (fingerprint, task_id, now, now, request_id, now),
                )
            return True

        return self._db.run(
            op,
            fallback=False,
            what=f"record paid task {task_id} (request_id {request_id or '-'}); if this run is "
            "interrupted, a re-run will not know it",
            level=logging.ERROR,
        )

    def mark_sending(self, fingerprint: str, owner: str) -> None:
        """Our claim's request is about to leave: should we die now, the outcome is unknown, not
        free to take over. Raises LedgerUnavailable (then nothing is sent) when it cannot be written."""
        require_text(fingerprint, "fingerprint")

        def op() -> None:
            with self._db.write() as conn:
                cursor = conn.execute(
                    "UPDATE tasks SET state = 'sending', claimed_at = ?, updated_at = ?"
                    " WHERE fingerprint = ? AND state = 'submitting' AND owner = ?",
                    (self._now(), self._now(), fingerprint, owner),
                )
                if cursor.rowcount != 1:
                    raise sqlite3.OperationalError("the claim is no longer ours (taken over)")

        self._db.run_strict(op)

    def record_unknown(self, fingerprint: str, owner: str | None = None) -> bool:
        """Sent, answer not received: nothing is sent again until forgotten (with `owner`: only our claim)."""
        require_text(fingerprint, "fingerprint")

        def op() -> bool:
            with self._db.write() as conn:
                now = self._now()
                mine = "" if owner is None else " AND owner = ?"
                cursor = conn.execute(
                    "UPDATE tasks SET state = 'unknown', claimed_at = ?, updated_at = ?"
                    f" WHERE fingerprint = ? AND state IN ('submitting', 'sending'){mine}",
                    (now, now, fingerprint) + (() if owner is None else (owner,)),
                )
                return cursor.rowcount > 0

        return self._db.run(
            op, fallback=False, what="record a request whose answer never came", level=logging.ERROR
        )

    def record_answered(self, fingerprint: str) -> bool:
        """A sync request was answered and its result is in the cache: 'done' with no task id."""
        require_text(fingerprint, "fingerprint")

        def op() -> bool:
            with self._db.write() as conn:
                now = self._now()
                conn.execute(
                    f"INSERT OR REPLACE INTO tasks ({_COLUMNS}) VALUES (?, 'done', NULL, '', ?, ?, NULL, '', ?)",
                    (fingerprint, now, now, now),
                )
            return True

        return self._db.run(op, fallback=False, what="record an answered request")

    def record_result_url(self, fingerprint: str, url: str) -> bool:
        """Record where the finished task's result is, so a re-run can download it without polling."""
        require_text(fingerprint, "fingerprint")
        require_text(url, "url")

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
        """The result is downloaded and cached; the row stays (a cache miss re-downloads), purged after FORGET_AFTER."""
        require_text(fingerprint, "fingerprint")

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
        """Drop our own 'submitting' claim: the request provably created no task (refused, or never sent)."""
        require_text(fingerprint, "fingerprint")

        def op() -> bool:
            with self._db.write() as conn:
                cursor = conn.execute(
                    "DELETE FROM tasks WHERE fingerprint = ? AND state IN ('submitting', 'sending') AND owner = ?",
                    (fingerprint, owner),
                )
                return cursor.rowcount > 0

        return self._db.run(op, fallback=False, what="release a claim")

    def forget(self, fingerprint: str, *, task_id: str | None = None) -> bool:
        """Drop the row (the task failed or expired remotely); with `task_id`, only if it still names it."""
        require_text(fingerprint, "fingerprint")

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

        return self._db.run_strict(op)

    def reset(self) -> Path | None:
        """`journal reset`: move a damaged (or newer) file aside; the next use starts anew."""
        return move_aside(self.path)

    # -- reading and housekeeping ------------------------------------------------------------

    def get(self, fingerprint: str) -> JournalEntry | None:
        """The row of a fingerprint, or None."""

        def op() -> JournalEntry | None:
            with self._db.read() as conn:
                row = select_row(conn, fingerprint)
            if row is None:
                return None
            return entry_from_row(row)

        return self._db.run(op, fallback=None, what="read the journal")

    def entries(self) -> list[JournalEntry]:
        """Every row, newest first (LedgerUnavailable: `journal list` says why)."""

        def op() -> list[JournalEntry]:
            with self._db.read() as conn:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM tasks ORDER BY updated_at DESC").fetchall()
            return [entry_from_row(row) for row in rows]

        return self._db.run_strict(op)

    def purge_expired(self) -> int:
        """Delete rows older than FORGET_AFTER (housekeeping); returns how many. Claims are settled
        by claim(), and an unknown outcome waits for the user."""

        def op() -> int:
            with self._db.write() as conn:
                cutoff = self._now() - FORGET_AFTER
                cursor = conn.execute(
                    "DELETE FROM tasks WHERE COALESCE(submitted_at, claimed_at) <= ?"
                    " AND state NOT IN ('submitting', 'sending', 'unknown')",
                    (cutoff,),
                )
                return cursor.rowcount

        return self._db.run(op, fallback=0, what="purge expired rows")
