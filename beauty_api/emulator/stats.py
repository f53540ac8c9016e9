"""What the emulator saw and billed (`Emulator.stats`): counters and per-request logs, thread-safe."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class EmulatorStats:
    """What the emulator saw and billed; updated under a lock, copied by `snapshot()`.

    Paid submits are `tasks_created` (async) plus `sync_completed`. `submit_log` has one dict per
    submit request received (see `Emulator` docs); `cdn_request_headers` one dict of lower-cased
    request headers per CDN request, with any API key value replaced by "<matched>"/"<not matched>".
    """

    submits_received: int = 0
    tasks_created: int = 0
    tasks_completed: int = 0
    tasks_failed: int = 0
    sync_completed: int = 0
    sync_failed: int = 0
    credits_billed: int = 0
    queries: int = 0
    credit_queries: int = 0
    downloads: int = 0
    submit_log: list[dict[str, Any]] = field(default_factory=list)
    cdn_request_headers: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def snapshot(self) -> EmulatorStats:
        """A consistent copy, safe to read while the emulator keeps serving."""
        with self._lock:
            values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
            values["submit_log"] = [dict(entry) for entry in self.submit_log]
            values["cdn_request_headers"] = [dict(entry) for entry in self.cdn_request_headers]
        return EmulatorStats(**values)

    @property
    def paid_submits(self) -> int:
        return self.tasks_created + self.sync_completed

    def bump(self, **increments: int) -> None:
        with self._lock:
            for name, amount in increments.items():
                setattr(self, name, getattr(self, name) + amount)

    def append(self, name: str, entry: dict[str, Any]) -> None:
        with self._lock:
            getattr(self, name).append(entry)
