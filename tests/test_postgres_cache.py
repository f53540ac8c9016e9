"""PostgresResultCache against a real PostgreSQL: shared between workers, limited, verified, swept."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import postgres_server as pg
import psycopg
import pytest
from ledger_helpers import WallClock

from beauty_api.ledger.postgres_cache import PostgresResultCache
from beauty_api.ledger.postgres_store import PostgresStore
from beauty_api.ledger.result_cache import SWEEP_INTERVAL

DAY = 24 * 3600.0


@pytest.fixture
def stores(postgres_url: str, wall: WallClock) -> Iterator[Any]:
    opened: list[PostgresStore] = []

    def open_store() -> PostgresStore:
        opened.append(PostgresStore(postgres_url, time_source=wall))
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()


def blob_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM face_beauty_blobs").fetchone()[0])


def test_a_result_one_worker_paid_for_is_served_to_another(stores: Any, wall: WallClock) -> None:
    paid_by = PostgresResultCache(stores())
    paid_by.put("key-1", b"result bytes", {"task_id": "t-1", "url": "https://cdn/x?sig=1"})
    wall.now += 5
    other = PostgresResultCache(stores())  # another process, maybe another machine
    hit = other.get("key-1")
    assert hit is not None
    assert (hit.data, hit.meta, hit.last_used_at) == (b"result bytes", {"task_id": "t-1"}, wall.now)
    assert other.get("key-2") is None


def test_shared_bytes_are_kept_once_and_go_with_their_last_key(stores: Any, postgres_url: str) -> None:
    cache = PostgresResultCache(stores())
    cache.put("a", b"same")
    cache.put("b", b"same")
    assert (cache.stats().entries, cache.stats().total_bytes, blob_count(postgres_url)) == (2, 4, 1)
    cache.put("a", b"different")  # the key's old bytes stay: "b" still has them
    assert blob_count(postgres_url) == 2
    cache.put("b", b"different")
    assert blob_count(postgres_url) == 1
    assert cache.clear() == 2
    assert (cache.stats().entries, blob_count(postgres_url)) == (0, 0)


def test_least_recently_used_entries_go_first_when_over_the_size(stores: Any, wall: WallClock) -> None:
    cache = PostgresResultCache(stores(), max_bytes=300)
    for name in ("old", "middle", "new"):
        wall.now += 1
        cache.put(name, name.encode() * (100 // len(name)))
    wall.now += 1
    assert cache.get("old") is not None  # used again: now the most recent
    wall.now += 1
    cache.put("newest", b"n" * 100)
    assert [k for k in ("old", "middle", "new", "newest") if cache.get(k) is not None] == [
        "old",
        "new",
        "newest",
    ]
    assert cache.stats().total_bytes <= 300
    cache.put("huge", b"h" * 301)  # larger than the whole cache: not kept, nothing evicted for it
    assert cache.get("huge") is None and cache.get("newest") is not None


def test_entries_older_than_the_age_limit_are_misses_and_go(stores: Any, wall: WallClock) -> None:
    cache = PostgresResultCache(stores(), max_age=2 * DAY)
    cache.put("old", b"1")
    wall.now += DAY
    cache.put("young", b"2")
    wall.now += 1.5 * DAY
    assert cache.get("old") is None
    assert cache.get("young") is not None
    wall.now += DAY
    assert cache.evict() == 1
    assert cache.stats().entries == 0


def test_damaged_bytes_are_a_miss_never_wrong_pixels(stores: Any, postgres_url: str, caplog: Any) -> None:
    cache = PostgresResultCache(stores())
    cache.put("key", b"the real result")
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE face_beauty_blobs SET data = 'tampered'::bytea")
    with caplog.at_level(logging.WARNING):
        assert cache.get("key") is None
    assert "damaged" in caplog.text
    assert (cache.stats().entries, blob_count(postgres_url)) == (0, 0)


def test_orphaned_bytes_are_swept_when_a_worker_opens_the_cache_at_most_hourly(
    stores: Any, wall: WallClock, postgres_url: str
) -> None:
    cache = PostgresResultCache(stores())
    cache.put("key", b"kept")
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO face_beauty_blobs VALUES ('0000', 6, 'orphan'::bytea)")
    PostgresResultCache(stores())  # swept less than an hour ago (when the first opened)
    assert blob_count(postgres_url) == 2
    wall.now += SWEEP_INTERVAL + 1
    PostgresResultCache(stores())
    assert blob_count(postgres_url) == 1
    assert cache.get("key") is not None


def test_an_unreachable_server_is_a_miss_and_a_result_not_kept_never_an_error(caplog: Any) -> None:
    store = PostgresStore(f"postgresql://farm@127.0.0.1:{pg.free_port()}/ledger", wait=0.0)
    with caplog.at_level(logging.WARNING):
        cache = PostgresResultCache(store)
        assert cache.get("key") is None
        cache.put("key", b"bytes")
        assert cache.stats().entries == 0
    assert "could not store a result in the cache" in caplog.text
