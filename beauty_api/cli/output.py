"""How the CLI talks: whole lines on stderr/stdout (thread-safe), exit codes, logging to stderr."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# How the user ran us, for usage lines: the installed command, or the module from the pack's folder.
PROG = "face-beauty" if os.path.basename(sys.argv[0]).startswith("face-beauty") else "python -m beauty_api"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# The package's logger tree (every module logs as beauty_api.<module>): the CLI shows all of it.
package_log = logging.getLogger("beauty_api")
_print_lock = threading.RLock()  # re-entrant: the Ctrl-C handler may print while the main thread does
_live_line = ""  # the status line now shown at the bottom of the terminal ("" = none)
_CLEAR_LINE = "\r\x1b[K"  # carriage return, then erase to the end of the line


def err(line: str) -> None:
    """One line to stderr, whole even when worker threads report at the same time.

    A live status line (see `show_live`) is erased first and drawn again below the new line.
    """
    with _print_lock:
        stream = sys.stderr
        if _live_line:
            stream.write(_CLEAR_LINE)
        stream.write(line.rstrip("\n") + "\n")
        if _live_line:
            stream.write(_live_line)
        stream.flush()


def show_live(text: str) -> None:
    """Draw (or redraw) the one live status line on stderr, cut to the terminal's width."""
    global _live_line
    with _print_lock:
        width = shutil.get_terminal_size(fallback=(100, 24)).columns - 1
        _live_line = text[: max(width, 20)]
        sys.stderr.write(_CLEAR_LINE + _live_line)
        sys.stderr.flush()


def end_live() -> None:
    """Erase the live status line (the summary line takes its place)."""
    global _live_line
    with _print_lock:
        if _live_line:
            sys.stderr.write(_CLEAR_LINE)
            sys.stderr.flush()
        _live_line = ""


def stderr_is_terminal() -> bool:
    """Whether a live line makes sense: stderr is a terminal that understands erasing a line."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty is not None and isatty()) and os.environ.get("TERM", "") != "dumb"


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
