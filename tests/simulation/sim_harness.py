"""A deterministic simulation of the money path, in the spirit of FoundationDB's simulator.

The real ApiBackend, choke point, journal and result cache run in 2-3 worker threads ("processes",
each with its own owner and journal handle on one shared folder), against `SimApi`, a model of
the vendor that counts every paid request. The workers never run at once: at every step
boundary (each journal/cache transaction, each API call, each sleep) the `Baton` hands the turn
to a worker picked by the seeded RNG, and may inject a fault there. The same seed therefore
replays the same schedule, faults and all. After the faulty phase a clean worker re-runs every
image (what a user does next), then the invariants are checked.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import socket
import sqlite3
import tempfile
import threading
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import beauty_api.ledger.journal_claims as claims
from beauty_api.api.client import ClientSettings, FaceBeautyClient, SubmitReceipt
from beauty_api.api.protocol import TaskState
from beauty_api.clock import FakeClock, check_cancel
from beauty_api.codec import SourceImage
from beauty_api.errors import ApiError, BeautyError, ResultExpired, SubmitOutcomeUnknown, TaskFailedError
from beauty_api.ledger import private_store
from beauty_api.ledger.journal import TaskJournal
from beauty_api.ledger.result_cache import ResultCache
from beauty_api.params import BeautyParams
from beauty_api.run.api_backend import ApiBackend
from beauty_api.run.backend import RetouchOptions

SECRET = "sk-SIMSECRET-7f3a9c"
ADDRESSES = ("https://api.sim.example", "http://127.0.0.1:8765")
PARAMS = (BeautyParams(smoothing=40), BeautyParams(whitening=70, filter_type="Sakura"))
HOST = socket.gethostname()
TASK_LIFETIME = 24 * 3600.0
CLAIM_TIMEOUT = 180.0
FAULTS = ("kill", "cancel", "ctrl_c_twice", "locked", "sqlite_error", "slow_submit", "refused",
          "timeout_after_send", "bad_key", "task_expiry", "api_restart", "clock_jump")


class Killed(BaseException):
    """A worker was SIGKILLed: it does nothing more, not even its `finally` bookkeeping."""


@dataclass
class Violation:
    invariant: str
    detail: str


@dataclass
class Outcome:
    seed: int
    steps: int = 0
    faults: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    paid: int = 0


class Baton:
    """One worker at a time; the seeded RNG picks who runs after each step boundary."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.cond = threading.Condition()
        self.turn: str | None = None
        self.runnable: list[str] = []
        self.frozen: set[str] = set()
        self.steps = 0
        self.on_step: Any = None

    def name(self) -> str | None:
        name = threading.current_thread().name
        return name if name.startswith("sim-") else None

    def step(self, label: str) -> None:
        me = self.name()
        if me is None:
            return  # a helper thread (a heartbeat): not part of the schedule
        if me in self.frozen:
            raise Killed()
        self.steps += 1
        if self.on_step is not None:
            self.on_step(me, label)  # may raise a fault into this worker, or freeze it
        with self.cond:
            self.turn = self.rng.choice(self.runnable)
            self.cond.notify_all()
            while self.turn != me:
                if me in self.frozen:
                    break
                self.cond.wait()
        if me in self.frozen:
            self._park(me)

    def _park(self, me: str) -> None:
        with self.cond:
            if me in self.runnable:
                self.runnable.remove(me)
                if self.runnable and self.turn == me:
                    self.turn = self.rng.choice(self.runnable)
                self.cond.notify_all()
            while not getattr(self, "released", False):
                self.cond.wait()
        raise Killed()

    def run(self, workers: dict[str, Any]) -> None:
        threads = []
        self.runnable = sorted(workers)

        def body(name: str, work: Any) -> None:
            with self.cond:
                while self.turn != name:
                    self.cond.wait()
            try:
                with suppress(Killed):
                    work()
            finally:
                with self.cond:
                    if name in self.runnable:
                        self.runnable.remove(name)
                    if self.runnable:
                        self.turn = self.rng.choice(self.runnable)
                    self.cond.notify_all()

        for name in sorted(workers):
            thread = threading.Thread(target=body, args=(name, workers[name]), name=name, daemon=True)
            threads.append(thread)
            thread.start()
        with self.cond:
            self.turn = self.rng.choice(self.runnable)
            self.cond.notify_all()
            while self.runnable:
                self.cond.wait()
            self.released = True
            self.cond.notify_all()
        for thread in threads:
            thread.join(5)


class SimApi:
    """The vendor, modelled: tasks, results that live 24 h, restarts; every paid request logged."""

    def __init__(self, wall: list[float], clock: FakeClock) -> None:
        self.wall, self.clock = wall, clock
        self.tasks: dict[str, dict[str, Any]] = {}
        self.counter = 0
        self.paid: list[tuple[str, str]] = []  # (request identity, task id)
        self.gone: set[str] = set()  # task ids whose result can no longer be had

    def create(self, identity: str, result: bytes) -> str:
        self.counter += 1
        task_id = f"T{self.counter}"
        self.tasks[task_id] = {"identity": identity, "born": self.wall[0], "ready": self.clock.monotonic() + 2.0,
                               "result": result}
        self.paid.append((identity, task_id))
        return task_id

    def alive(self, task_id: str) -> dict[str, Any] | None:
        task = self.tasks.get(task_id)
        if task is None or task_id in self.gone or self.wall[0] - task["born"] >= TASK_LIFETIME:
            return None
        return task


def identity(address: str, fields: dict[str, str], data: bytes) -> str:
    """What the vendor would compute: the same pixels, fields and address get the same answer."""
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    text = f"{address}|{sorted(fields.items())}|".encode() + pixels.tobytes()
    return hashlib.sha256(text).hexdigest()


def result_for(ident: str, size: tuple[int, int]) -> bytes:
    """A result that names its request: every pixel carries the identity's first bytes."""
    colour = tuple(bytes.fromhex(ident[:6]))
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class SimClient(FaceBeautyClient):
    """The client's four remote steps against SimApi, each a step boundary where faults may land."""

    def __init__(self, sim: Simulation, address: str) -> None:
        super().__init__(SECRET, address, settings=ClientSettings(timeout=600.0, poll_initial=1.0, poll_max=1.0),
                         clock=sim.clock)
        self.sim = sim

    def _paid(self, upload: Any, params: BeautyParams, mode: str, check: Any) -> tuple[str, bytes]:
        sim = self.sim
        sim.baton.step("send")
        check_cancel(check)  # the transport's check before an attempt: nothing sent yet
        fault = sim.take("refused", "bad_key")
        if fault == "bad_key":
            raise ApiError(http_status=401, code="ERROR_API_KEY_INVALID", api_message="bad key", operation="submit")
        if fault == "refused":
            raise ApiError(http_status=503, code="ERROR_RESOURCE_UNAVAILABLE", api_message="busy", operation="submit")
        fields = self.form_fields(params, mode)
        ident = identity(self.base_url, fields, upload.data)
        size = Image.open(io.BytesIO(upload.data)).size
        task_id = sim.api.create(ident, result_for(ident, size))
        if sim.take("slow_submit"):
            for _ in range(3):  # the answer takes longer than any claim timeout
                sim.clock.advance(CLAIM_TIMEOUT)
                sim.wall[0] += CLAIM_TIMEOUT
                sim.baton.step("slow upload")
        sim.baton.step("answered")
        if sim.take("timeout_after_send"):
            raise SubmitOutcomeUnknown("The submit was sent but no usable answer came back (read timeout).")
        return task_id, sim.api.tasks[task_id]["result"]

    def submit(self, upload: Any, params: BeautyParams, *, check_cancel: Any = None, **kwargs: Any) -> SubmitReceipt:
        task_id, _ = self._paid(upload, params, "async", check_cancel)
        return SubmitReceipt(task_id, f"req-{task_id}", "")

    def submit_sync(self, upload: Any, params: BeautyParams, *, check_cancel: Any = None, **kwargs: Any) -> bytes:
        task_id, result = self._paid(upload, params, "sync", check_cancel)
        self.sim.api.tasks[task_id]["sync"] = True
        return result

    def query(self, task_id: str, **kwargs: Any) -> TaskState:
        self.sim.baton.step("query")
        task = self.sim.api.alive(task_id)
        if task is None:
            raise TaskFailedError(task_id=task_id, http_status=404, code="ERROR_RESOURCE_NOT_FOUND", api_message="gone")
        if self.sim.clock.monotonic() < task["ready"]:
            return TaskState(1, None, {})
        return TaskState(2, f"https://cdn.sim/{task_id}?token=signed", {})

    def download(self, url: str, **kwargs: Any) -> bytes:
        self.sim.baton.step("download")
        task_id = url.rsplit("/", 1)[-1].split("?")[0]
        task = self.sim.api.alive(task_id)
        if task is None:
            raise ResultExpired(f"The result of task {task_id} expired.")
        return task["result"]
