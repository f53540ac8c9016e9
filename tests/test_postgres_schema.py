"""The shared ledger's schema: made on first use, upgraded in place, never raced, never downgraded."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from beauty_api.ledger.postgres_journal import PostgresJournal
from beauty_api.ledger.postgres_schema import SCHEMA_VERSION, SchemaTooNew, ensure_schema, schema_version
from beauty_api.ledger.postgres_store import PostgresStore, SharedLedgerUnavailable

V1 = (1, ("CREATE TABLE face_beauty_probe (id integer PRIMARY KEY, name text NOT NULL)",))
V2 = (2, ("ALTER TABLE face_beauty_probe ADD COLUMN size integer NOT NULL DEFAULT 7",))
BROKEN_V3 = (3, ("ALTER TABLE face_beauty_probe ADD COLUMN late text", "SELECT no_such_function()"))


def connect(url: str) -> Any:
    return psycopg.connect(url, autocommit=True)


def tables(url: str) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'face_beauty_%'").fetchall()
    return {row[0] for row in rows}


def test_the_first_use_creates_the_tables(postgres_url: str) -> None:
    assert tables(postgres_url) == set()
    store = PostgresStore(postgres_url)
    PostgresJournal(store).get("0" * 64)
    store.close()
    assert tables(postgres_url) == {
        "face_beauty_schema",
        "face_beauty_tasks",
        "face_beauty_results",
        "face_beauty_blobs",
    }
    with connect(postgres_url) as conn:
        assert schema_version(conn) == SCHEMA_VERSION


def test_an_older_schema_is_upgraded_in_place_keeping_its_rows(postgres_url: str) -> None:
    with connect(postgres_url) as conn:
        assert ensure_schema(conn, (V1,)) == 0
        conn.execute("INSERT INTO face_beauty_probe VALUES (1, 'kept')")
        assert ensure_schema(conn, (V1, V2)) == 1
        assert conn.execute("SELECT id, name, size FROM face_beauty_probe").fetchall() == [(1, "kept", 7)]
        assert schema_version(conn) == 2


def test_a_failed_migration_changes_nothing(postgres_url: str) -> None:
    with connect(postgres_url) as conn:
        ensure_schema(conn, (V1, V2))
        with pytest.raises(psycopg.errors.UndefinedFunction):
            ensure_schema(conn, (V1, V2, BROKEN_V3))
        assert schema_version(conn) == 2
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'face_beauty_probe'"
        ).fetchall()
        assert {row[0] for row in columns} == {"id", "name", "size"}


def test_a_newer_schema_is_refused_and_left_alone(postgres_url: str) -> None:
    with connect(postgres_url) as conn:
        ensure_schema(conn)
        conn.execute("UPDATE face_beauty_schema SET version = %s", (SCHEMA_VERSION + 1,))
        with pytest.raises(SchemaTooNew):
            ensure_schema(conn)
    store = PostgresStore(postgres_url, wait=0.0)
    with pytest.raises(SharedLedgerUnavailable, match="newer version of this pack") as caught:
        PostgresJournal(store).claim("0" * 64, "h:1:x")
    assert "\n" not in str(caught.value)
    with connect(postgres_url) as conn:
        assert schema_version(conn) == SCHEMA_VERSION + 1


def test_workers_starting_at_once_do_not_race(postgres_url: str) -> None:
    # Without the migration lock, concurrent CREATE TABLEs collide in PostgreSQL's catalog
    # (duplicate key in pg_type) and one worker fails to start.
    workers = 8
    barrier = threading.Barrier(workers, timeout=30)
    found: list[int] = []
    errors: list[BaseException] = []
    conns = [connect(postgres_url) for _ in range(workers)]

    def start(conn: Any) -> None:
        try:
            barrier.wait()
            found.append(ensure_schema(conn))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start, args=(conn,)) for conn in conns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for conn in conns:
        conn.close()
    assert errors == []
    assert sorted(found) == [0] + [SCHEMA_VERSION] * (workers - 1)  # exactly one made the tables
