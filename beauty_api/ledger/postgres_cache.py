"""Paid results kept in the shared PostgreSQL ledger, so any worker of a farm reuses any other's.

The same contract as the SQLite cache (result_cache.py): a key (request fingerprint) maps to
the exact bytes the API returned plus a small JSON note; the bytes are content-addressed
(`face_beauty_blobs`, bytea, shared by keys); every read verifies the sha256, so damaged
bytes are a miss (and are dropped), never wrong pixels; limits are total size (least recently
used first) and age since creation; orphaned blobs are swept when a worker opens the cache,
at most once per SWEEP_INTERVAL for the whole farm (the time is kept in the database).

Why in the database rather than on a shared folder: one thing to run, secure and back up
(`pg_dump` takes the journal and the results together, consistently), no network file system
whose locking and permissions differ by platform, and a result is stored with its index in one
transaction, so no worker ever sees an index row without its bytes. Writes (put, evict, clear,
sweep) take one advisory lock (CACHE_LOCK), as the SQLite cache takes its write lock.

Best effort, as before: a database that cannot be used is a miss or a result not kept (plus a
log line), never a failed retouch; the journal, which fails closed, guards the money.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from ..errors import InvalidParameterError
from .cache_meta import load_meta, prepare_entry
from .postgres_schema import CACHE_LOCK
from .postgres_store import PostgresStore, SharedLedgerUnavailable
from .result_cache import DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, SWEEP_INTERVAL, CachedResult, CacheStats

log = logging.getLogger(__name__)

T = TypeVar("T")

_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_ORPHANS = (
    "DELETE FROM face_beauty_blobs b WHERE NOT EXISTS"
    " (SELECT 1 FROM face_beauty_results r WHERE r.sha256 = b.sha256)"
)


class PostgresResultCache:
    """The result cache of a farm. Never raises for database trouble after construction."""

    enabled = True
    directory = None  # no folder: `location` names the database

    def __init__(
        self,
        store: PostgresStore,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float = DEFAULT_MAX_AGE,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise InvalidParameterError(f"max_bytes must be a whole number of bytes >= 0, got {max_bytes!r}.")
        if not max_age > 0:
            raise InvalidParameterError(f"max_age must be a number of seconds > 0, got {max_age!r}.")
        self.store = store
        self.location = store.location
        self.max_bytes = max_bytes
        self.max_age = float(max_age)
        self._best_effort(self._sweep_if_due, None, "sweep orphaned results", wait=0.0)

    # -- reading -------------------------------------------------------------------------------

    def get(self, key: str) -> CachedResult | None:
        """The cached result of `key`, verified, or None. Damaged bytes are dropped."""

        def op(conn: Any) -> CachedResult | None:
            row = conn.execute(
                "SELECT r.sha256, r.created_at, r.meta, b.data FROM face_beauty_results r"
                " JOIN face_beauty_blobs b USING (sha256) WHERE r.key = %s",
                (key,),
            ).fetchone()
            if row is None:
                return None
            sha, created_at, meta_text, data = row
            data = bytes(data)
            now = self.store.now(conn)
            if now - created_at > self.max_age:
                self._drop(conn, "DELETE FROM face_beauty_results WHERE key = %s", key)
                return None
            if hashlib.sha256(data).hexdigest() != sha:
                count = self._drop(conn, "DELETE FROM face_beauty_results WHERE sha256 = %s", sha)
                log.warning(
                    "A cached result in the shared ledger was damaged (sha256 %s, %d entries); it was "
                    "dropped and will be fetched again.",
                    sha[:12],
                    count,
                )
                return None
            conn.execute("UPDATE face_beauty_results SET last_used_at = %s WHERE key = %s", (now, key))
            return CachedResult(key, data, load_meta(meta_text), sha, float(created_at), now)

        # A cache that does not answer at once is a miss: the journal's claim, which follows,
        # waits for the server and fails closed.
        return self._best_effort(op, None, "read the result cache", wait=0.0)

    def _drop(self, conn: Any, sql: str, value: str) -> int:
        with conn.transaction():
            conn.execute(_LOCK, (CACHE_LOCK,))
            count = conn.execute(sql, (value,)).rowcount
            conn.execute(_ORPHANS)
        return int(count)

    # -- writing -------------------------------------------------------------------------------

    def put(self, key: str, data: bytes, meta: Mapping[str, Any] | None = None) -> bool:
        """Keep `data` as the result of `key`, then evict down to the limits; True when kept. Never
        raises for database trouble. `meta` must be small and JSON-friendly (URLs and secrets are left out)."""
        entry = prepare_entry(key, data, meta, self.max_bytes)
        if entry is None:
            return False
        data, sha, meta_text = entry.data, entry.sha256, entry.meta_text

        def op(conn: Any) -> bool:
            with conn.transaction():
                conn.execute(_LOCK, (CACHE_LOCK,))
                now = self.store.now(conn)
                old = conn.execute("SELECT sha256 FROM face_beauty_results WHERE key = %s", (key,)).fetchone()
                conn.execute(
                    "INSERT INTO face_beauty_blobs (sha256, size, data) VALUES (%s, %s, %s)"
                    " ON CONFLICT (sha256) DO NOTHING",
                    (sha, len(data), data),
                )
                conn.execute(
                    "INSERT INTO face_beauty_results (key, sha256, size, created_at, last_used_at, meta)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET sha256 = EXCLUDED.sha256,"
                    " size = EXCLUDED.size, created_at = EXCLUDED.created_at,"
                    " last_used_at = EXCLUDED.last_used_at, meta = EXCLUDED.meta",
                    (key, sha, len(data), now, now, meta_text),
                )
                if old is not None and old[0] != sha:  # the key's old bytes, unless another key has them
                    conn.execute(_ORPHANS + " AND b.sha256 = %s", (old[0],))
                self._evict(conn, now)
            return True

        return self._best_effort(op, False, "store a result in the cache")

    # -- limits --------------------------------------------------------------------------------

    def evict(self) -> int:
        """Apply the age and size limits now and remove orphaned bytes; returns entries removed."""

        def op(conn: Any) -> int:
            with conn.transaction():
                conn.execute(_LOCK, (CACHE_LOCK,))
                removed = self._evict(conn, self.store.now(conn))
                conn.execute(_ORPHANS)
                self._mark_swept(conn)
            return removed

        return self._best_effort(op, 0, "evict old cache entries")

    def _evict(self, conn: Any, now: float) -> int:
        """Inside the cache lock: drop entries older than max_age, then least recently used ones
        until the total fits. Cheap when within the limits (two aggregate reads)."""
        total, oldest = conn.execute(
            "SELECT (SELECT COALESCE(SUM(size), 0) FROM face_beauty_blobs),"
            " (SELECT MIN(created_at) FROM face_beauty_results)"
        ).fetchone()
        if total <= self.max_bytes and (oldest is None or now - oldest <= self.max_age):
            return 0
        removed = conn.execute(
            "DELETE FROM face_beauty_results WHERE created_at < %s", (now - self.max_age,)
        ).rowcount
        conn.execute(_ORPHANS)
        rows = conn.execute(
            "SELECT r.key, r.sha256, b.size FROM face_beauty_results r JOIN face_beauty_blobs b USING (sha256)"
            " ORDER BY r.last_used_at ASC, r.created_at ASC"
        ).fetchall()
        refs: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for _, sha, size in rows:
            refs[sha] = refs.get(sha, 0) + 1
            sizes[sha] = int(size)
        total = sum(sizes.values())
        doomed: list[str] = []
        for key, sha, _ in rows:
            if total <= self.max_bytes:
                break
            doomed.append(key)
            refs[sha] -= 1
            if refs[sha] == 0:  # bytes shared by several keys go with the last of them
                total -= sizes[sha]
        if doomed:
            conn.execute("DELETE FROM face_beauty_results WHERE key = ANY(%s)", (doomed,))
            conn.execute(_ORPHANS)
        return int(removed) + len(doomed)

    def _sweep_if_due(self, conn: Any) -> None:
        """On open: remove orphaned bytes, at most once per SWEEP_INTERVAL for the whole farm."""
        with conn.transaction():
            row = conn.execute("SELECT last_sweep FROM face_beauty_schema WHERE id = 1").fetchone()
            now = self.store.now(conn)
            if row is not None and abs(now - float(row[0])) < SWEEP_INTERVAL:
                return
            conn.execute(_LOCK, (CACHE_LOCK,))
            conn.execute(_ORPHANS)
            self._mark_swept(conn)

    def _mark_swept(self, conn: Any) -> None:
        conn.execute("UPDATE face_beauty_schema SET last_sweep = %s WHERE id = 1", (self.store.now(conn),))

    # -- whole cache ---------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """How many entries and how many bytes (shared bytes counted once)."""

        def op(conn: Any) -> tuple[int, int]:
            count, total = conn.execute(
                "SELECT (SELECT count(*) FROM face_beauty_results),"
                " (SELECT COALESCE(SUM(b.size), 0) FROM face_beauty_blobs b WHERE EXISTS"
                "  (SELECT 1 FROM face_beauty_results r WHERE r.sha256 = b.sha256))"
            ).fetchone()
            return int(count), int(total)

        count, total = self._best_effort(op, (0, 0), "read the cache size")
        return CacheStats(count, total, None, self.max_bytes, self.max_age)

    def clear(self) -> int:
        """Remove every entry and every stored result; returns how many entries there were."""

        def op(conn: Any) -> int:
            with conn.transaction():
                conn.execute(_LOCK, (CACHE_LOCK,))
                count = conn.execute("DELETE FROM face_beauty_results").rowcount
                conn.execute("DELETE FROM face_beauty_blobs")
                self._mark_swept(conn)
            return int(count)

        return self._best_effort(op, 0, "clear the result cache")

    def _best_effort(self, op: Any, fallback: T, what: str, *, wait: float | None = None) -> T:
        try:
            return self.store.run(op, what=what, wait=wait, consequence="")
        except SharedLedgerUnavailable as error:
            log.warning("%s", error)
            return fallback
