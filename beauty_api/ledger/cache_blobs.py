"""The result cache's files: content-addressed blobs `blobs/<sha[:2]>/<sha>`, atomic writes, sweeping.

A blob is written to a `.tmp-*` file and `os.replace`d into place, so a reader never sees half
a file; a read verifies the sha256. A writer killed mid-write leaves its temp file, and a
process killed between deleting an index row and its file leaves an orphan blob: `sweep`
removes both (temp files only once they are an hour old, so a live writer is never disturbed).
The index (result_cache.py) decides which blobs are referenced; this module only handles files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Container
from pathlib import Path

from .private_store import ensure_private_dir

TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 3600.0


class BlobStore:
    """Blob files under one directory; every method is safe to call when files vanish meanwhile."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        ensure_private_dir(self.directory)

    def path(self, sha: str) -> Path:
        return self.directory / sha[:2] / sha

    def has(self, sha: str, size: int) -> bool:
        try:
            return self.path(sha).stat().st_size == size
        except OSError:
            return False

    def read_verified(self, sha: str) -> bytes | None:
        """The blob's bytes if its sha256 still matches, else None."""
        try:
            data = self.path(sha).read_bytes()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha else None

    def write(self, sha: str, data: bytes) -> None:
        target = self.path(sha)
        ensure_private_dir(self.directory)
        ensure_private_dir(target.parent)
        tmp = target.parent / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def unlink(self, sha: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha).unlink()

    def sweep(self, known: Container[str]) -> int:
        """Delete blobs not in `known` and temp files older than an hour; returns how many files went.

        Call it while holding the index's write lock, so a concurrent put cannot lose its file.
        """
        removed = 0
        now = time.time()
        for sub in _listdir(self.directory):
            for path in _listdir(sub):
                name = path.name
                stale_tmp = name.startswith(TMP_PREFIX) and now - _mtime(path) > STALE_TMP_SECONDS
                orphan = not name.startswith(TMP_PREFIX) and name not in known
                if stale_tmp or orphan:
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed += 1
        return removed

    def drop_all(self, *, keep_fresh_tmp: bool = False) -> None:
        """Every blob goes (after the index was emptied, none is reachable any more)."""
        now = time.time()
        for sub in _listdir(self.directory):
            for path in _listdir(sub):
                fresh_tmp = path.name.startswith(TMP_PREFIX) and now - _mtime(path) <= STALE_TMP_SECONDS
                if keep_fresh_tmp and fresh_tmp:
                    continue  # another process is writing it right now
                with contextlib.suppress(OSError):
                    path.unlink()
            with contextlib.suppress(OSError):
                sub.rmdir()  # only when empty


def _listdir(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
