"""How the CLI talks: whole lines on stderr/stdout (thread-safe), exit codes, logging to stderr."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PROG = "python -m beauty_api"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# The package's logger tree (every module logs as beauty_api.<module>): the CLI shows all of it.
package_log = logging.getLogger("beauty_api")
_print_lock = threading.RLock()  # re-entrant: the Ctrl-C handler may print while the main thread does


def err(line: str) -> None:
    """One line to stderr, whole even when worker threads report at the same time."""
    with _print_lock:
        sys.stderr.write(line.rstrip("\n") + "\n")
        sys.stderr.flush()


def out(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def one_line(text: object) -> str:
    """An error text on one line (some messages carry indented instructions)."""
    return " ".join(str(text).split())


class StderrHandler(logging.Handler):
    """Log records as whole lines on the current sys.stderr (looked up per record, like `_err`)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err(self.format(record))
        except Exception:
            self.handleError(record)


@contextmanager
def logging_to_stderr(verbose: bool) -> Iterator[None]:
    """Warnings always reach stderr; -v adds this package's debug log (the transport redacts the key).

    The logger is put back as it was afterwards, so calling `main` in-process leaves no trace.
    """
    handler = StderrHandler()
    form = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s"
    handler.setFormatter(logging.Formatter(form))
    previous = package_log.level
    package_log.addHandler(handler)
    package_log.setLevel(logging.DEBUG if verbose else min(previous or logging.WARNING, logging.WARNING))
    try:
        yield
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(previous)
