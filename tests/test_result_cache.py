"""ResultCache: round trip, LRU and age limits, shared blobs, damage handling, concurrency, NullCache."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest
from ledger_helpers import WallClock

from beauty_api.errors import InvalidParameterError
from beauty_api.ledger.result_cache import CacheStats, NullCache, ResultCache


@pytest.fixture
def cache(tmp_path: Path, wall: WallClock) -> ResultCache:
    return ResultCache(tmp_path / "cache", time_source=wall)


def blob_path(cache: ResultCache, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    return cache.directory / "blobs" / sha[:2] / sha


def blob_files(cache: ResultCache) -> list[Path]:
    return [p for p in (cache.directory / "blobs").rglob("*") if p.is_file()]


def test_put_then_get_returns_the_same_bytes_and_meta(cache: ResultCache, wall: WallClock) -> None:
    data = b"\xff\xd8jpeg bytes" * 100
    cache.put(
        "k1", data, {"task_id": "t1", "request_id": "r1", "mime_type": "image/jpeg", "source_size": [3, 4]}
    )
    wall.now += 5
    hit = cache.get("k1")
    assert hit is not None
    assert hit.data == data
    assert hit.meta == {"task_id": "t1", "request_id": "r1", "mime_type": "image/jpeg", "source_size": [3, 4]}
    assert hit.sha256 == hashlib.sha256(data).hexdigest()
    assert hit.last_used_at == wall.now and hit.created_at == wall.now - 5
    assert blob_path(cache, data).read_bytes() == data
    assert cache.get("missing") is None
    assert "jpeg bytes" not in repr(hit)


def test_urls_and_secret_looking_fields_are_not_stored(cache: ResultCache) -> None:
    cache.put(
        "k",
        b"x",
        {
            "task_id": "t",
            "result_url": "https://cdn.example/r.jpg?Signature=abc",
            "note": "https://cdn.example/other?token=1",
            "api_key": "sk-should-not-be-here",
            "nested": {"link": "http://x/y", "ok": 1},
            "odd": object(),
        },
    )
    meta = cache.get("k").meta
    assert set(meta) == {"task_id", "nested", "odd"}
    assert meta["nested"] == {"ok": 1}
    raw = (cache.directory / "index.sqlite3").read_bytes()
    assert b"Signature=abc" not in raw and b"sk-should-not-be-here" not in raw


def test_least_recently_used_entries_are_evicted_first(tmp_path: Path, wall: WallClock) -> None:
    cache = ResultCache(tmp_path / "c", max_bytes=300, time_source=wall)
    for key in ("a", "b", "c"):
        cache.put(key, key.encode() * 100)
        wall.now += 1
    cache.get("a")  # a is now the most recently used
    wall.now += 1
    cache.put("d", b"d" * 100)  # 400 bytes > 300: the least recently used (b) goes
    assert cache.get("b") is None
    assert all(cache.get(k) is not None for k in ("a", "c", "d"))
    assert cache.stats().total_bytes == 300
    assert not blob_path(cache, b"b" * 100).exists()


def test_entries_older_than_max_age_are_evicted(tmp_path: Path, wall: WallClock) -> None:
    cache = ResultCache(tmp_path / "c", max_age=100.0, time_source=wall)
    cache.put("old", b"old")
    wall.now += 60
    cache.put("new", b"new")
    wall.now += 50  # old is 110 s old, new 50 s
    assert cache.get("old") is None
    assert cache.get("new") is not None
    assert not blob_path(cache, b"old").exists()
    wall.now += 60
    assert cache.evict() == 1
    assert cache.stats().entries == 0


def test_identical_results_are_stored_once_and_kept_while_referenced(cache: ResultCache) -> None:
    data = b"same result" * 50
    cache.put("k1", data, {"task_id": "t1"})
    cache.put("k2", data, {"task_id": "t2"})
    assert len(blob_files(cache)) == 1
    stats = cache.stats()
    assert (stats.entries, stats.total_bytes) == (2, len(data))
    cache.put("k1", b"something else")  # k1 moves to another blob; k2 still needs the shared one
    assert cache.get("k2").data == data
    cache.put("k2", b"another")
    assert not blob_path(cache, data).exists()
    assert cache.get("k2").meta == {}


def test_a_shared_blob_is_only_deleted_with_its_last_key(tmp_path: Path, wall: WallClock) -> None:
    cache = ResultCache(tmp_path / "c", max_bytes=250, time_source=wall)
    shared = b"s" * 100
    cache.put("k1", shared)
    wall.now += 1
    cache.put("k2", shared)
    wall.now += 1
    cache.put("k3", b"t" * 100)
    wall.now += 1
    cache.put("k4", b"u" * 100)  # 300 > 250: k1 goes (blob kept for k2), then k2 (blob freed)
    assert cache.get("k1") is None and cache.get("k2") is None
    assert not blob_path(cache, shared).exists()
    assert cache.stats().total_bytes == 200


def test_a_damaged_blob_is_a_miss_and_a_later_put_repairs_it(
    cache: ResultCache, caplog: pytest.LogCaptureFixture
) -> None:
    data = bytes(range(256)) * 10
    cache.put("k", data, {"task_id": "t"})
    path = blob_path(cache, data)
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0x01
    path.write_bytes(bytes(damaged))
    with caplog.at_level(logging.WARNING, logger="beauty_api"):
        assert cache.get("k") is None
    assert "damaged" in caplog.text
    assert not path.exists() and cache.stats().entries == 0
    cache.put("k", data, {"task_id": "t"})
    assert cache.get("k").data == data


def test_a_missing_blob_is_a_miss(cache: ResultCache) -> None:
    cache.put("k", b"data")
    blob_path(cache, b"data").unlink()
    assert cache.get("k") is None
    assert cache.stats().entries == 0


def test_a_damaged_index_is_moved_aside_and_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "c"
    cache = ResultCache(directory)
    cache.put("k", b"data")
    for suffix in ("", "-wal", "-shm"):
        Path(str(directory / "index.sqlite3") + suffix).unlink(missing_ok=True)
    (directory / "index.sqlite3").write_bytes(b"garbage" * 1000)
    with caplog.at_level(logging.WARNING, logger="beauty_api"):
        cache = ResultCache(directory)
    assert "damaged" in caplog.text
    assert list(directory.glob("index.sqlite3.corrupt-*"))
    assert cache.stats().entries == 0
    assert blob_files(cache) == []  # unreachable blobs are not left to fill the disk
    cache.put("k", b"data")
    assert cache.get("k").data == b"data"


def test_an_index_damaged_while_in_use_is_rebuilt_on_the_next_call(cache: ResultCache) -> None:
    cache.put("k", b"data")
    index = cache.directory / "index.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    index.write_bytes(b"garbage" * 1000)
    assert cache.get("k") is None  # never raises
    cache.put("k", b"data")
    assert cache.get("k").data == b"data"


def test_clear_and_stats(cache: ResultCache) -> None:
    cache.put("a", b"1" * 10)
    cache.put("b", b"2" * 20)
    stats = cache.stats()
    assert stats == CacheStats(2, 30, cache.directory, cache.max_bytes, cache.max_age)
    assert cache.clear() == 2
    assert cache.stats().entries == 0 and cache.stats().total_bytes == 0
    assert blob_files(cache) == []
    assert cache.get("a") is None


def test_evict_removes_orphaned_files(cache: ResultCache) -> None:
    cache.put("a", b"kept")
    orphan_dir = cache.directory / "blobs" / "zz"
    orphan_dir.mkdir()
    (orphan_dir / ("z" * 64)).write_bytes(b"orphan")
    stale_tmp = orphan_dir / ".tmp-1-abc"
    stale_tmp.write_bytes(b"half")
    os.utime(stale_tmp, (0, 0))
    fresh_tmp = orphan_dir / ".tmp-2-def"
    fresh_tmp.write_bytes(b"being written")
    assert cache.evict() == 0
    assert not (orphan_dir / ("z" * 64)).exists() and not stale_tmp.exists()
    assert fresh_tmp.exists()
    assert cache.get("a").data == b"kept"


def _leftovers(cache: ResultCache) -> tuple[Path, Path, Path]:
    """An orphan blob (killed between index delete and unlink), a stale and a fresh temp file."""
    folder = cache.directory / "blobs" / "zz"
    folder.mkdir(exist_ok=True)
    orphan, stale_tmp, fresh_tmp = folder / ("z" * 64), folder / ".tmp-1-abc", folder / ".tmp-2-def"
    for path in (orphan, stale_tmp, fresh_tmp):
        path.write_bytes(b"left over")
    os.utime(stale_tmp, (0, 0))
    return orphan, stale_tmp, fresh_tmp


def test_opening_the_cache_sweeps_leftover_files_at_most_hourly(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c")
    cache.put("a", b"kept")
    orphan, stale_tmp, fresh_tmp = _leftovers(cache)
    ResultCache(tmp_path / "c")  # swept less than an hour ago (at the first open): cheap, no sweep
    assert orphan.exists()
    marker = cache.directory / "last-sweep"
    os.utime(marker, (0, 0))
    ResultCache(tmp_path / "c")  # production never calls evict(): opening must sweep by itself
    assert not orphan.exists() and not stale_tmp.exists()
    assert fresh_tmp.exists()  # a live writer's file is left alone
    assert cache.get("a").data == b"kept"


def test_clear_also_removes_leftover_files(cache: ResultCache) -> None:
    cache.put("a", b"gone")
    orphan, stale_tmp, fresh_tmp = _leftovers(cache)
    assert cache.clear() == 1
    assert not orphan.exists() and not stale_tmp.exists() and fresh_tmp.exists()


def test_entries_of_the_address_less_schema_1_are_dropped_on_open(tmp_path: Path) -> None:
    import sqlite3

    cache = ResultCache(tmp_path / "c")
    cache.put("old-key", b"from some address")
    with sqlite3.connect(cache.directory / "index.sqlite3") as conn:
        conn.execute("PRAGMA user_version=1")  # as written by a version without the address
    os.utime(cache.directory / "last-sweep", (0, 0))
    reopened = ResultCache(tmp_path / "c")
    assert reopened.get("old-key") is None and reopened.stats().entries == 0
    assert blob_files(reopened) == []  # its file went with the sweep on open


def test_a_result_larger_than_the_cache_is_not_stored(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c", max_bytes=10)
    cache.put("small", b"12345")
    cache.put("big", b"x" * 11)
    assert cache.get("big") is None
    assert cache.get("small") is not None  # not evicted to make room for something that never fits


def test_null_cache_keeps_nothing() -> None:
    cache = NullCache()
    cache.put("k", b"data", {"task_id": "t"})
    assert cache.get("k") is None
    assert cache.stats() == CacheStats(0, 0, None)
    assert cache.clear() == 0 and cache.evict() == 0
    assert not cache.enabled and ResultCache.enabled


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_files_and_directories_are_private(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "new" / "cache")
    cache.put("k", b"photo")
    for path in [cache.directory, *cache.directory.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, (path, oct(mode))


def test_concurrent_puts_and_gets_from_threads(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c", max_bytes=20 * 1000)
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(15):
                data = bytes([i]) * 1000  # the same 15 blobs from every thread: dedup under contention
                cache.put(f"k{n}-{i}", data, {"i": i})
                hit = cache.get(f"k{n}-{i}")
                assert hit is None or hit.data == data
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = cache.stats()
    assert stats.total_bytes <= 20 * 1000
    files = [p for p in blob_files(cache) if not p.name.startswith(".tmp")]
    assert len(files) == len({p.name for p in files}) <= 15
    with sqlite3.connect(cache.directory / "index.sqlite3") as conn:
        rows = conn.execute("SELECT key, sha256 FROM entries").fetchall()
    for key, sha in rows:  # every entry still has its blob
        assert (cache.directory / "blobs" / sha[:2] / sha).exists(), key


def test_bad_limits_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError):
        ResultCache(tmp_path / "c", max_bytes=-1)
    with pytest.raises(InvalidParameterError):
        ResultCache(tmp_path / "c", max_age=0)
    with pytest.raises(InvalidParameterError):
        ResultCache(tmp_path / "c").put("", b"x")


_CACHE_WORKER = """
import sys, time
from pathlib import Path
from beauty_api.ledger.result_cache import ResultCache

directory, go, tag = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
cache = ResultCache(directory, max_bytes=8 * 1000)
print("READY", flush=True)
while not go.exists():
    time.sleep(0.001)
bad = 0
for i in range(40):
    data = bytes([i % 12]) * 1000  # shared contents, a cache too small for all: evictions race puts
    cache.put(f"{tag}-{i}", data)
    hit = cache.get(f"{tag}-{i}")
    if hit is not None and hit.data != data:
        bad += 1
print(f"BAD {bad}", flush=True)
"""


def test_two_processes_sharing_one_cache_never_lose_or_mix_blobs(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    directory = tmp_path / "shared-cache"
    ResultCache(directory)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CACHE_WORKER, str(directory), str(go), tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(repo)},
            cwd=repo,
        )
        for tag in ("p1", "p2")
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "READY"
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "BAD 0"
    cache = ResultCache(directory, max_bytes=8 * 1000)
    assert cache.stats().total_bytes <= 8 * 1000
    with sqlite3.connect(directory / "index.sqlite3") as conn:
        rows = conn.execute("SELECT key, sha256 FROM entries").fetchall()
    assert rows
    for key, _ in rows:  # every indexed entry is readable (its blob exists and verifies)
        assert cache.get(key) is not None, key
