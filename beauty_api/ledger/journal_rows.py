"""The journal's table: one row per request fingerprint, and the JournalEntry read from it.

Row states: 'submitting' (claimed, nothing sent yet) -> 'sending' (the request may be on the wire) -> 'submitted' (task id recorded)
-> 'result' (result URL known) -> 'done' (result downloaded and cached; a sync request's row is
'done' with no task id: its result went straight to the cache). 'unknown': a request was sent
and its answer never came (a paid task may exist); it is not sent again until forgotten.
A 'sending' row whose owner died becomes 'unknown' rather than being taken over.
Schema 2 added 'sending' and 'unknown' (a schema-1 file is migrated in place, rows kept).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from ..errors import InvalidParameterError

COLUMNS = "fingerprint, state, task_id, owner, claimed_at, submitted_at, result_url, request_id, updated_at"


SCHEMA_VERSION = 2


def create_schema(conn: sqlite3.Connection, table: str = "tasks") -> None:
    conn.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {table} (
            fingerprint  TEXT PRIMARY KEY,
            state        TEXT NOT NULL
                         CHECK (state IN ('submitting', 'sending', 'submitted', 'result', 'done', 'unknown')),
            task_id      TEXT,
            owner        TEXT NOT NULL DEFAULT '',
            claimed_at   REAL NOT NULL,
            submitted_at REAL,
            result_url   TEXT,
            request_id   TEXT NOT NULL DEFAULT '',
            updated_at   REAL NOT NULL
        )
        """
    )


def migrate_schema(conn: sqlite3.Connection, old_version: int) -> None:
    """Schema 1 -> 2: the state check gains 'unknown' (SQLite cannot alter a CHECK: copy the rows)."""
    if old_version >= 2:
        return
    create_schema(conn, "tasks_v2")
    conn.execute(f"INSERT OR REPLACE INTO tasks_v2 ({COLUMNS}) SELECT {COLUMNS} FROM tasks")
    conn.execute("DROP TABLE tasks")
    conn.execute("ALTER TABLE tasks_v2 RENAME TO tasks")


@dataclass(frozen=True)
class JournalEntry:
    """One journal row. Times are wall-clock seconds (the journal's time_source)."""

    fingerprint: str
    state: str
    task_id: str | None
    owner: str
    claimed_at: float
    submitted_at: float | None
    result_url: str | None = field(repr=False)
    request_id: str
    updated_at: float


def entry_from_row(row: tuple) -> JournalEntry:
    """A row of `SELECT {COLUMNS}` as a JournalEntry. Its age decides nothing (journal_claims.decide_claim)."""
    fingerprint, state, task_id, owner, claimed_at, submitted_at, result_url, request_id, updated_at = row
    return JournalEntry(
        fingerprint=fingerprint,
        state=state,
        task_id=task_id,
        owner=owner or "",
        claimed_at=float(claimed_at),
        submitted_at=None if submitted_at is None else float(submitted_at),
        result_url=result_url,
        request_id=request_id or "",
        updated_at=float(updated_at),
    )


def select_row(conn: sqlite3.Connection, fingerprint: str) -> tuple | None:
    return conn.execute(f"SELECT {COLUMNS} FROM tasks WHERE fingerprint = ?", (fingerprint,)).fetchone()


def require_text(value: object, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidParameterError(f"{name} must be a non-empty string, got {value!r}.")
