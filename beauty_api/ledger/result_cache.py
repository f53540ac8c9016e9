"""Paid results kept on disk, so an identical request is answered without an API call.

Layout under the cache directory:
    index.sqlite3            request key (fingerprint) -> blob sha256, size, times, small JSON meta
    blobs/<sha[:2]>/<sha>    the result bytes, content-addressed (two keys, one file; cache_blobs.py)
    last-sweep               its age says when orphan and temp files were last swept (on open, hourly)

Blobs are written to a temp file and `os.replace`d into place, so a reader never sees half a
file; every read verifies the sha256, so a damaged blob is a miss (and is dropped), never
wrong pixels. Limits: total size (least recently used entries go first) and age since the
entry was created. Several threads and processes may share one cache: the index is SQLite
(a connection per call), and blob deletions happen while holding its write lock, so a
concurrent `put` of the same content never loses its file.

Result URLs are not stored (they may carry a signed token, and the bytes are what matters),
nor anything that looks like a secret (cache_meta.py). Failures are logged and never break a retouch.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError
from .cache_blobs import BlobStore
from .cache_meta import load_meta, prepare_entry
from .private_store import PrivateSqlite, ensure_private_dir

log = logging.getLogger(__name__)

# 2: fingerprints include the API address (fingerprint.py v2). Entries of schema 1 cannot say
# which address paid for them, so they are dropped when the index is first opened (their blobs
# go with the next sweep), never served for another address.
SCHEMA_VERSION = 2
INDEX_FILE = "index.sqlite3"
BLOBS_DIR = "blobs"
SWEEP_MARKER = "last-sweep"
SWEEP_INTERVAL = 3600.0  # opening the cache sweeps orphan and temp files at most this often
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_AGE = 30 * 24 * 3600.0


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS entries (
            key          TEXT PRIMARY KEY,
            sha256       TEXT NOT NULL,
            size         INTEGER NOT NULL,
            created_at   REAL NOT NULL,
            last_used_at REAL NOT NULL,
            meta         TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    conn.execute("CREATE INDEX IF NOT EXISTS entries_sha256 ON entries (sha256)")
    conn.execute("CREATE INDEX IF NOT EXISTS entries_last_used ON entries (last_used_at)")


def _drop_unaddressed_entries(conn: sqlite3.Connection, old_version: int) -> None:
    """Schema 1 keys did not include the API address: drop them (see SCHEMA_VERSION)."""
    if old_version < 2:
        conn.execute("DELETE FROM entries")


@dataclass(frozen=True)
class CachedResult:
    """A cached result: the exact bytes the API returned, and what we noted about them."""

    key: str
    data: bytes = field(repr=False)
    meta: dict[str, Any]
    sha256: str
    created_at: float
    last_used_at: float


@dataclass(frozen=True)
class CacheStats:
    """Size of the cache. `total_bytes` counts a blob shared by several keys once."""

    entries: int
    total_bytes: int
    directory: Path | None
    max_bytes: int = 0
    max_age: float = 0.0


class ResultCache:
    """Content-addressed result files plus an SQLite index, LRU + age limited, multi-process safe.

    Raises OSError only when the directory cannot be created at all; after that every
    operation is best effort (a miss, or nothing stored, plus a log line).
    """

    enabled = True

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float = DEFAULT_MAX_AGE,
        time_source: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise InvalidParameterError(f"max_bytes must be a whole number of bytes >= 0, got {max_bytes!r}.")
        if not max_age > 0:
            raise InvalidParameterError(f"max_age must be a number of seconds > 0, got {max_age!r}.")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_age = float(max_age)
        self._now = time_source
        ensure_private_dir(self.directory)
        self._blobs = BlobStore(self.directory / BLOBS_DIR)
        self._db = PrivateSqlite(
            self.directory / INDEX_FILE,
            version=SCHEMA_VERSION,
            setup=_create_schema,
            label="result cache index",
            on_reset=lambda: self._blobs.drop_all(keep_fresh_tmp=True),
            migrate=_drop_unaddressed_entries,
        )
        try:
            self._db.open()
        except sqlite3.Error as error:
            log.warning("The result cache index at %s cannot be opened (%s).", self._db.path, error)
        else:
            self._sweep_if_due()

    # -- reading -----------------------------------------------------------------------------

    def get(self, key: str) -> CachedResult | None:
        """The cached result of `key`, verified, or None. A damaged or missing blob is dropped."""

        def op() -> CachedResult | None:
            with self._db.read() as conn:
                row = conn.execute(
                    "SELECT sha256, created_at, meta FROM entries WHERE key = ?", (key,)
                ).fetchone()
            if row is None:
                return None
            sha, created_at, meta_text = row
            now = self._now()
            if now - created_at > self.max_age:
                self._drop_key(key)
                return None
            data = self._blobs.read_verified(sha)
            if data is None:
                data = self._drop_damaged(sha)
                if data is None:
                    return None
            with self._db.write() as conn:
                conn.execute("UPDATE entries SET last_used_at = ? WHERE key = ?", (now, key))
            return CachedResult(key, data, load_meta(meta_text), sha, float(created_at), now)

        return self._db.run(op, fallback=None, what="read the result cache")

    def _drop_damaged(self, sha: str) -> bytes | None:
        """Under the write lock: look again (a concurrent put may have repaired it), else drop it."""
        with self._db.write() as conn:
            data = self._blobs.read_verified(sha)
            if data is not None:
                return data
            count = conn.execute("DELETE FROM entries WHERE sha256 = ?", (sha,)).rowcount
            self._blobs.unlink(sha)
        log.warning(
            "A cached result file was damaged or missing (sha256 %s, %d entr%s); it was dropped and "
            "will be fetched again.",
            sha[:12],
            count,
            "y" if count == 1 else "ies",
        )
        return None

    def _drop_key(self, key: str) -> None:
        with self._db.write() as conn:
            row = conn.execute("SELECT sha256 FROM entries WHERE key = ?", (key,)).fetchone()
            conn.execute("DELETE FROM entries WHERE key = ?", (key,))
            if row is not None:
                self._unlink_if_unreferenced(conn, row[0])

    # -- writing -----------------------------------------------------------------------------

    def put(self, key: str, data: bytes, meta: Mapping[str, Any] | None = None) -> bool:
        """Keep `data` as the result of `key`, then evict down to the limits; True when kept.

        Never raises for disk trouble (returns False).

        `meta` must be small and JSON-friendly (task_id, request_id, mime type, sizes...);
        anything that looks like a URL or a secret is left out.
        """
        entry = prepare_entry(key, data, meta, self.max_bytes)
        if entry is None:
            return False
        data, sha, meta_text = entry.data, entry.sha256, entry.meta_text

        def op() -> bool:
            if not self._blobs.has(sha, len(data)):
                self._blobs.write(sha, data)  # outside the lock: the slow part
            with self._db.write() as conn:
                if not self._blobs.has(sha, len(data)):
                    self._blobs.write(sha, data)  # evicted meanwhile by another process
                now = self._now()
                old = conn.execute("SELECT sha256 FROM entries WHERE key = ?", (key,)).fetchone()
                conn.execute(
                    "INSERT OR REPLACE INTO entries (key, sha256, size, created_at, last_used_at, meta)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (key, sha, len(data), now, now, meta_text),
                )
                if old is not None and old[0] != sha:
                    self._unlink_if_unreferenced(conn, old[0])
            self._evict()
            return True

        return self._db.run(op, fallback=False, what="store a result in the cache")

    def _unlink_if_unreferenced(self, conn: sqlite3.Connection, sha: str) -> bool:
        """Delete a blob no entry points to. Call inside a write transaction (see the module doc)."""
        if conn.execute("SELECT 1 FROM entries WHERE sha256 = ? LIMIT 1", (sha,)).fetchone() is None:
            self._blobs.unlink(sha)
            return True
        return False

    # -- limits ------------------------------------------------------------------------------

    def evict(self) -> int:
        """Apply the age and size limits now, and remove orphaned files; returns entries removed."""
        removed = self._db.run(self._evict, fallback=0, what="evict old cache entries")
        self._db.run(self._sweep_orphans, fallback=0, what="remove orphaned cache files")
        return removed

    def _evict(self) -> int:
        """Drop entries older than max_age, then least recently used ones until the total fits."""
        with self._db.write() as conn:
            now = self._now()
            rows = conn.execute(
                "SELECT key, sha256, size, created_at FROM entries ORDER BY last_used_at ASC, created_at ASC"
            ).fetchall()
            refs: dict[str, int] = {}
            sizes: dict[str, int] = {}
            for _, sha, size, _ in rows:
                refs[sha] = refs.get(sha, 0) + 1
                sizes[sha] = int(size)
            total = sum(sizes.values())
            doomed: list[str] = []
            unreferenced: list[str] = []

            def drop(key: str, sha: str) -> None:
                nonlocal total
                doomed.append(key)
                refs[sha] -= 1
                if refs[sha] == 0:  # a blob shared by several keys goes with the last of them
                    total -= sizes[sha]
                    unreferenced.append(sha)

            for key, sha, _, created_at in rows:
                if now - created_at > self.max_age:
                    drop(key, sha)
            too_old = set(doomed)
            for key, sha, _, _ in rows:
                if total <= self.max_bytes:
                    break
                if key not in too_old:
                    drop(key, sha)
            conn.executemany("DELETE FROM entries WHERE key = ?", [(key,) for key in doomed])
            for sha in unreferenced:
                self._blobs.unlink(sha)
        return len(doomed)

    def _sweep_orphans(self) -> int:
        """Blob files no entry points to, and temp files left by a killed writer; returns files removed."""
        with self._db.write() as conn:
            known = {row[0] for row in conn.execute("SELECT DISTINCT sha256 FROM entries")}
            removed = self._blobs.sweep(known)
        self._mark_swept()
        return removed

    def _sweep_if_due(self) -> None:
        """On open, sweep at most once per SWEEP_INTERVAL (a marker file's age says when it last ran)."""
        try:
            last = (self.directory / SWEEP_MARKER).stat().st_mtime
        except OSError:
            last = 0.0
        if abs(time.time() - last) >= SWEEP_INTERVAL:
            self._db.run(self._sweep_orphans, fallback=0, what="remove orphaned cache files")

    def _mark_swept(self) -> None:
        marker = self.directory / SWEEP_MARKER
        try:
            marker.touch(mode=0o600)
            marker.touch()  # an existing marker gets a new time
        except OSError as error:
            log.debug("Could not mark the cache as swept (%s).", error)

    # -- whole cache -------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """How many entries and how many bytes on disk (shared blobs counted once)."""

        def op() -> tuple[int, int]:
            with self._db.read() as conn:
                count = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
                total = conn.execute(
                    "SELECT COALESCE(SUM(size), 0) FROM (SELECT MAX(size) AS size FROM entries GROUP BY sha256)"
                ).fetchone()[0]
            return int(count), int(total)

        count, total = self._db.run(op, fallback=(0, 0), what="read the cache size")
        return CacheStats(count, total, self.directory, self.max_bytes, self.max_age)

    def clear(self) -> int:
        """Remove every entry, blob and leftover file (stale temp files too); returns how many entries there were."""

        def op() -> int:
            with self._db.write() as conn:
                count = conn.execute("DELETE FROM entries").rowcount
                self._blobs.drop_all(keep_fresh_tmp=True)
            self._mark_swept()
            return count

        return self._db.run(op, fallback=0, what="clear the result cache")


class NullCache:
    """The cache when caching is off: same API, keeps nothing, so callers need no `if cache`."""

    enabled = False
    directory = None

    def get(self, key: str) -> CachedResult | None:
        return None

    def put(self, key: str, data: bytes, meta: Mapping[str, Any] | None = None) -> bool:
        return False

    def stats(self) -> CacheStats:
        return CacheStats(0, 0, None)

    def clear(self) -> int:
        return 0

    def evict(self) -> int:
        return 0
