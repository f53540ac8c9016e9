"""One worker OS process of the process-level money-path simulation (proc_harness.py drives it).

It runs the real money path of a front-end: `ApiBackend.from_environment` as the CLI calls it,
or with ComfyUI's user folder as the node calls it (nodes.py), so both share the per-user
ledger (SQLite journal + result cache) and talk HTTP to the coordinator's emulator. Nothing in
the package is changed: at import this module wraps, in this process only,

- time: `time.time` (the ledger's wall clock) and `SystemClock` (monotonic time, sleeping) read
  the coordinator's clock, so no schedule depends on real time and nothing really sleeps;
- step boundaries: each journal/cache transaction, each HTTP request and each sleep sends
  ("step", label) to the coordinator and blocks until it answers "go" (with the time, and any
  fault to take here). Only the main thread steps; the claim heartbeat thread never does;
- the transport's retry jitter (seeded) and its socket timeouts (long: a request the
  coordinator holds at the emulator must not time out in real time);
- the claim heartbeat (paid_request's `_Heartbeat`, subclassed): it beats when the coordinator
  says so, on its clock, over a second pipe read by one thread of this process, and only while
  this worker's upload is held at the emulator (its main thread blocked there), so a beat never
  races a step of any process. The package's heartbeat thread waits in real time; here nothing does;
- SQLite's busy timeout: 0, so a locked journal answers "busy" at once (nothing waits in real
  time); the package's own waits for a locked journal are sleeps, hence steps.

Faults taken here are the real ones: Ctrl-C is `signal.raise_signal(SIGINT)` under the CLI's own
handler (first: cancel; second: `abandon_in_flight`, then `os._exit`), "sqlite_error" fails the
next ledger transaction. SIGKILL comes from the coordinator.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_clock = {"mono": 1000.0, "wall": 1_700_000_000.0}
time.time = lambda: _clock["wall"]  # before the package is imported: its default time sources bind this

import requests  # noqa: E402

import beauty_api.api.transport as transport  # noqa: E402
import beauty_api.run.paid_request as paid_request  # noqa: E402
from beauty_api.api.client import ClientSettings  # noqa: E402
from beauty_api.cli.retouch import _ctrl_c_cancels  # noqa: E402
from beauty_api.clock import SystemClock  # noqa: E402
from beauty_api.codec import SourceImage  # noqa: E402
from beauty_api.errors import BeautyError  # noqa: E402
from beauty_api.ledger import private_store  # noqa: E402
from beauty_api.ledger.result_cache import NullCache  # noqa: E402
from beauty_api.run.api_backend import ApiBackend  # noqa: E402
from beauty_api.run.backend import RetouchOptions  # noqa: E402

SETTINGS = ClientSettings(timeout=600.0, poll_initial=1.0, poll_max=1.0)
BUSY_TIMEOUT = 0.0  # no real wait for a locked journal: only the coordinator holds one, across steps


class Channel:
    """The pipe to the coordinator; `step` blocks until this worker has the turn again."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.quiet = False  # while a fault is being taken (Ctrl-C handler): no nested steps
        self.db_fault = False
        self.cancel_event = threading.Event()

    def step(self, label: str, seconds: float = 0.0) -> None:
        if self.quiet or threading.current_thread() is not threading.main_thread():
            return
        self.conn.send(("step", label, seconds))
        reply = self.conn.recv()
        _clock["mono"], _clock["wall"] = reply["mono"], reply["wall"]
        for fault in reply["faults"]:
            self.take(fault)

    def take(self, fault: str) -> None:
        if fault == "sqlite_error":
            self.db_fault = True
        elif fault in ("cancel", "ctrl_c_twice"):
            self.quiet = True  # the CLI's handler runs now; its ledger writes are part of this step
            try:
                signal.raise_signal(signal.SIGINT)
                if fault == "ctrl_c_twice":
                    signal.raise_signal(signal.SIGINT)  # the handler quits the process (os._exit)
            finally:
                self.quiet = False


channel: Channel | None = None


def _hook() -> None:
    """Wrap the package's time, ledger transactions and HTTP requests in step boundaries."""
    SystemClock.monotonic = lambda self: _clock["mono"]  # type: ignore[method-assign]

    def sleep(self: SystemClock, seconds: float) -> None:
        assert channel is not None
        channel.step("sleep", max(0.0, seconds))

    SystemClock.sleep = sleep  # type: ignore[method-assign]
    store = private_store.PrivateSqlite
    read, write, connect = store.read, store.write, store.connect
    depth = threading.local()

    @contextmanager
    def stepped(original: Any, db: Any) -> Any:
        level = getattr(depth, "level", 0)
        main = threading.current_thread() is threading.main_thread()
        if level == 0 and channel is not None and main:
            channel.step("ledger")
            if channel.db_fault and not channel.quiet:
                channel.db_fault = False
                raise sqlite3.OperationalError("disk I/O error")
        depth.level = level + 1
        try:
            with original(db) as conn:
                yield conn
        finally:
            depth.level = level

    def short_wait(db: Any) -> sqlite3.Connection:
        db._busy_timeout = BUSY_TIMEOUT
        return connect(db)

    store.read = lambda db: stepped(read, db)  # type: ignore[method-assign]
    store.write = lambda db: stepped(write, db)  # type: ignore[method-assign]
    store.connect = short_wait  # type: ignore[method-assign]
    request = requests.Session.request

    def http(session: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if channel is not None:
            channel.step(f"http {method} {url.split('?')[0].rsplit('/', 1)[-1]}")
        kwargs["timeout"] = (30.0, 600.0)
        return request(session, method, url, *args, **kwargs)

    requests.Session.request = http  # type: ignore[method-assign]
    made = transport.Transport.__init__

    def seeded(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.rng = random.Random(0)

    transport.Transport.__init__ = seeded  # type: ignore[method-assign]


_hook()


class SimHeartbeat(paid_request._Heartbeat):
    """The choke point's heartbeat with the coordinator's clock: no thread of its own; `beat`
    runs when the coordinator sends a beat (see Beats)."""

    def start(self) -> None:
        beating.append(self)

    def stop(self) -> None:
        if self in beating:
            beating.remove(self)

    def beat(self) -> None:
        self._ledger.heartbeat(self._fingerprint, self._owner)


beating: list[SimHeartbeat] = []  # the heartbeats started and not stopped (main thread only)
paid_request._Heartbeat = SimHeartbeat  # type: ignore[misc]


def beats(conn: Any) -> None:
    """The heartbeat's thread: each beat message sets the clock, beats every live heartbeat and
    answers how many beat. The coordinator sends one only while this worker's main thread is
    held at the emulator, and waits for the answer, so a beat runs alone."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        _clock["mono"], _clock["wall"] = message["mono"], message["wall"]
        for heartbeat in list(beating):
            try:
                heartbeat.beat()
            except Exception:  # as the package's heartbeat thread would die: its traceback on stderr
                traceback.print_exc()
                beating.remove(heartbeat)
        conn.send(len(beating))


def serve(conn: Any, beat_conn: Any) -> None:
    """Run schedules until told to quit: ("begin", config) -> steps ... -> ("done", results)."""
    global channel
    channel = Channel(conn)
    threading.Thread(target=beats, args=(beat_conn,), name="sim-heartbeat", daemon=True).start()
    logging.getLogger("beauty_api").setLevel(logging.DEBUG)
    logging.getLogger("beauty_api").addHandler(logging.StreamHandler(sys.stderr))
    while True:
        message = conn.recv()
        if message[0] == "quit":
            return
        config = message[1]
        log = os.open(config["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 2)
        os.close(log)
        channel.cancel_event = threading.Event()
        channel.db_fault = False
        results = run_schedule(channel, config)
        conn.send(("done", results))


def run_schedule(channel: Channel, config: dict[str, Any]) -> list[tuple[str, Any]]:
    for name in ("FACE_BEAUTY_STATE_DIR", "FACE_BEAUTY_LEDGER_URL", "AILAB_CONFIG_FILE"):
        os.environ.pop(name, None)
    os.environ.update(config["environ"])
    channel.step("start")
    backends: dict[str, ApiBackend] = {}
    results: list[tuple[str, Any]] = []
    with _ctrl_c_cancels(channel.cancel_event):
        try:
            for rgb, params, address, mode in config["jobs"]:
                backend = backends.get(address)
                try:
                    if backend is None:
                        backend = backends[address] = _backend(config, address)
                    outcome = backend.retouch(
                        SourceImage(rgb),
                        params,
                        options=RetouchOptions(mode=mode),
                        check_cancel=channel.cancel_event.is_set,
                    )
                except BeautyError as error:
                    results.append(("failed", f"{type(error).__name__}: {error}"))
                    if channel.cancel_event.is_set():
                        break
                    continue
                except Exception as error:  # a bug, or a stray exception: never acceptable
                    results.append(("bug", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
                    break
                results.append(("done", tuple(int(v) for v in outcome.image[0, 0][:3])))
        finally:
            for backend in backends.values():
                backend.close()
    return results


def _backend(config: dict[str, Any], address: str) -> ApiBackend:
    """The front-end's own entry: the CLI's call, or the ComfyUI node's (with its user folder)."""
    os.environ["AILAB_API_BASE_URL"] = address
    if config["entry"] == "comfy":
        backend = ApiBackend.from_environment(
            settings=SETTINGS, comfy_user_dir=Path(config["comfy_user_dir"])
        )
    else:
        backend = ApiBackend.from_environment(settings=SETTINGS)
    if config["without_ledger"]:  # a broken pack, for the test that the checks can fail
        backend.journal, backend.cache = None, NullCache()
    return backend
