"""Private state files: directories 0o700, files 0o600, and SQLite that never breaks a retouch.

Journal rows carry signed result URLs and the cache holds the user's photos, so everything
we write is private to the user (best effort where the OS has no such modes).
`PrivateSqlite` is the one way both stores open SQLite: a connection per call (safe from
worker threads and from several processes), WAL, a busy timeout, and a damaged file moved
aside and replaced by an empty one instead of an exception.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from ..errors import LedgerUnavailable

log = logging.getLogger(__name__)


# -- private files -----------------------------------------------------------------------------


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) if missing; a directory we create is 0o700. Existing ones are left as they are."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def ensure_private_file(path: Path) -> None:
    """Create `path` empty with mode 0o600 if missing; tighten an existing file of ours (best effort)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        _tighten(path)
    else:
        os.close(fd)


def _tighten(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except OSError:
        pass  # not ours, or gone: nothing to do


def move_aside(path: Path, now: float | None = None) -> Path | None:
    """Rename a damaged file (and its -wal/-shm companions) to `<name>.corrupt-<ts>`; None if it failed."""
    stamp = int(time.time() if now is None else now)
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
        counter += 1
    moved: Path | None = target
    try:
        os.replace(path, target)
    except FileNotFoundError:
        moved = None  # already gone: only stray companions are left to remove
    except OSError as error:
        log.warning("Could not move the damaged file %s aside (%s).", path, error)
        return None
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        try:
            if moved is not None:
                os.replace(companion, moved.with_name(moved.name + suffix))
            else:
                companion.unlink()
        except OSError:
            pass
    return moved


# -- SQLite ------------------------------------------------------------------------------------

T = TypeVar("T")

_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (primary codes)
_CORRUPT_WORDS = ("not a database", "malformed", "corrupt", "file is encrypted")


def _rollback(conn: sqlite3.Connection) -> None:
    # A failed rollback (damaged file, lost connection) must not hide the error that caused it.
    with suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


def is_corruption(error: BaseException) -> bool:
    """True for 'the file is damaged' (never for 'locked' or 'cannot open', which are transient)."""
    if not isinstance(error, sqlite3.DatabaseError):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _CORRUPT_CODES:
        return True
    text = str(error).lower()
    return any(word in text for word in _CORRUPT_WORDS)


class PrivateSqlite:
    """One private SQLite file: schema by user_version, a connection per call, self-healing.

    `setup(conn)` creates the schema in a fresh file (called inside BEGIN IMMEDIATE when
    user_version is 0). `on_reset()` runs after a damaged file was replaced by an empty one
    (the cache drops its now-unindexed blobs there). `migrate(conn, old_version)` brings a file
    of an older schema up to `version` (same transaction; without it, only the number changes).
    """

    def __init__(
        self,
        path: Path,
        *,
        version: int,
        setup: Callable[[sqlite3.Connection], None],
        label: str,
        synchronous: str = "NORMAL",
        busy_timeout: float = 15.0,
        on_reset: Callable[[], None] | None = None,
        migrate: Callable[[sqlite3.Connection, int], None] | None = None,
        heal: bool = True,
    ) -> None:
        self.path = Path(path)
        self.version = version
        self.label = label
        self._setup = setup
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._on_reset = on_reset
        self._migrate = migrate
        self._heal = heal  # False: a damaged file is left as it is and reported (the journal fails closed)
        self._lock = threading.Lock()
        self._ready = False
        self._complained = False
        self.usable = True  # False when the file was written by a newer schema we cannot read
        self.found_version = 0

    # connections

    def connect(self) -> sqlite3.Connection:
        ensure_private_dir(self.path.parent)
        ensure_private_file(self.path)
        conn = sqlite3.connect(
            str(self.path), timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode, closed afterwards."""
        self.prepare()
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: one short transaction holding the write lock from the start."""
        self.prepare()
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                _rollback(conn)
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    # schema and recovery

    def prepare(self, *, check: bool = False) -> None:
        """Make sure the file exists with our schema; with `check`, also run a quick integrity check."""
        if self._ready and not check:
            return
        with self._lock:
            if self._ready and not check:
                return
            conn = self.connect()
            try:
                if check:
                    row = conn.execute("PRAGMA quick_check").fetchone()
                    if row is None or row[0] != "ok":
                        raise sqlite3.DatabaseError(f"database disk image is malformed ({row})")
                # A network file system without shared memory refuses WAL: the default mode works too.
                with suppress(sqlite3.OperationalError):
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    found = conn.execute("PRAGMA user_version").fetchone()[0]
                    if found == 0:
                        self._setup(conn)
                        conn.execute(f"PRAGMA user_version={int(self.version)}")
                    elif found < self.version:
                        self._setup(conn)
                        if self._migrate is not None:
                            self._migrate(conn, found)
                        conn.execute(f"PRAGMA user_version={int(self.version)}")
                    elif found > self.version:
                        self.usable = False
                        self.found_version = found
                        log.warning(
                            "The %s at %s was written by a newer version of this pack (schema %s > %s); "
                            "it is left untouched and not used by this version.",
                            self.label,
                            self.path,
                            found,
                            self.version,
                        )
                except BaseException:
                    _rollback(conn)
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()
            self._ready = True

    def open(self) -> None:
        """First use: check the file, replace it if damaged. Never raises for a damaged file."""
        try:
            self.prepare(check=True)
        except sqlite3.DatabaseError as error:
            if not is_corruption(error) or not self._heal:
                raise
            self.reset(error)
            self.prepare()

    def reset(self, error: BaseException) -> None:
        """Move a damaged file aside and start an empty one (unless another process already did)."""
        with self._lock:
            if not self._still_damaged():
                self._ready = False
                return
            target = move_aside(self.path)
            log.warning(
                "The %s at %s is damaged (%s); it was moved to %s and a new, empty one was started.",
                self.label,
                self.path,
                error,
                target or "(could not move; removed)",
            )
            if target is None:
                with suppress(OSError):
                    self.path.unlink()
            self._ready = False
        if self._on_reset is not None:
            try:
                self._on_reset()
            except OSError as reset_error:
                log.warning("Cleaning up after the damaged %s failed: %s", self.label, reset_error)

    def _still_damaged(self) -> bool:
        try:
            # mode=rw: never create the file here (it may have been moved aside by another process).
            uri = self.path.absolute().as_uri() + "?mode=rw"
            conn = sqlite3.connect(uri, uri=True, timeout=self._busy_timeout, isolation_level=None)
            try:
                row = conn.execute("PRAGMA quick_check").fetchone()
            finally:
                conn.close()
        except sqlite3.DatabaseError as error:
            return is_corruption(error)
        return row is None or row[0] != "ok"

    def run(self, op: Callable[[], T], *, fallback: T, what: str, level: int = logging.WARNING) -> T:
        """Run one bookkeeping operation; heal a damaged file and retry once; never raise for disk trouble.

        Anything that is not a database or file-system error (a bug) propagates.
        """
        if not self.usable:
            return fallback
        for attempt in (1, 2):
            try:
                result = op()
            except sqlite3.DatabaseError as error:
                if attempt == 1 and is_corruption(error) and self._heal:
                    self.reset(error)
                    continue
                if attempt == 1 and "no such table" in str(error).lower():
                    self._ready = False  # the file was removed or replaced under us
                    continue
                self._complain(level, what, error)
                return fallback
            except (sqlite3.Error, OSError) as error:
                self._complain(level, what, error)
                return fallback
            self._complained = False
            return result
        return fallback  # pragma: no cover - the loop always returns

    def run_strict(self, op: Callable[[], T]) -> T:
        """Run one operation the money path depends on: any disk or database trouble raises
        LedgerUnavailable (one line naming the file and the fix), never a guess."""
        for attempt in (1, 2):
            try:
                self.prepare()
                if not self.usable:
                    newer = describe_failure(self.path, None, newer=self.found_version)
                    raise LedgerUnavailable(newer, path=str(self.path))
                return op()
            except (sqlite3.Error, OSError) as error:
                if attempt == 1 and "no such table" in str(error).lower():
                    self._ready = False  # the file was removed or replaced under us
                    continue
                failure = LedgerUnavailable(describe_failure(self.path, error), path=str(self.path))
                failure.transient = is_locked(error)
                raise failure from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _complain(self, level: int, what: str, error: BaseException) -> None:
        # One warning per run of failures, so a broken disk does not flood a batch's log.
        if level < logging.ERROR and self._complained:
            level = logging.DEBUG
        self._complained = True
        log.log(level, "%s: could not %s at %s (%s).", self.label.capitalize(), what, self.path, error)


def is_locked(error: BaseException) -> bool:
    """True for 'another connection holds the lock' (worth waiting for, unlike a damaged file)."""
    text = str(error).lower()
    return isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def describe_failure(path: Path, error: BaseException | None, *, newer: int = 0) -> str:
    """One line: which file, what is wrong with it, and the one action that fixes it."""
    where = f"The task journal {path}"
    folder = path.parent
    if error is None:
        return (
            f"{where} was written by a newer version of Face Beauty Pro (schema {newer}); nothing was sent. "
            "Upgrade this pack, or set FACE_BEAUTY_STATE_DIR to another folder."
        )
    text = str(error).lower()
    code = getattr(error, "errno", None)
    if is_locked(error):
        return (
            f"{where} is locked by another process; nothing was sent for this image. Re-run once the other "
            "run is over, or stop the process that holds it."
        )
    if is_corruption(error):
        return (
            f"{where} is damaged ({error}); nothing was sent, since it may record paid tasks. Run "
            "`python -m beauty_api journal reset` to move it aside and start a new one."
        )
    if "full" in text or code == 28:
        return (
            f"{where} cannot be written: the disk is full; nothing was sent. Free some space on that drive."
        )
    if "readonly" in text or "read-only" in text or code in (1, 13, 30):
        return (
            f"{where} cannot be written (read-only); nothing was sent. Make {folder} writable by you, "
            "or set FACE_BEAUTY_STATE_DIR to a writable folder."
        )
    return (
        f"{where} cannot be used ({error.__class__.__name__}: {' '.join(str(error).split())}); nothing was "
        f"sent. Check that {folder} is a writable local folder, or set FACE_BEAUTY_STATE_DIR to one."
    )
