"""The money-path simulation with worker OS processes (issue 16, item 7): sim_harness's, one level up.

2-3 worker processes (proc_worker.py) per schedule run the real money path of the CLI and of the
ComfyUI node (`ApiBackend.from_environment`, the choke point, the SQLite journal and result
cache in one per-user state folder) over HTTP against two real emulators (sim_emulator.py:
two addresses), which count every paid submit. The coordinator (this module, in the test
process) owns the seeded RNG and the clock: each worker blocks at every step boundary until
told "go", so one process runs at a time, in an order the seed alone decides, and nothing
really sleeps. Faults are the real ones where they can be: SIGKILL of a worker (also while its
submit is at the emulator, before the answer leaves), Ctrl-C once (Cancel) or twice under the
CLI's own handler, another process holding BEGIN IMMEDIATE on the journal, SQLite errors, a
submit held at the emulator while three claim timeouts pass and the others run, a refused
submit (429) or key (401), a connection dropped after the task was created (outcome unknown),
a day passing (every task expires), an emulator restart (same ports, memory lost), a jump of
the workers' wall clock. After the faulty phase a clean worker runs every image again, then the
invariants of sim_harness are checked, with paid submits as the emulators counted them.

Workers are forked from a preloaded fork server and reused across schedules; a killed one is
replaced. `ProcessSimulation` is one schedule; `Coordinator` holds the emulators and processes.
Nothing waits in real time and nothing runs beside the current step (a held upload's claim
heartbeat beats here, one beat at a time), so a seed replays exactly: `Outcome.trace` lists
every event, free of ports and paths, and the same seed gives the same trace in any run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
from sim_emulator import PaidLog, SimEmulator, counted_task_ids
from sim_harness import CLAIM_TIMEOUT, FAULTS, PARAMS, SECRET, TASK_LIFETIME, Outcome, Violation, identity

from beauty_api.api.client import FaceBeautyClient
from beauty_api.clock import FakeClock
from beauty_api.codec import SourceImage, encode_for_upload
from beauty_api.ledger.journal_claims import HEARTBEAT_SECONDS

WAIT = 120.0  # real seconds a worker may take to reach its next step before the run is called stuck
ENTRIES = ("comfy", "cli", "cli")  # worker 0 enters as the ComfyUI node, the others as the CLI


def _start_fork_server() -> None:
    """The fork server imports proc_worker (and the package) once; each worker is a fork of it.
    Python 3.11's fork server ignores the parent's sys.path, so it is given on PYTHONPATH; its
    string hashes are fixed (PYTHONHASHSEED), so no set's order differs between runs."""
    from multiprocessing import forkserver

    here = Path(__file__).resolve().parent
    before = {name: os.environ.get(name) for name in ("PYTHONPATH", "PYTHONHASHSEED")}
    path = [str(here), str(here.parents[1]), *filter(None, [before["PYTHONPATH"]])]
    os.environ.update(PYTHONPATH=os.pathsep.join(path), PYTHONHASHSEED="0")
    try:
        forkserver.ensure_running()
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def _worker_main(conn: Any, beats: Any) -> None:
    """A worker process's entry. proc_worker patches time, SQLite, HTTP and the heartbeat in the
    process that imports it, so only a worker (and the fork server) may import it, never this one."""
    import proc_worker

    proc_worker.serve(conn, beats)


class Worker:
    """One worker process and the reader thread that forwards its messages to the coordinator."""

    def __init__(self, context: Any, events: queue.Queue) -> None:
        mine, theirs = context.Pipe()
        self.conn = mine
        self.beats, their_beats = context.Pipe()  # read here only when a beat is sent: no reader thread
        self.process = context.Process(target=_worker_main, args=(theirs, their_beats), daemon=True)
        self.process.start()
        theirs.close()
        their_beats.close()
        threading.Thread(target=self._read, args=(events,), daemon=True).start()

    def _read(self, events: queue.Queue) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                events.put((self, ("eof",)))
                return
            events.put((self, message))

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)

    def beat(self, mono: float, wall: float) -> int:
        """Its claim heartbeats beat once at this time; how many there were."""
        self.beats.send({"mono": mono, "wall": wall})
        if not self.beats.poll(WAIT):
            raise TimeoutError("a worker's heartbeat did not answer")
        answer: int = self.beats.recv()
        return answer


class Coordinator:
    """The emulators and the worker processes, kept across schedules (spawning is slow)."""

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["proc_worker"])
        _start_fork_server()
        self.events: queue.Queue = queue.Queue()
        self.clock = FakeClock(start=1000.0)
        self.paid = PaidLog()
        self.schedule: ProcessSimulation | None = None
        self.emulators = [SimEmulator(f"api{n}", self.clock, self.paid, self._on_submit) for n in range(2)]
        for emulator in self.emulators:
            emulator.start()
        self.workers: list[Worker] = []
        self.spawned = 0

    def close(self) -> None:
        for worker in self.workers:
            if worker.alive():
                worker.conn.send(("quit",))
                worker.process.join(10)
        for emulator in self.emulators:
            emulator.stop()

    def worker(self, index: int) -> Worker:
        while len(self.workers) <= index:
            self.workers.append(self._spawn())
        if not self.workers[index].alive():
            self.workers[index] = self._spawn()
        return self.workers[index]

    def _spawn(self) -> Worker:
        self.spawned += 1
        return Worker(self.context, self.events)

    def _on_submit(self, emulator: SimEmulator, moment: str) -> None:
        if self.schedule is not None:
            self.schedule.on_submit(emulator, moment)

    def run(self, seed: int, folder: Path, *, without_ledger: bool = False) -> Outcome:
        """One schedule in `folder`; `without_ledger` breaks the workers (tests of the checks)."""
        self.paid.entries.clear()
        self.paid.twice.clear()
        for emulator in self.emulators:
            emulator.reset()
        self.schedule = ProcessSimulation(self, seed, folder)
        self.schedule.without_ledger = without_ledger
        try:
            with counted_task_ids():
                return self.schedule.run()
        finally:
            self.schedule = None


class ProcessSimulation:
    """One seeded schedule over worker processes (see the module docstring)."""

    def __init__(self, coordinator: Coordinator, seed: int, folder: Path) -> None:
        self.co = coordinator
        self.seed, self.folder = seed, folder
        self.rng = random.Random(seed)
        self.turns = random.Random(seed * 7919 + 1)
        self.outcome = Outcome(seed)
        self.fault_kinds = self.rng.sample(FAULTS, self.rng.randint(1, 3))
        self.rate = self.rng.choice((0.02, 0.05, 0.1))
        self.wall = 1_700_000_000.0
        self.skew = 0.0
        self.armed: set[str] = set()
        self.current: Worker | None = None
        self.faults_on: bool = True
        self.held: dict[Worker, threading.Event] = {}
        self.locks: list[tuple[sqlite3.Connection, list[int]]] = []
        self.replies: dict[Worker, list[str]] = {}
        self.texts: list[str] = []
        self.finished: list[tuple[str, Any]] = []
        self.without_ledger = False
        self.trace = self.outcome.trace  # every event in order, free of ports and paths: replays compare it
        self.epochs = {emulator: emulator.epoch for emulator in coordinator.emulators}

    # -- the schedule -------------------------------------------------------------------------

    def requests(self) -> list[tuple[np.ndarray, Any, str]]:
        base = np.random.default_rng(self.seed).integers(0, 255, size=(56, 56, 3), dtype=np.uint8)
        addresses = [emulator.address for emulator in self.co.emulators]
        return [
            (
                np.ascontiguousarray(np.roll(base, index * 3, axis=0)),
                self.rng.choice(PARAMS),
                self.rng.choice(addresses),
            )
            for index in range(self.rng.randint(2, 4))
        ]

    def config(self, name: str, entry: str, jobs: list[Any]) -> dict[str, Any]:
        return {
            "stderr": str(self.folder / f"{name}.stderr"),
            "entry": entry,
            "without_ledger": self.without_ledger,
            "jobs": jobs,
            "comfy_user_dir": str(self.folder / "ComfyUI" / "user"),
            "environ": {
                "XDG_CACHE_HOME": str(self.folder / "home" / ".cache"),  # the per-user state folder
                "XDG_CONFIG_HOME": str(self.folder / "home" / ".config"),
                "AILAB_API_KEY": SECRET,
            },
        }

    def run(self) -> Outcome:
        requests = self.requests()
        plans = {}
        for number in range(self.rng.randint(2, 3)):
            jobs = [
                (rgb, params, address, self.rng.choice(("async", "async", "sync")))
                for rgb, params, address in requests
                if self.rng.random() < 0.8
            ]
            self.rng.shuffle(jobs)
            plans[number] = self.config(f"w{number}", ENTRIES[number], jobs)
        self.play(plans)
        for conn, _ in self.locks:
            conn.close()
        self.locks.clear()
        # What the user does next: run everything again, with no faults.
        self.faults_on = False
        jobs = [
            (rgb, params, address, mode) for rgb, params, address in requests for mode in ("async", "sync")
        ]
        self.play({0: self.config("recovery", "cli", jobs)})
        self.outcome.paid = len(self.co.paid.entries)
        for paid in self.co.paid.entries:  # in the order paid, per request identity
            epoch = paid.epoch - self.epochs[paid.emulator]
            self.trace.append(f"paid {paid.key[:16]} {paid.task_id or 'sync'} epoch {epoch}")
        for detail in self.co.paid.twice:
            self.violate("at most one paid submit per fingerprint", detail)
        self.check_secrets()
        return self.outcome

    def play(self, plans: dict[int, dict[str, Any]]) -> None:
        """Start each worker on its plan, then give turns until every one has finished or died."""
        workers: dict[Worker, dict[str, Any]] = {}
        for number, plan in sorted(plans.items()):
            worker = self.co.worker(number)
            workers[worker] = plan
            worker.conn.send(("begin", plan))
            self.current = worker
            self.wait_for(worker)  # its first step, "start": nothing has happened yet
        runnable = [w for w in workers if w in self.replies or w in self.held]
        while runnable:
            worker = self.turns.choice(runnable)
            self.current = worker
            if worker in self.held:
                self.held.pop(worker).set()  # the held upload goes on; the worker runs until its next step
            else:
                faults = self.replies.pop(worker)
                worker.conn.send(
                    {"mono": self.co.clock.monotonic(), "wall": self.wall + self.skew, "faults": faults}
                )
            state = self.wait_for(worker)
            if state in ("finished", "dead"):
                runnable.remove(worker)
            if state == "finished":
                self.check_results(workers[worker]["stderr"], workers[worker]["jobs"], self.finished)

    def wait_for(self, worker: Worker) -> str:
        """The current worker's next event: a step, held at the emulator, finished, or dead."""
        while True:
            sender, message = self.co.events.get(timeout=WAIT)
            if sender is not worker and message[0] != "held":
                continue  # a late word from a process killed earlier
            kind = message[0]
            if kind in ("held", "eof", "done"):
                self.note(worker, kind, *(status for status, _ in message[1]) if kind == "done" else ())
            if kind == "held":
                self.hold(worker)
                return "held"
            if kind == "eof":  # killed in flight, or quit at a second Ctrl-C
                worker.process.join(10)  # reaped: its pid no longer looks alive to the journal
                return "dead"
            if kind == "done":
                self.finished = message[1]
                return "finished"
            self.note(worker, message[1], f"{message[2]:g}")
            self.outcome.steps += 1
            if message[2]:
                self.co.clock.advance(message[2])
                self.wall += message[2]
            self.release_locks()
            self.replies[worker] = []
            self.maybe_fault(worker, message[1])
            return "step" if worker in self.replies else "dead"

    def note(self, worker: Worker, *words: str) -> None:
        self.trace.append(" ".join((str(self.co.workers.index(worker)), *words)))

    # -- faults -------------------------------------------------------------------------------

    def maybe_fault(self, worker: Worker, label: str) -> None:
        if not self.faults_on or self.rng.random() >= self.rate:
            return
        kind = self.rng.choice(self.fault_kinds)
        self.outcome.faults.append(f"{kind}@{self.co.workers.index(worker)}:{label}")
        self.trace.append(f"fault {self.outcome.faults[-1]}")
        if kind == "kill":
            if self.rng.random() < 0.5:
                self.armed.add("kill_in_flight")  # when its next submit has reached the emulator
            else:
                self.replies.pop(worker)
                worker.kill()
                self.expect_death(worker)
        elif kind in ("cancel", "ctrl_c_twice", "sqlite_error"):
            self.replies[worker].append(kind)
        elif kind == "locked":
            self.lock_journal()
        elif kind == "refused":
            self.co.emulators[self.rng.randrange(2)].faults.rate_limit_submits(1)
        elif kind == "timeout_after_send":
            self.co.emulators[self.rng.randrange(2)].faults.drop_connections(
                "submit", 1, after_processing=True
            )
        elif kind in ("slow_submit", "bad_key"):
            self.armed.add(kind)
        elif kind == "task_expiry":  # a day passes (a laptop asleep): every task expires for real
            self.co.clock.advance(TASK_LIFETIME + 60.0)
            self.wall += TASK_LIFETIME + 60.0
        elif kind == "api_restart" and not self.held:  # a held upload would wake its sender
            self.co.emulators[self.rng.randrange(2)].restart()
        elif kind == "clock_jump":
            self.skew += self.rng.choice((7200.0, -3600.0, TASK_LIFETIME + 3600.0))

    def hold(self, worker: Worker) -> None:
        """The upload outlasts any claim timeout: time passes while its sender's heartbeat beats
        (in this thread, one beat at a time, while every process waits)."""
        for _ in range(round(3 * CLAIM_TIMEOUT / HEARTBEAT_SECONDS)):
            self.co.clock.advance(HEARTBEAT_SECONDS)
            self.wall += HEARTBEAT_SECONDS
            beating = worker.beat(self.co.clock.monotonic(), self.wall + self.skew)
            self.note(worker, "beat", str(beating))

    def expect_death(self, worker: Worker) -> None:
        while True:
            sender, message = self.co.events.get(timeout=WAIT)
            if sender is worker and message[0] == "eof":
                worker.process.join(10)
                return

    def on_submit(self, emulator: SimEmulator, moment: str) -> None:
        """In the emulator's handler thread, while the current worker's submit is there."""
        from beauty_api.emulator.answers import Refusal

        worker = self.current
        if worker is None or not self.faults_on:
            return
        if moment == "arrived" and "bad_key" in self.armed:
            self.armed.discard("bad_key")
            raise Refusal("ERROR_USER_NOT_EXISTS", "the API key is not valid")
        if moment == "arrived" and "slow_submit" in self.armed:
            self.armed.discard("slow_submit")
            go = threading.Event()
            self.held[worker] = go
            self.co.events.put((worker, ("held",)))
            go.wait()  # the coordinator lets time pass (hold), then the others run until the seed
            # gives its sender the turn again
        if moment == "answered" and "kill_in_flight" in self.armed:
            self.armed.discard("kill_in_flight")
            self.outcome.faults.append("kill@in-flight")
            self.trace.append("fault kill@in-flight")
            worker.kill()  # the task exists (paid); its answer goes to a dead socket

    def lock_journal(self) -> None:
        """Another process holds BEGIN IMMEDIATE on the journal for a few steps."""
        for path in sorted(self.folder.rglob("journal*.sqlite3")):
            conn = sqlite3.connect(str(path), timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error:
                conn.close()
                continue
            self.locks.append((conn, [self.rng.randint(1, 6)]))

    def release_locks(self) -> None:
        for conn, left in list(self.locks):
            left[0] -= 1
            if left[0] <= 0:
                conn.close()
                self.locks.remove((conn, left))

    # -- invariants ---------------------------------------------------------------------------

    def violate(self, invariant: str, detail: str) -> None:
        self.outcome.violations.append(Violation(invariant, detail))

    def check_results(self, stderr: str, jobs: list[Any], results: list[tuple[str, Any]]) -> None:
        for (rgb, params, address, mode), (status, value) in zip(
            jobs, results, strict=False
        ):  # a cancelled worker stops early
            self.texts.append(str(value))
            if status == "bug" or (status == "failed" and not value.split(":", 1)[-1].strip()):
                self.violate(
                    "every image ends done, failed with a reason, or resumable", f"{stderr}: {value}"
                )
            elif status == "done":
                fields = FaceBeautyClient(SECRET, address).form_fields(params, mode)
                ident = identity(address, fields, encode_for_upload(SourceImage(rgb)).data)
                if value != tuple(bytes.fromhex(ident[:6])):
                    self.violate(
                        "no result served for another fingerprint or address", f"{address} {params} {mode}"
                    )

    def check_secrets(self) -> None:
        texts = list(self.texts)
        for path in self.folder.rglob("*"):
            if path.is_file():
                texts.append(path.read_bytes().decode("latin-1"))
        if any(SECRET in text for text in texts):
            self.violate("no secret in any exception, log line or file", "the API key was found")
