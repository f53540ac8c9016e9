"""Which ledger a run uses: the local SQLite one, or the farm's PostgreSQL one named by FACE_BEAUTY_LEDGER_URL.

`open_ledger()` is the one place that decides. With the URL unset nothing changes: the journal
and the cache are the SQLite files of the state folder (storage_paths.py). With it set, both
live in that database, shared by every worker that names it; a URL that cannot be used, or a
missing driver, is a ConfigurationError (one line), never a quiet fall back to SQLite.

A process keeps ONE PostgresStore (one small connection pool) per URL, however many runs (node
calls, batches) it makes, so a ComfyUI worker holds a few connections, not a few per run.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from .ledger_url import resolve_ledger_url
from .storage_paths import CACHE_ENV, cache_enabled_from_env, cache_settings, open_journal, open_result_cache

if TYPE_CHECKING:
    from .journal import TaskJournal
    from .postgres_cache import PostgresResultCache
    from .postgres_journal import PostgresJournal
    from .postgres_store import PostgresStore
    from .result_cache import NullCache, ResultCache

AnyJournal = Union["TaskJournal", "PostgresJournal"]
AnyCache = Union["ResultCache", "PostgresResultCache", "NullCache"]

_stores: dict[str, PostgresStore] = {}
_stores_lock = threading.Lock()


@dataclass(frozen=True)
class Ledger:
    """A run's journal and cache, and where they are (a folder, or the URL without secrets)."""

    journal: AnyJournal
    cache: AnyCache
    location: str
    shared: bool


def open_ledger(state: Path, *, use_cache: bool | None = None) -> Ledger:
    """The ledger every run of this process uses: PostgreSQL when FACE_BEAUTY_LEDGER_URL is set, else SQLite."""
    url = resolve_ledger_url()
    if url is None:
        return Ledger(open_journal(state), open_result_cache(state, enabled=use_cache), str(state), False)
    from .postgres_cache import PostgresResultCache
    from .postgres_journal import PostgresJournal
    from .result_cache import NullCache

    store = shared_store(url)
    enabled = cache_enabled_from_env() if use_cache is None else use_cache
    cache: AnyCache = NullCache()
    if enabled:
        settings = cache_settings({k: v for k, v in os.environ.items() if k != CACHE_ENV})
        cache = PostgresResultCache(store, max_bytes=settings.max_bytes, max_age=settings.max_age)
    return Ledger(PostgresJournal(store), cache, store.location, True)


def shared_store(url: str) -> PostgresStore:
    """This process's one store (connection pool) for `url`."""
    from .postgres_store import PostgresStore

    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = PostgresStore(url)
        return store


def close_shared_stores() -> None:
    """Close every pool this process opened (tests; a process that exits needs not call it)."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()
