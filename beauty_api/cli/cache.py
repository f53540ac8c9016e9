"""`cache info` / `cache clear`: the result cache's place, size and limits."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .output import EXIT_OK, out

if TYPE_CHECKING:
    from ..ledger.ledger_choice import AnyCache
    from ..ledger.storage_paths import CacheSettings


def _human_size(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop returns


def _open_cache() -> tuple[str, CacheSettings, AnyCache | None]:
    """The result cache at its usual place (with the limits from the environment), or None if absent.

    With FACE_BEAUTY_LEDGER_URL set, the farm's cache in that database (shown without secrets).
    """
    from ..ledger.ledger_choice import open_ledger
    from ..ledger.ledger_url import resolve_ledger_url
    from ..ledger.result_cache import ResultCache
    from ..ledger.storage_paths import cache_dir, cache_settings, state_dir

    settings = cache_settings()
    if resolve_ledger_url() is not None:
        ledger = open_ledger(state_dir(), use_cache=True)
        return f"database: {ledger.location}", settings, ledger.cache
    directory = cache_dir(state_dir())
    if not directory.is_dir():
        return f"directory: {directory}", settings, None
    cache = ResultCache(directory, max_bytes=settings.max_bytes, max_age=settings.max_age)
    return f"directory: {directory}", settings, cache


def cmd_cache_info(args: argparse.Namespace) -> int:
    where, settings, cache = _open_cache()
    stats = cache.stats() if cache is not None else None
    out(where + ("" if cache is not None else " (not created yet)"))
    out(f"entries: {stats.entries if stats else 0}")
    out(
        f"total size: {_human_size(stats.total_bytes if stats else 0)} "
        f"(limit {_human_size(settings.max_bytes)}, entries older than {settings.max_age / 86400:g} days are dropped)"
    )
    if not settings.enabled:
        out("caching is switched off (FACE_BEAUTY_CACHE); `retouch` neither reads nor writes it.")
    return EXIT_OK


def cmd_cache_clear(args: argparse.Namespace) -> int:
    where, _settings, cache = _open_cache()
    removed = cache.clear() if cache is not None else 0
    out(f"removed {removed} cached result(s) from {where.split(': ', 1)[1]}")
    return EXIT_OK
