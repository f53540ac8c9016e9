"""How long recent tasks took, per API address: what the poll schedule learns from.

Kept in `timings.sqlite3` in the state folder (next to the journal), so every process on this
machine (each CLI run, ComfyUI) starts from what earlier ones saw. Only the newest
`KEEP` observations per address are kept. Private like every state file, and never needed:
when the file cannot be used the timings live in memory for this process only.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from ..clock import Clock
from ..config import normalise_base_url
from ..ledger.private_store import PrivateSqlite
from .poll_schedule import Expectation, Observation, TaskTimer, expect

KEEP = 20
SCHEMA_VERSION = 1


def _setup(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE timings (api TEXT NOT NULL, seen_at REAL NOT NULL, before REAL NOT NULL, after REAL NOT NULL)"
    )
    conn.execute("CREATE INDEX timings_by_api ON timings (api, seen_at)")


class TaskTimings:
    """Recent task durations per API address; thread- and process-safe. `path=None`: memory only."""

    def __init__(self, path: Path | None = None) -> None:
        self._memory: dict[str, list[Observation]] = {}
        self._lock = threading.Lock()
        self._db = (
            None
            if path is None
            else PrivateSqlite(Path(path), version=SCHEMA_VERSION, setup=_setup, label="task timings")
        )

    def recent(self, base_url: str) -> list[Observation]:
        """The newest observations for this address, newest first (at most KEEP)."""
        api = normalise_base_url(base_url)
        with self._lock:
            remembered = list(self._memory.get(api, ()))
        if self._db is None:
            return remembered

        def read() -> list[Observation]:
            with self._db.read() as conn:  # type: ignore[union-attr]
                rows = conn.execute(
                    "SELECT before, after FROM timings WHERE api = ? ORDER BY seen_at DESC LIMIT ?",
                    (api, KEEP),
                ).fetchall()
            return [Observation(float(before), float(after)) for before, after in rows]

        return self._db.run(read, fallback=remembered, what="read the task timings") or remembered

    def record(self, base_url: str, observation: Observation) -> None:
        """Remember one finished task (and forget the oldest beyond KEEP)."""
        api = normalise_base_url(base_url)
        with self._lock:
            self._memory[api] = [observation, *self._memory.get(api, ())][:KEEP]
        if self._db is None:
            return

        def write() -> None:
            with self._db.write() as conn:  # type: ignore[union-attr]
                conn.execute(
                    "INSERT INTO timings (api, seen_at, before, after) VALUES (?, ?, ?, ?)",
                    (api, time.time(), observation.before, observation.after),
                )
                conn.execute(
                    "DELETE FROM timings WHERE api = ? AND rowid NOT IN "
                    "(SELECT rowid FROM timings WHERE api = ? ORDER BY seen_at DESC LIMIT ?)",
                    (api, api, KEEP),
                )

        self._db.run(write, fallback=None, what="record a task timing")


class TaskPolling:
    """One task's polling as the backend runs it: when to look, and what the task teaches.

    For a task submitted just now (`submitted_at`, the clock's time its submit was sent) the
    expectation comes from this address's recent tasks and, once the task is seen done, its
    timing is recorded. A resumed task (no `submitted_at`) is polled on the prior and teaches
    nothing: when it started is not known.
    """

    def __init__(self, timings: TaskTimings, base_url: str, clock: Clock, submitted_at: float | None) -> None:
        self.timings = timings
        self.base_url = base_url
        self.clock = clock
        self.learning = submitted_at is not None
        self.since = submitted_at if submitted_at is not None else clock.monotonic()
        self.expectation: Expectation | None = expect(timings.recent(base_url)) if self.learning else None
        self.timer = TaskTimer()

    @property
    def expected(self) -> float | None:
        """Seconds after the submit the task should be done (for progress displays), if known."""
        return None if self.expectation is None else self.expectation.seconds

    def saw(self, done: bool) -> None:
        self.timer.saw(done, self.clock.monotonic() - self.since)

    def finished(self) -> None:
        if self.learning and self.timer.observation is not None:
            self.timings.record(self.base_url, self.timer.observation)
