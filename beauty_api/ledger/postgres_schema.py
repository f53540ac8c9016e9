"""The shared ledger's tables in PostgreSQL: created on first use, versioned, upgraded in place.

`face_beauty_schema` holds one row: the schema version and when the cache was last swept.
`ensure_schema` brings a database up to the newest version this pack knows, inside ONE
transaction that first takes an advisory lock (MIGRATION_LOCK): PostgreSQL's DDL is
transactional, so two workers starting at once never race (the second waits, then finds the
tables made), and a migration that fails leaves the database as it was. A database written by
a newer pack is refused (SchemaTooNew), never changed: an old worker must not misread it.

Tables: `face_beauty_tasks` (the journal: one row per request fingerprint, states as in
journal_rows.py), `face_beauty_results` (the cache index) and
`face_beauty_blobs` (the result bytes, content-addressed, shared by keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import BeautyError

# Arbitrary constants: advisory-lock keys are global to the database, so they name the pack.
MIGRATION_LOCK = 0x46425031_0000_0001
CACHE_LOCK = 0x46425031_0000_0002

Migration = tuple[int, Sequence[str]]

MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        (
            """
            CREATE TABLE face_beauty_tasks (
                fingerprint  text PRIMARY KEY,
                state        text NOT NULL
                             CHECK (state IN ('submitting', 'sending', 'submitted', 'result', 'done', 'unknown')),
                task_id      text,
                owner        text NOT NULL DEFAULT '',
                claimed_at   double precision NOT NULL,
                submitted_at double precision,
                result_url   text,
                request_id   text NOT NULL DEFAULT '',
                updated_at   double precision NOT NULL,
                note         text NOT NULL DEFAULT ''
            )
            """,
            "CREATE INDEX face_beauty_tasks_task_id ON face_beauty_tasks (task_id)",
            "CREATE INDEX face_beauty_tasks_updated ON face_beauty_tasks (updated_at)",
            """
            CREATE TABLE face_beauty_blobs (
                sha256 text PRIMARY KEY,
                size   bigint NOT NULL,
                data   bytea NOT NULL
            )
            """,
            # PNG and JPEG do not compress: store them out of line without trying.
            "ALTER TABLE face_beauty_blobs ALTER COLUMN data SET STORAGE EXTERNAL",
            """
            CREATE TABLE face_beauty_results (
                key          text PRIMARY KEY,
                sha256       text NOT NULL REFERENCES face_beauty_blobs (sha256),
                size         bigint NOT NULL,
                created_at   double precision NOT NULL,
                last_used_at double precision NOT NULL,
                meta         text NOT NULL DEFAULT '{}'
            )
            """,
            "CREATE INDEX face_beauty_results_sha256 ON face_beauty_results (sha256)",
            "CREATE INDEX face_beauty_results_last_used ON face_beauty_results (last_used_at)",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SchemaTooNew(BeautyError):
    """The shared ledger was written by a newer version of the pack; this one leaves it alone."""


def schema_version(conn: Any) -> int:
    """The version recorded in the database, 0 when the ledger's tables were never made."""
    row = conn.execute("SELECT to_regclass('face_beauty_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute("SELECT version FROM face_beauty_schema WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def ensure_schema(conn: Any, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Create or upgrade the tables on an autocommit connection; returns the version found before.

    Cheap when the database is current (one read, no lock). Raises SchemaTooNew, or the
    driver's error when the role may not create tables (the caller turns it into one line).
    """
    newest = migrations[-1][0]
    found = schema_version(conn)
    if found == newest:
        return found
    if found > newest:
        raise _too_new(found, newest)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS face_beauty_schema ("
            " id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL,"
            " upgraded_at timestamptz NOT NULL DEFAULT now(), last_sweep double precision NOT NULL DEFAULT 0)"
        )
        found = schema_version(conn)  # again, under the lock: another worker may have just done it
        if found > newest:
            raise _too_new(found, newest)
        for version, statements in migrations:
            if version > found:
                for statement in statements:
                    conn.execute(statement)
        conn.execute(
            "INSERT INTO face_beauty_schema (id, version) VALUES (1, %s)"
            " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, upgraded_at = now()",
            (newest,),
        )
    return found


def _too_new(found: int, newest: int) -> SchemaTooNew:
    return SchemaTooNew(
        f"the shared ledger was written by a newer version of this pack (schema {found} > {newest}); "
        "upgrade the pack on this worker (every worker of a farm runs the same version)"
    )
