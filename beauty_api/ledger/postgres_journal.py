"""The task journal in a shared PostgreSQL database: one row per request fingerprint for a whole farm.

The same rows, states and answers as the SQLite journal (journal.py), for many workers on many
machines: `claim()` runs in one transaction under a per-fingerprint advisory lock, so of any
number of workers that claim one image at once exactly one is told to submit; the others wait
for its task id and resume it. A claim is a lease (journal_claims.claim_is_stale): the claim of
an owner on this host lives exactly as long as that process; an owner on another host renews it
(`heartbeat`, the choke point's thread) while its request is under way, and it is taken over
only when it was not renewed for `claim_timeout`. Times come from the server's clock (or the
injected `time_source`), so machines whose clocks differ agree on every lease and age.

Row states: 'submitting' (claimed) -> 'sending' (the request is about to leave) -> 'submitted'
(task id) -> 'result' (result URL) -> 'done' ('done' without a task id: a sync request's result
went to the cache); and 'unknown': the request was sent and no answer came, so a paid task may
exist that nobody can find. A 'sending' claim whose owner died becomes 'unknown', never a
takeover (the dead owner's request may have been paid). An 'unknown' row answers UNKNOWN to
every claim (no automatic re-submit) until the user forgets it (`journal forget`), exactly as in
the SQLite journal. A row's age decides nothing (journal_claims.decide_claim); rows older than
FORGET_AFTER are purged as housekeeping (`purge_expired`), unknown outcomes excepted. Fails
closed: `claim`, `mark_sending`, `entries` and `forget_matching` raise SharedLedgerUnavailable
when the database cannot be used within their wait; the bookkeeping after a send is logged and
answers False, as in SQLite.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidParameterError
from .journal_claims import (
    CACHED,
    CLAIM_TIMEOUT,
    FORGET_AFTER,
    SUBMIT,
    UNKNOWN,
    Claim,
    decide_claim,
    marks_unknown,
    warn_if_replacing,
)
from .journal_rows import COLUMNS, JournalEntry, entry_from_row
from .ledger_store import wait_for_claim
from .postgres_store import LAZY_COMMIT, PostgresStore, SharedLedgerUnavailable

log = logging.getLogger(__name__)

CLAIM_WAIT = 5.0  # seconds one claim() waits for an unreachable server (wait_for_claim goes on)
__all__ = ["CACHED", "UNKNOWN", "PostgresJournal"]

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_SELECT = f"SELECT {COLUMNS} FROM face_beauty_tasks WHERE fingerprint = %s"


class PostgresJournal:
    """The shared task journal. Thread-safe (the store pools connections)."""

    def __init__(
        self,
        store: PostgresStore,
        *,
        claim_timeout: float = CLAIM_TIMEOUT,
    ) -> None:
        if claim_timeout <= 0:
            raise InvalidParameterError(f"claim_timeout ({claim_timeout}) must be > 0 seconds.")
        self.store = store
        self.location = store.location  # what `journal list` shows: the URL without secrets
        self.path = self.location  # (the CLI names a journal by its path; this one has none)
        self.claim_timeout = float(claim_timeout)

    # -- claiming ------------------------------------------------------------------------------

    def claim(
        self, fingerprint: str, owner: str, *, aliases: Sequence[str] = (), wait: float | None = None
    ) -> Claim:
        """Atomically decide whether this caller submits, resumes, waits, reads the cache, or is
        stopped by an unknown outcome. Raises SharedLedgerUnavailable rather than guess.

        `aliases` are older fingerprints of the same request: a row found under one is moved to
        `fingerprint` in the same transaction.
        """
        _require(fingerprint, "fingerprint")
        _require(owner, "owner")

        def op(conn: Any) -> Claim:
            with conn.transaction():
                conn.execute(_LOCK, (fingerprint,))
                now = self.store.now(conn)
                row = conn.execute(_SELECT, (fingerprint,)).fetchone()
                for alias in aliases:
                    if row is not None:
                        break
                    row = conn.execute(_SELECT, (alias,)).fetchone()
                    if row is not None:
                        conn.execute(
                            "UPDATE face_beauty_tasks SET fingerprint = %s WHERE fingerprint = %s",
                            (fingerprint, alias),
                        )
                        row = (fingerprint, *row[1:])
                entry = None if row is None else entry_from_row(row)
                claim = decide_claim(entry, now, self.claim_timeout)
                if marks_unknown(entry, claim):
                    conn.execute(
                        "UPDATE face_beauty_tasks SET state = 'unknown', updated_at = %s,"
                        " note = 'its sender stopped while the request was on the wire'"
                        " WHERE fingerprint = %s",
                        (now, fingerprint),
                    )
                if claim.action == SUBMIT:
                    conn.execute(
                        f"INSERT INTO face_beauty_tasks ({COLUMNS}, note)"
                        " VALUES (%s, 'submitting', NULL, %s, %s, NULL, NULL, '', %s, '')"
                        " ON CONFLICT (fingerprint) DO UPDATE SET state = 'submitting', task_id = NULL,"
                        " owner = EXCLUDED.owner, claimed_at = EXCLUDED.claimed_at, submitted_at = NULL,"
                        " result_url = NULL, request_id = '', updated_at = EXCLUDED.updated_at, note = ''",
                        (fingerprint, owner, now, now),
                    )
                return claim

        # A claim waits a few seconds for an unreachable server; wait_for_claim (the choke point)
        # goes on asking within the image's deadline, so the deadline bounds the whole wait.
        return self.store.run(
            op, what="claim an image", wait=min(self.store.wait, CLAIM_WAIT) if wait is None else wait
        )

    def heartbeat(self, fingerprint: str, owner: str) -> bool:
        """Renew our 'submitting' claim; True while it is still ours (False: taken over, or gone)."""
        _require(fingerprint, "fingerprint")
        _require(owner, "owner")
        return self._update(
            "UPDATE face_beauty_tasks SET claimed_at = %(now)s, updated_at = %(now)s"
            " WHERE fingerprint = %(fp)s AND state IN ('submitting', 'sending') AND owner = %(owner)s",
            {"fp": fingerprint, "owner": owner},
            what="keep a claim alive",
            durable=False,
        )

    def wait_for_claim(self, fingerprint: str, owner: str, **kwargs: Any) -> Claim:
        """`claim()` until it is not "wait" (ledger_store.wait_for_claim: an unreachable server is
        waited for within the same timeout)."""
        return wait_for_claim(self, fingerprint, owner, **kwargs)

    # -- recording -----------------------------------------------------------------------------

    def record_submitted(
        self, fingerprint: str, task_id: str, *, request_id: str = "", wait: float | None = None
    ) -> bool:
        """Record the paid task of a claim, before waiting for it. Raises SharedLedgerUnavailable
        (the caller must then tell the user the task id) when it cannot within `wait`."""
        _require(fingerprint, "fingerprint")
        _require(task_id, "task_id")

        def op(conn: Any) -> bool:
            with conn.transaction():
                conn.execute(_LOCK, (fingerprint,))
                now = self.store.now(conn)
                row = conn.execute(
                    "SELECT task_id, state FROM face_beauty_tasks WHERE fingerprint = %s", (fingerprint,)
                ).fetchone()
                if row is not None:
                    warn_if_replacing(fingerprint, row[0], row[1], task_id)
                conn.execute(
                    f"INSERT INTO face_beauty_tasks ({COLUMNS}, note)"
                    " VALUES (%s, 'submitted', %s, '', %s, %s, NULL, %s, %s, '')"
                    " ON CONFLICT (fingerprint) DO UPDATE SET state = 'submitted', task_id = EXCLUDED.task_id,"
                    " submitted_at = EXCLUDED.submitted_at, result_url = NULL,"
                    " request_id = EXCLUDED.request_id, updated_at = EXCLUDED.updated_at, note = ''",
                    (fingerprint, task_id, now, now, request_id, now),
                )
            return True

        return bool(
            self._best_effort(
                op,
                False,
                f"record paid task {task_id}; it is paid, and a re-run may pay for it again",
                level=logging.ERROR,
            )
        )

    def mark_sending(self, fingerprint: str, owner: str) -> None:
        """Our claim's request is about to leave: should we die now, its outcome is unknown, not
        free to take over. Raises SharedLedgerUnavailable (then nothing may be sent) when it
        cannot be written, or when the claim is no longer ours."""
        _require(fingerprint, "fingerprint")
        _require(owner, "owner")
        if not self._update(
            "UPDATE face_beauty_tasks SET state = 'sending', claimed_at = %(now)s, updated_at = %(now)s"
            " WHERE fingerprint = %(fp)s AND state = 'submitting' AND owner = %(owner)s",
            {"fp": fingerprint, "owner": owner},
            what="mark a request as leaving",
            strict=True,
        ):
            raise SharedLedgerUnavailable(
                f"The claim on image {fingerprint[:12]} in the shared ledger at {self.location} is no "
                "longer ours (taken over after it was not renewed); nothing was sent. Re-run to pick up "
                "the other worker's result."
            )

    def record_unknown(self, fingerprint: str, owner: str | None = None, *, note: str = "") -> bool:
        """A request was sent and no answer came: keep the row as 'unknown', so no worker pays again
        for this image until a person runs `journal forget`. With `owner`, only our own claim."""
        _require(fingerprint, "fingerprint")
        mine = "" if owner is None else " AND owner = %(owner)s"
        return self._update(
            "UPDATE face_beauty_tasks SET state = 'unknown', claimed_at = %(now)s, updated_at = %(now)s,"
            f" note = %(note)s WHERE fingerprint = %(fp)s AND state IN ('submitting', 'sending'){mine}",
            {"fp": fingerprint, "owner": owner, "note": note[:200]},
            what="record a request whose answer never came",
            level=logging.ERROR,
        )

    def record_answered(self, fingerprint: str) -> bool:
        """A sync request was answered and its result is in the cache: 'done' with no task id."""
        _require(fingerprint, "fingerprint")

        def op(conn: Any) -> bool:
            now = self.store.now(conn)
            conn.execute(
                f"INSERT INTO face_beauty_tasks ({COLUMNS}, note)"
                " VALUES (%s, 'done', NULL, '', %s, %s, NULL, '', %s, '') ON CONFLICT (fingerprint) DO UPDATE"
                " SET state = 'done', task_id = NULL, owner = '', claimed_at = EXCLUDED.claimed_at,"
                " submitted_at = EXCLUDED.submitted_at, result_url = NULL, request_id = '',"
                " updated_at = EXCLUDED.updated_at, note = ''",
                (fingerprint, now, now, now),
            )
            return True

        return bool(self._best_effort(op, False, "record an answered request", level=logging.ERROR))

    def record_result_url(self, fingerprint: str, url: str) -> bool:
        """Record where the finished task's result is, so a re-run can download it without polling."""
        _require(fingerprint, "fingerprint")
        _require(url, "url")
        return self._update(
            "UPDATE face_beauty_tasks SET result_url = %(url)s, updated_at = %(now)s,"
            " state = CASE WHEN state = 'done' THEN 'done' ELSE 'result' END"
            " WHERE fingerprint = %(fp)s AND task_id IS NOT NULL",
            {"fp": fingerprint, "url": url},
            what="record a result URL",
            durable=False,
        )

    def record_done(self, fingerprint: str) -> bool:
        """The result is downloaded and cached; the row stays until purged after FORGET_AFTER."""
        _require(fingerprint, "fingerprint")
        return self._update(
            "UPDATE face_beauty_tasks SET state = 'done', updated_at = %(now)s"
            " WHERE fingerprint = %(fp)s AND state IN ('submitted', 'result', 'done')",
            {"fp": fingerprint},
            what="mark a task done",
            durable=False,
        )

    def release(self, fingerprint: str, owner: str) -> bool:
        """Drop our own 'submitting' claim: the submit ended before any request could have left."""
        _require(fingerprint, "fingerprint")
        return self._update(
            "DELETE FROM face_beauty_tasks WHERE fingerprint = %(fp)s AND state IN ('submitting', 'sending')"
            " AND owner = %(owner)s",
            {"fp": fingerprint, "owner": owner},
            what="release a claim",
        )

    def forget(self, fingerprint: str, *, task_id: str | None = None) -> bool:
        """Drop the row (only while it still names `task_id`, when given): the next run submits anew."""
        _require(fingerprint, "fingerprint")
        if task_id is None:
            sql = "DELETE FROM face_beauty_tasks WHERE fingerprint = %(fp)s"
        else:
            sql = "DELETE FROM face_beauty_tasks WHERE fingerprint = %(fp)s AND task_id = %(task)s"
        return self._update(sql, {"fp": fingerprint, "task": task_id}, what="forget a task")

    def forget_matching(self, what: str | None) -> int:
        """Drop every row (None), or those whose task id is `what` or whose fingerprint starts with
        it (8+ characters); returns how many. For `journal forget`."""

        def op(conn: Any) -> int:
            if what is None:
                return conn.execute("DELETE FROM face_beauty_tasks").rowcount
            if len(what) < 8:
                return conn.execute("DELETE FROM face_beauty_tasks WHERE task_id = %s", (what,)).rowcount
            return conn.execute(
                "DELETE FROM face_beauty_tasks WHERE task_id = %s OR left(fingerprint, %s) = %s",
                (what, len(what), what.lower()),
            ).rowcount

        return int(self.store.run(op, what="forget tasks"))

    # -- reading and housekeeping --------------------------------------------------------------

    def get(self, fingerprint: str) -> JournalEntry | None:
        """The row of a fingerprint, or None."""

        def op(conn: Any) -> JournalEntry | None:
            row = conn.execute(_SELECT, (fingerprint,)).fetchone()
            return None if row is None else entry_from_row(row)

        return self._best_effort(op, None, "read the journal")

    def entries(self) -> list[JournalEntry]:
        """Every row, most recently updated first."""

        def op(conn: Any) -> list[JournalEntry]:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM face_beauty_tasks ORDER BY updated_at DESC"
            ).fetchall()
            return [entry_from_row(row) for row in rows]

        return self.store.run(op, what="read the journal")

    def purge_expired(self) -> int:
        """Delete rows older than FORGET_AFTER (housekeeping); returns how many. Claims are settled
        by claim(), and an unknown outcome waits for the user."""

        def op(conn: Any) -> int:
            cutoff = self.store.now(conn) - FORGET_AFTER
            return conn.execute(
                "DELETE FROM face_beauty_tasks WHERE COALESCE(submitted_at, claimed_at) <= %s"
                " AND state NOT IN ('submitting', 'sending', 'unknown')",
                (cutoff,),
            ).rowcount

        return int(self._best_effort(op, 0, "purge expired rows"))

    def reset(self) -> None:
        """`journal reset` moves a damaged file aside; a database is repaired with its own tools."""
        return None

    def _update(
        self,
        sql: str,
        params: dict[str, Any],
        *,
        what: str,
        durable: bool = True,
        strict: bool = False,
        level: int = logging.WARNING,
    ) -> bool:
        """One statement; True when it changed a row. `durable=False` for bookkeeping that a crash
        may lose at no cost (a renewal, a result URL, 'done'): its commit does not wait for the disk.
        Not `strict`: a database that cannot be used within the wait is logged and answers False."""

        def op(conn: Any) -> bool:
            with conn.transaction():
                if not durable:
                    conn.execute(LAZY_COMMIT)
                return conn.execute(sql, {**params, "now": self.store.now(conn)}).rowcount > 0

        if strict:
            return bool(self.store.run(op, what=what))
        return bool(self._best_effort(op, False, what, level=level))

    def _best_effort(self, op: Any, fallback: Any, what: str, *, level: int = logging.WARNING) -> Any:
        """As the SQLite journal's bookkeeping: logged, never raised (claims and sends are strict)."""
        try:
            return self.store.run(op, what=what)
        except SharedLedgerUnavailable as error:
            log.log(level, "%s", error)
            return fallback


def _require(value: object, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidParameterError(f"{name} must be a non-empty string, got {value!r}.")
