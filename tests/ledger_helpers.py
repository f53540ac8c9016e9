"""Shared by the ledger tests (the SQLite and PostgreSQL journals and result caches): a wall clock
the test sets by hand, this host's owner names, and a pid that is surely dead.

Not a test module (no `test_` prefix). The `wall` fixture that hands out a `WallClock` lives in
conftest.py, beside the suite's other clocks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

HOST = socket.gethostname()
FP = "f" * 64  # one image's fingerprint


class WallClock:
    """A settable wall clock for a ledger's time_source: time moves only when a test moves it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def me(nonce: str = "a") -> str:
    """An owner in this process on this host: alive, so its claims are never taken over as dead."""
    return f"{HOST}:{os.getpid()}:{nonce}"


def dead_pid() -> int:
    """The pid of a process that has exited: an owner with it on this host is dead."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
