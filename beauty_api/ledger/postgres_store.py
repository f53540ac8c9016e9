"""One shared PostgreSQL ledger: a few pooled connections, the schema on first use, failing closed.

`PostgresStore` is what the journal (postgres_journal.py) and the result cache
(postgres_cache.py) of one process share: the URL, a small pool of connections (one per thread
at work, so a farm of N workers holds about N x concurrency connections, not one per call), the
server's clock, and `run()`, the one way an operation reaches the database.

Failing closed: when the server cannot be reached (down, restarting, network gone, too many
connections), `run()` waits and tries again within its wait, on the injected clock, then raises
`SharedLedgerUnavailable` with one line naming the ledger (never its password) and what to do.
It never answers "go ahead": a worker that cannot ask the ledger does not submit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from ..clock import DEFAULT_CLOCK, CancelCheck, Clock, sleep_interruptibly
from ..errors import InvalidParameterError, LedgerUnavailable
from .ledger_url import check_ledger_url, describe_ledger_url, load_driver, scrub
from .postgres_schema import MIGRATIONS, Migration, SchemaTooNew, ensure_schema

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_WAIT = 30.0  # how long an operation waits for an unreachable server before failing
CONNECT_TIMEOUT = 5  # seconds, per connection attempt (libpq's connect_timeout)
POOL_SIZE = 4
APPLICATION_NAME = "face-beauty-pro"
# For writes a crash may lose at no cost: the commit returns before the disk has it. Claims,
# 'sending', task ids and unknown outcomes never use it (they decide whether to pay).
LAZY_COMMIT = "SET LOCAL synchronous_commit TO OFF"
_BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)


class SharedLedgerUnavailable(LedgerUnavailable):
    """The shared ledger cannot be used right now; nothing that costs money was done because of it.

    `transient` when the server could not be reached (worth waiting for within a deadline: the
    choke point's wait_for_claim does), not for a refusal (no permission, a newer schema).
    """

    def __init__(self, message: str, *, path: str = "", transient: bool = False) -> None:
        super().__init__(message, path=path)
        self.transient = transient


class PostgresStore:
    """The connection side of a shared ledger. Thread-safe; close() ends its connections.

    `time_source` (wall-clock seconds) is for tests; without it, times come from the server's
    clock, so the claims and ages of workers on machines with different clocks compare right.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = DEFAULT_CLOCK,
        wait: float = DEFAULT_WAIT,
        pool_size: int = POOL_SIZE,
        time_source: Callable[[], float] | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
        connect_timeout: int = CONNECT_TIMEOUT,
    ) -> None:
        self.url = check_ledger_url(url)
        self._driver = load_driver(self.url)
        if not wait >= 0 or pool_size < 1:
            raise InvalidParameterError(
                f"wait ({wait}) must be >= 0 seconds and pool_size ({pool_size}) >= 1."
            )
        self.location = describe_ledger_url(self.url)
        self.clock = clock
        self.wait = float(wait)
        self.pool_size = pool_size
        self._time_source = time_source
        self._migrations = migrations
        self._connect_timeout = max(1, int(connect_timeout))
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._schema_ready = False
        self._closed = False

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> Any:
        return self._driver.connect(
            self.url,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            application_name=APPLICATION_NAME,
            # A worker that vanished without closing (power cut, network gone) is noticed in ~1 min.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled autocommit connection; one that failed is closed, never returned to the pool."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            if not self._schema_ready:
                ensure_schema(conn, self._migrations)
                self._schema_ready = True
            yield conn
        except BaseException:
            _close_quietly(conn)
            raise
        with self._lock:
            if self._closed or len(self._idle) >= self.pool_size or conn.closed:
                keep = False
            else:
                self._idle.append(conn)
                keep = True
        if not keep:
            _close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)

    def now(self, conn: Any) -> float:
        """Wall-clock seconds: the injected time source, else the server's clock."""
        if self._time_source is not None:
            return float(self._time_source())
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        return float(row[0])

    # -- operations ----------------------------------------------------------------------------

    def run(
        self,
        op: Callable[[Any], T],
        *,
        what: str,
        wait: float | None = None,
        check_cancel: CancelCheck | None = None,
        consequence: str = "nothing was submitted because of it",
    ) -> T:
        """`op(conn)` on a pooled connection; retried while the server cannot be reached, for up to `wait`.

        Connection failures, server restarts, serialization failures and deadlocks are retried
        (a retried op must be safe to repeat: ours are). Anything else from the database (no
        permission, a schema from a newer pack) fails at once. Either way the error is
        SharedLedgerUnavailable with one secret-free line.
        """
        budget = self.wait if wait is None else max(0.0, wait)
        end = self.clock.monotonic() + budget
        attempt = 0
        errors = self._driver.errors
        transient = (self._driver.OperationalError, errors.SerializationFailure, errors.DeadlockDetected)
        while True:
            try:
                with self.connection() as conn:
                    return op(conn)
            except SchemaTooNew as error:
                raise self._unavailable(what, consequence, str(error)) from None
            except errors.UndefinedTable as error:
                if self._schema_ready:  # the tables were dropped under us: made again, once
                    self._schema_ready = False
                    continue
                raise self._unavailable(what, consequence, scrub(str(error), self.url)) from None
            except errors.InsufficientPrivilege as error:
                raise self._unavailable(
                    what, consequence, scrub(str(error), self.url), fix=_PRIVILEGE_FIX
                ) from None
            except transient as error:
                reason = scrub(str(error), self.url)
            except self._driver.Error as error:
                raise self._unavailable(what, consequence, scrub(str(error), self.url)) from None
            left = end - self.clock.monotonic()
            if left <= 0:
                raise self._unavailable(what, consequence, reason, transient=True)
            if attempt == 0:
                log.warning(
                    "The shared ledger at %s cannot be reached (%s); waiting for it.", self.location, reason
                )
            delay = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
            sleep_interruptibly(self.clock, min(delay, left), check_cancel)
            attempt += 1

    def _unavailable(
        self, what: str, consequence: str, reason: str, fix: str = "", *, transient: bool = False
    ) -> SharedLedgerUnavailable:
        then = f"; {consequence}" if consequence else ""
        return SharedLedgerUnavailable(
            f"The shared ledger at {self.location} could not {what} ({reason}){then}. {fix or _REACH_FIX}",
            path=self.location,
            transient=transient,
        )


_REACH_FIX = (
    "Check that the database server runs and that this machine reaches it (user, password via "
    "PGPASSWORD or ~/.pgpass), then re-run; already paid images resume without paying again."
)
_PRIVILEGE_FIX = (
    "Give the ledger's role the right to create and change tables in that database "
    "(e.g. make it the database's owner), then re-run."
)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception as error:  # a broken connection may fail to close; nothing is lost
        log.debug("Closing a ledger connection failed: %s", error)
