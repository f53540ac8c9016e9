"""The journal's table: one row per request fingerprint, and the JournalEntry read from it.

Row states: 'submitting' (claimed, task id not known yet) -> 'submitted' (task id recorded)
-> 'result' (result URL known) -> 'done' (result downloaded and cached).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

COLUMNS = "fingerprint, state, task_id, owner, claimed_at, submitted_at, result_url, request_id, updated_at"


def create_schema(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS tasks (
            fingerprint  TEXT PRIMARY KEY,
            state        TEXT NOT NULL CHECK (state IN ('submitting', 'submitted', 'result', 'done')),
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
    expires_at: float  # after this the row counts as absent (the task's results are gone)


def entry_from_row(row: tuple, task_lifetime: float) -> JournalEntry:
    """A row of `SELECT {COLUMNS}` as a JournalEntry; it expires `task_lifetime` after its task was born."""
    fingerprint, state, task_id, owner, claimed_at, submitted_at, result_url, request_id, updated_at = row
    born = submitted_at if submitted_at is not None else claimed_at
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
        expires_at=float(born) + task_lifetime,
    )
