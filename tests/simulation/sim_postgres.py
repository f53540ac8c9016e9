"""The money-path simulation (sim_harness.py) on the shared PostgreSQL ledger (issue 18).

The same seeded schedules, faults and invariants as on SQLite; only the ledger differs. Each
worker "process" has its own PostgresStore (its own connection pool), PostgresJournal and
PostgresResultCache on one database, emptied before each schedule. A step boundary is each
ledger call (`PostgresStore.run`), before any transaction starts, so a parked or killed worker
never holds a lock that another needs. The SQLite faults become the server's: "locked" is a
server that does not answer for a moment, "sqlite_error" a connection that breaks during the
call; both are retried within the store's wait, on the simulation's clock. Times are the
simulation's wall clock, as on SQLite.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sim_harness import CLAIM_TIMEOUT, SECRET, Outcome, SimClient, Simulation

from beauty_api.ledger.postgres_cache import PostgresResultCache
from beauty_api.ledger.postgres_journal import PostgresJournal
from beauty_api.ledger.postgres_store import PostgresStore
from beauty_api.run.api_backend import ApiBackend

TABLES = "face_beauty_tasks, face_beauty_results, face_beauty_blobs"
_FAULTS = {
    "locked": "connection failed: the server does not answer (simulated)",
    "sqlite_error": "server closed the connection unexpectedly (simulated)",
}


class PostgresSimulation(Simulation):
    """One schedule against a PostgreSQL database (emptied first)."""

    def __init__(self, seed: int, folder: Path, url: str) -> None:
        super().__init__(seed, folder)
        self.url = url
        self.stores: list[PostgresStore] = []

    def backend(self, worker: str, address: str) -> ApiBackend:
        """Each worker is one process: its own pool, journal and cache on the shared database."""
        made = self.backends.get((worker, address))
        if made is not None:
            return made
        ledger = self.ledgers.get(worker)
        if ledger is None:
            store = PostgresStore(self.url, clock=self.clock, time_source=lambda: self.wall[0], pool_size=2)
            self.stores.append(store)
            journal = PostgresJournal(store, claim_timeout=CLAIM_TIMEOUT)
            ledger = self.ledgers[worker] = (journal, PostgresResultCache(store))  # type: ignore[assignment]
        backend = ApiBackend(SimClient(self, address), journal=ledger[0], cache=ledger[1])
        backend.owner = self.owners[worker]
        self.backends[(worker, address)] = backend
        return backend

    def db_fault(self) -> None:
        """The SQLite faults are injected inside the store's call instead (see `_patched`)."""

    def _server_fault(self) -> str | None:
        if self.baton.name() is None or self.faulting:
            return None
        return self.take("locked", "sqlite_error")

    @contextmanager
    def _patched(self):
        original = PostgresStore.run
        sim = self

        def stepped(store: PostgresStore, op: Any, **kwargs: Any) -> Any:
            depth = getattr(sim.local, "depth", 0)
            fault = None
            if depth == 0:
                sim.baton.step("ledger")
                fault = sim._server_fault()
            sim.local.depth = depth + 1
            try:
                if fault is None:
                    return original(store, op, **kwargs)
                pending = [fault]

                def failing_once(conn: Any) -> Any:
                    if pending:
                        raise psycopg.OperationalError(_FAULTS[pending.pop()])
                    return op(conn)

                return original(store, failing_once, **kwargs)
            finally:
                sim.local.depth = depth

        PostgresStore.run = stepped  # type: ignore[method-assign]
        try:
            with super()._patched():
                yield
        finally:
            PostgresStore.run = original  # type: ignore[method-assign]
            for store in self.stores:
                store.close()

    def check_secrets(self) -> None:
        super().check_secrets()
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT t::text FROM face_beauty_tasks t UNION ALL SELECT r::text FROM face_beauty_results r"
            ).fetchall()
        if any(SECRET in row[0] for row in rows):
            self.violate(
                "no secret in any exception, log line or file", "the API key was found in the database"
            )


_lock = threading.Lock()


def run_schedule_postgres(seed: int, url: str, folder: Path) -> Outcome:
    """One schedule on `url` (its tables emptied first; `folder` for anything the workers write)."""
    with _lock, psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('face_beauty_tasks') IS NOT NULL").fetchone()[0]:
            conn.execute(f"TRUNCATE {TABLES}")
    return PostgresSimulation(seed, folder, url).run()
