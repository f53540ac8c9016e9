"""The real emulator (beauty_api/emulator) as the process simulation's vendor: it counts paid submits.

`SimEmulator` is the package's `Emulator`, a real HTTP server on 127.0.0.1, with three test-side
additions and no change to the package:
- every paid submit (an async task created, a sync answer given) is logged with the identity of
  its request (address, fields, decoded pixels: sim_harness.identity) in `PaidLog`, which says
  when one was paid again while an earlier paid result could still be had (a violation);
- each result names its request (sim_harness.result_for), so a result served for another
  fingerprint or address is seen in the worker's output;
- its submit handler asks the coordinator (`on_submit`) before processing (hold the upload, or
  refuse the key) and after (kill the sender before the answer leaves).
Task ids are counted (not random) so a schedule replays exactly; time is the coordinator's clock.
"""

from __future__ import annotations

import itertools
import json
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sim_harness import SECRET, TASK_LIFETIME, identity, result_for

import beauty_api.emulator.endpoints as endpoints
from beauty_api.emulator import Emulator
from beauty_api.emulator.effect import EncodedResult


@dataclass
class Paid:
    ident: str
    emulator: SimEmulator
    task_id: str | None  # None: a sync answer
    at: float
    epoch: int
    key: str = ""  # the identity under the emulator's name, not its port: the same in every run


@dataclass
class PaidLog:
    """Every paid submit the emulators answered, and the ones paid twice."""

    entries: list[Paid] = field(default_factory=list)
    twice: list[str] = field(default_factory=list)

    def alive(self, paid: Paid, now: float) -> bool:
        """Could this paid result still be had? A task while the emulator knows it; a sync answer
        for a task lifetime (from the worker's cache), unless the emulator restarted since."""
        if paid.epoch != paid.emulator.epoch:
            return False
        if paid.task_id is None:
            return now - paid.at < TASK_LIFETIME
        return paid.task_id in paid.emulator.task_ids()

    def add(self, paid: Paid, now: float) -> None:
        earlier = [p for p in self.entries if p.ident == paid.ident and self.alive(p, now)]
        if earlier:
            first = earlier[0].task_id or "a sync answer"
            self.twice.append(f"{paid.ident[:12]}: {first} and {paid.task_id or 'a sync answer'}")
        self.entries.append(paid)


class SimEmulator(Emulator):
    """The emulator with paid submits logged per request identity (see the module docstring)."""

    def __init__(
        self, name: str, clock: Any, paid: PaidLog, on_submit: Callable[[SimEmulator, str], None]
    ) -> None:
        super().__init__(
            api_key=SECRET,
            processing_seconds=2.0,
            result_ttl_seconds=TASK_LIFETIME,
            time_source=clock.monotonic,
            effect="stand-in",
        )
        self.name = name
        self.paid = paid
        self.on_submit = on_submit
        self.epoch = 0
        self._ident = threading.local()

    @property
    def address(self) -> str:
        return self.base_url

    def start(self) -> SimEmulator:
        """The package's servers, with no idle timeout on a kept-alive connection: a worker blocked
        at a step for a minute of real time (a loaded machine) must not find its connection closed."""
        super().start()
        for server in self._servers:
            handler = server.RequestHandlerClass
            server.RequestHandlerClass = type(handler.__name__, (handler,), {"timeout": None})
        return self

    def handle_submit(self, key: str | None, request: Any, *, received_at: float | None = None) -> Any:
        self.on_submit(self, "arrived")  # may hold the upload here, or refuse the key
        fields = dict(request.fields)
        self._ident.value = identity(self.address, fields, request.image.data)
        answer = super().handle_submit(key, request, received_at=received_at)
        if answer.status == 200:
            task_id = json.loads(answer.body).get("task_id") or None
            now = self.time_source()
            key = identity(self.name, fields, request.image.data)
            self.paid.add(Paid(self._ident.value, self, task_id, now, self.epoch, key), now)
        self.on_submit(self, "answered")  # may kill the sender before the answer leaves
        return answer

    def _render(self, valid: Any) -> EncodedResult:
        height, width = valid.rgb.shape[:2]
        return EncodedResult(
            result_for(self._ident.value, (width, height)), "image/png", "png", (width, height)
        )

    def restart(self) -> None:
        """Stop and start again on the same ports, its memory (tasks, results, faults) gone."""
        self.port, self.cdn_port = (server.server_port for server in self._servers)
        self.stop()
        self.reset()
        self.start()

    def reset(self) -> None:
        with self._lock:
            self._tasks.clear()
            self._results.clear()
            self._reserved = 0
        self.faults.clear()
        self.epoch += 1


@contextmanager
def counted_task_ids() -> Iterator[None]:
    """The emulator's task ids as a counter (its uuid4), so the same seed gives the same ids."""
    counter = itertools.count(1)
    original = endpoints.uuid
    endpoints.uuid = types.SimpleNamespace(
        uuid4=lambda: types.SimpleNamespace(hex=f"task{next(counter):06d}")
    )  # type: ignore[assignment]
    try:
        yield
    finally:
        endpoints.uuid = original  # type: ignore[assignment]
