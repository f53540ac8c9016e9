"""Taking over an older state folder, so every front-end of one OS user shares one ledger.

Before 0.3 ComfyUI kept its journal and cache under `<ComfyUI>/user/face_beauty_pro` while the
command line used the per-user folder, so the two could pay twice for one image. Now both use
the per-user folder (storage_paths.state_dir); the first run that sees the old folder merges it:
journal rows (a row with a task or an unknown outcome wins over a bare claim) and cached
results are copied in, then the old folder is renamed `<name>.merged-<time>`, never deleted.
Entries keep their fingerprints, which name the API address, so nothing is ever served for
another address. Running it twice, or from two processes at once, merges nothing twice.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from ..errors import LedgerUnavailable
from .journal_rows import COLUMNS
from .private_store import describe_failure
from .storage_paths import JOURNAL_FILE, cache_dir, journal_path

log = logging.getLogger(__name__)

_PROGRESS = {"submitting": 0, "done": 1, "submitted": 2, "result": 3, "unknown": 4}


def adopt_state(old: Path, new: Path) -> bool:
    """Merge the ledger in `old` into the one in `new` and rename `old` aside; True when it did."""
    old, new = Path(old), Path(new)
    if not old.is_dir() or old.absolute() == new.absolute():
        return False
    if (old / JOURNAL_FILE).exists():
        _merge_journal(old / JOURNAL_FILE, journal_path(new))
    if cache_dir(old).is_dir():
        _merge_cache(cache_dir(old), cache_dir(new))
    target = old.with_name(f"{old.name}.merged-{int(time.time())}")
    try:
        old.rename(target)
    except FileNotFoundError:
        return False  # another process took it over meanwhile
    except OSError as error:
        log.warning("The old state folder %s was merged but could not be renamed (%s).", old, error)
        return True
    log.info(
        "Face Beauty Pro's ledger from %s was merged into %s (the old folder is now %s).", old, new, target
    )
    return True


def _merge_journal(source: Path, target: Path) -> None:
    from .journal import TaskJournal

    TaskJournal(target)  # creates (or migrates) the target's schema
    try:
        with sqlite3.connect(f"{source.absolute().as_uri()}?mode=ro", uri=True, timeout=15.0) as old:
            rows = old.execute(f"SELECT {COLUMNS} FROM tasks").fetchall()
    except sqlite3.Error as error:
        if "no such table" in str(error).lower():
            return
        raise LedgerUnavailable(describe_failure(source, error), path=str(source)) from None
    conn = sqlite3.connect(str(target), timeout=15.0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for row in rows:
            mine = conn.execute("SELECT state FROM tasks WHERE fingerprint = ?", (row[0],)).fetchone()
            if mine is None or _PROGRESS.get(row[1], 0) > _PROGRESS.get(mine[0], 0):
                conn.execute(f"INSERT OR REPLACE INTO tasks ({COLUMNS}) VALUES ({', '.join('?' * 9)})", row)
        conn.execute("COMMIT")
    except sqlite3.Error as error:
        raise LedgerUnavailable(describe_failure(target, error), path=str(target)) from None
    finally:
        conn.close()


def _merge_cache(source: Path, target: Path) -> None:
    from .result_cache import INDEX_FILE, ResultCache

    try:
        with sqlite3.connect(f"{(source / INDEX_FILE).absolute().as_uri()}?mode=ro", uri=True) as old:
            keys = [row[0] for row in old.execute("SELECT key FROM entries")]
    except sqlite3.Error as error:
        log.warning(
            "The old result cache at %s could not be read (%s); its results are not taken over.",
            source,
            error,
        )
        return
    old_cache, new_cache = ResultCache(source), ResultCache(target)
    for key in keys:
        if new_cache.get(key) is not None:
            continue
        cached = old_cache.get(key)
        if cached is not None:
            new_cache.put(key, cached.data, cached.meta)
