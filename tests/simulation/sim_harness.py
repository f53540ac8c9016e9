"""A deterministic simulation of the money path, in the spirit of FoundationDB's simulator.

The real ApiBackend, choke point, journal and result cache run in 2-3 worker threads ("processes",
each with its own owner and journal handle on one shared folder), against `SimApi`, a model of
the vendor that counts every paid request. The workers never run at once: at every step
boundary (each journal/cache transaction, each API call, each sleep) the `Baton` hands the turn
to a worker picked by the seeded RNG, and may inject a fault there. The same seed therefore
replays the same schedule, faults and all. After the faulty phase a clean worker re-runs every
image (what a user does next), then the invariants are checked.

The same schedules with worker OS processes against the real emulator are proc_harness.py's;
it reuses this module's fault list, constants, request identity and results.
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
FAULTS = (
    "kill",
    "cancel",
    "ctrl_c_twice",
    "locked",
    "sqlite_error",
    "slow_submit",
    "refused",
    "timeout_after_send",
    "bad_key",
    "task_expiry",
    "api_restart",
    "clock_jump",
)


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
    trace: list[str] = field(default_factory=list)  # the process simulation's events, in order


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
        self.paid_twice: list[str] = []  # paid again while an earlier paid result could still be had
        self.gone: set[str] = set()  # task ids whose result can no longer be had

    def create(self, identity: str, result: bytes) -> str:
        self.counter += 1
        task_id = f"T{self.counter}"
        earlier = [t for ident, t in self.paid if ident == identity and self.alive(t) is not None]
        if earlier:
            self.paid_twice.append(f"{identity[:12]}: {earlier[0]} and {task_id}")
        self.tasks[task_id] = {
            "identity": identity,
            "born": self.wall[0],
            "ready": self.clock.monotonic() + 2.0,
            "result": result,
        }
        self.paid.append((identity, task_id))
        return task_id

    def alive(self, task_id: str) -> dict[str, Any] | None:
        task = self.tasks.get(task_id)
        if task is not None and self.wall[0] - task["born"] >= TASK_LIFETIME:
            self.gone.add(task_id)  # deleted for good: a clock set back later does not bring it back
        if task is None or task_id in self.gone:
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
        super().__init__(
            SECRET,
            address,
            settings=ClientSettings(timeout=600.0, poll_initial=1.0, poll_max=1.0),
            clock=sim.clock,
        )
        self.sim = sim

    def _paid(self, upload: Any, params: BeautyParams, mode: str, check: Any) -> tuple[str, bytes]:
        sim = self.sim
        sim.baton.step("send")
        check_cancel(check)  # the transport's check before an attempt: nothing sent yet
        fault = sim.take("refused", "bad_key")
        if fault == "bad_key":
            raise ApiError(
                http_status=401, code="ERROR_API_KEY_INVALID", api_message="bad key", operation="submit"
            )
        if fault == "refused":
            raise ApiError(
                http_status=503, code="ERROR_RESOURCE_UNAVAILABLE", api_message="busy", operation="submit"
            )
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

    def submit(
        self, upload: Any, params: BeautyParams, *, check_cancel: Any = None, **kwargs: Any
    ) -> SubmitReceipt:
        task_id, _ = self._paid(upload, params, "async", check_cancel)
        return SubmitReceipt(task_id, f"req-{task_id}", "")

    def submit_sync(
        self, upload: Any, params: BeautyParams, *, check_cancel: Any = None, **kwargs: Any
    ) -> bytes:
        task_id, result = self._paid(upload, params, "sync", check_cancel)
        self.sim.api.tasks[task_id]["sync"] = True
        return result

    def query(self, task_id: str, **kwargs: Any) -> TaskState:
        self.sim.baton.step("query")
        task = self.sim.api.alive(task_id)
        if task is None:
            raise TaskFailedError(
                task_id=task_id, http_status=404, code="ERROR_RESOURCE_NOT_FOUND", api_message="gone"
            )
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


class Simulation:
    """One seeded schedule: 2-3 workers over overlapping images, faults at step boundaries, then checks."""

    def __init__(self, seed: int, folder: Path) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.folder = folder
        self.clock = FakeClock(start=1000.0)
        self.wall = [1_700_000_000.0]
        self.api = SimApi(self.wall, self.clock)
        self.baton = Baton(random.Random(seed * 7919 + 1))
        self.outcome = Outcome(seed)
        kinds = self.rng.sample(FAULTS, self.rng.randint(1, 3))
        self.fault_kinds = kinds
        self.rate = self.rng.choice((0.02, 0.05, 0.1))
        self.armed: set[str] = set()
        self.dead_owners: set[str] = set()
        self.cancelled: set[str] = set()
        self.owners: dict[str, str] = {}
        self.messages: list[str] = []
        self.local = threading.local()
        self.faulting = False
        self.backends: dict[tuple[str, str], ApiBackend] = {}
        self.ledgers: dict[str, tuple[TaskJournal, ResultCache]] = {}

    # -- faults --------------------------------------------------------------------------------

    def take(self, *kinds: str) -> str | None:
        for kind in kinds:
            if kind in self.armed:
                self.armed.discard(kind)
                return kind
        return None

    def on_step(self, worker: str, label: str) -> None:
        if self.faulting or worker == "sim-recovery" or self.rng.random() >= self.rate:
            return
        kind = self.rng.choice(self.fault_kinds)
        self.outcome.faults.append(f"{kind}@{worker}:{label}")
        if kind in ("kill", "ctrl_c_twice"):
            if kind == "ctrl_c_twice":
                self.cancelled.add(worker)
                self.faulting = True
                try:  # what the CLI's second Ctrl-C does before it quits (none before issue 16)
                    from beauty_api.run import paid_request

                    paid_request.abandon_in_flight(self.owners[worker])
                except ImportError:
                    pass
                finally:
                    self.faulting = False
            self.dead_owners.add(self.owners[worker])
            self.baton.frozen.add(worker)
        elif kind == "cancel":
            self.cancelled.add(worker)
        elif kind == "task_expiry" and self.api.tasks:
            self.api.gone.add(self.rng.choice(sorted(self.api.tasks)))
        elif kind == "api_restart":
            self.api.gone.update(self.api.tasks)
        elif kind == "clock_jump":
            self.wall[0] += self.rng.choice((7200.0, -3600.0, TASK_LIFETIME + 3600.0))
        else:
            self.armed.add(kind)

    def db_fault(self) -> None:
        if self.baton.name() is None or self.faulting:
            return
        kind = self.take("locked", "sqlite_error")
        if kind == "locked":
            raise sqlite3.OperationalError("database is locked")
        if kind == "sqlite_error":
            raise sqlite3.OperationalError("disk I/O error")

    # -- running -------------------------------------------------------------------------------

    def images(self) -> list[tuple[SourceImage, BeautyParams, str]]:
        """A few requests (picture, settings, address); workers pick overlapping subsets."""
        base = np.random.default_rng(self.seed).integers(0, 255, size=(56, 56, 3), dtype=np.uint8)
        picks = []
        for index in range(self.rng.randint(2, 4)):
            rgb = np.ascontiguousarray(np.roll(base, index * 3, axis=0))
            picks.append((SourceImage(rgb), self.rng.choice(PARAMS), self.rng.choice(ADDRESSES)))
        return picks

    def backend(self, worker: str, address: str) -> ApiBackend:
        """Each worker is one process: one journal handle and one cache handle on the shared folder."""
        made = self.backends.get((worker, address))
        if made is not None:
            return made
        ledger = self.ledgers.get(worker)
        if ledger is None:
            ledger = self.ledgers[worker] = (
                TaskJournal(
                    self.folder / "journal.sqlite3",
                    time_source=lambda: self.wall[0],
                    claim_timeout=CLAIM_TIMEOUT,
                ),
                ResultCache(self.folder / "cache", time_source=lambda: self.wall[0]),
            )
        backend = ApiBackend(SimClient(self, address), journal=ledger[0], cache=ledger[1])
        backend.owner = self.owners[worker]
        self.backends[(worker, address)] = backend
        return backend

    def work(self, worker: str, jobs: list[tuple[SourceImage, BeautyParams, str, str]]) -> None:
        for source, params, address, mode in jobs:
            backend = self.backend(worker, address)
            try:
                outcome = backend.retouch(
                    source,
                    params,
                    options=RetouchOptions(mode=mode),
                    check_cancel=lambda w=worker: w in self.cancelled,
                )
            except Killed:
                raise
            except BeautyError as error:
                self.ended(worker, error)
                if worker in self.cancelled:
                    return
                continue
            except BaseException as error:  # a bug, or a stray exception: never acceptable
                self.violate(
                    "every image ends done, failed with a reason, or resumable",
                    f"{worker} got {type(error).__name__}: {error}",
                )
                return
            self.check_result(worker, outcome.image, params, address, mode, source)

    def ended(self, worker: str, error: BaseException) -> None:
        text = str(error)
        self.messages.append(text)
        if not text.strip():
            self.violate(
                "every image ends done, failed with a reason, or resumable",
                f"{worker}: {type(error).__name__} without a reason",
            )

    def check_result(
        self,
        worker: str,
        image: np.ndarray,
        params: BeautyParams,
        address: str,
        mode: str,
        source: SourceImage,
    ) -> None:
        client = FaceBeautyClient(SECRET, address)
        ident = identity(address, client.form_fields(params, mode), _png(source))
        expected = tuple(bytes.fromhex(ident[:6]))
        if tuple(int(v) for v in image[0, 0]) != expected:
            self.violate(
                "no result served for another fingerprint or address", f"{worker}: {address} {params}"
            )

    def violate(self, invariant: str, detail: str) -> None:
        self.outcome.violations.append(Violation(invariant, detail))

    def run(self) -> Outcome:
        requests = self.images()
        workers = {}
        for number in range(self.rng.randint(2, 3)):
            name = f"sim-w{number}"
            self.owners[name] = f"{HOST}:{90_000_000 + number}:1:{name}"
            jobs = [
                (s, p, a, self.rng.choice(("async", "async", "sync")))
                for s, p, a in requests
                if self.rng.random() < 0.8
            ]
            self.rng.shuffle(jobs)
            workers[name] = lambda n=name, j=jobs: self.work(n, j)
        with self._patched():
            self.baton.on_step = self.on_step
            self.baton.run(workers)
            # What the user does next: run everything again, with no faults.
            self.owners["sim-recovery"] = f"{HOST}:{os.getpid()}:1:recovery"
            recovery = Baton(random.Random(self.seed))
            self.baton = recovery
            jobs = [(s, p, a, mode) for s, p, a in requests for mode in ("async", "sync")]
            recovery.run({"sim-recovery": lambda: self.work("sim-recovery", jobs)})
        self.check_money()
        self.check_secrets()
        self.outcome.steps = self.baton.steps
        self.outcome.paid = len(self.api.paid)
        return self.outcome

    @contextmanager
    def _patched(self):
        store = private_store.PrivateSqlite
        read, write = store.read, store.write
        sim = self

        @contextmanager
        def stepped(original, db, *args):
            depth = getattr(sim.local, "depth", 0)
            if depth == 0:
                sim.baton.step("ledger")
                sim.db_fault()
            sim.local.depth = depth + 1
            try:
                with original(db, *args) as conn:
                    yield conn
            finally:
                sim.local.depth = depth

        was_dead = claims.owner_is_dead
        logs = _Capture()
        logger = logging.getLogger("beauty_api")
        logger.addHandler(logs)
        store.read = lambda db: stepped(read, db)  # type: ignore[method-assign]
        store.write = lambda db: stepped(write, db)  # type: ignore[method-assign]
        claims.owner_is_dead = lambda owner: (
            owner in sim.dead_owners
            or (
                owner.split(":")[1] != str(os.getpid())
                and not owner.split(":")[1].startswith("9000000")
                and was_dead(owner)
            )
        )
        try:
            yield
        finally:
            store.read, store.write = read, write  # type: ignore[method-assign]
            claims.owner_is_dead = was_dead
            logger.removeHandler(logs)
            self.messages.extend(logs.lines)

    # -- invariants ----------------------------------------------------------------------------

    def check_money(self) -> None:
        """At most one paid request per identity while an earlier paid result can still be had."""
        for detail in self.api.paid_twice:
            self.violate("at most one paid submit per fingerprint", detail)

    def check_secrets(self) -> None:
        texts = list(self.messages)
        for path in self.folder.rglob("*"):
            if path.is_file():
                with suppress(OSError):
                    texts.append(path.read_bytes().decode("latin-1"))
        if any(SECRET in text for text in texts):
            self.violate("no secret in any exception, log line or file", "the API key was found")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _png(source: SourceImage) -> bytes:
    from beauty_api.codec import encode_for_upload

    return encode_for_upload(source).data


def run_schedule(seed: int) -> Outcome:
    memory = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="fbp-sim-", dir=memory if memory.is_dir() else None) as folder:
        return Simulation(seed, Path(folder)).run()
