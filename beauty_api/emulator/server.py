"""A loopback HTTP emulator of the Face Beauty Pro API, so the whole path runs with no key and no network.

Two real HTTP servers (standard library, daemon threads, ephemeral ports): the API
(`base_url`: submit, task query, credits) and a CDN (`cdn_base_url`) that serves result files
without any key, as the real result URLs do. Answers follow shared/api/contract.md: every public
field (`request_id`, `log_id`, `error_code` (= HTTP status, 0 on success), `error_code_str`,
`error_msg`, `error_detail{status_code, code, code_message, message}`) with the post-2026-01-08
HTTP statuses. Where the contract is UNCONFIRMED the emulator can produce each variant
(`result_location`, `status_location`, `failure_shape`, `sync_result_encoding`).

Emulator choices the real API does not document:
- a missing or empty `ailabapi-api-key` header answers 401 ERROR_APPLICATIONS_NOT_EXISTS, a wrong
  key 401 ERROR_USER_NOT_EXISTS (both mean "check the key");
- "No more than 2 MB" is read conservatively as 2,000,000 bytes of the image part;
- the image type is sniffed from its bytes (not from the filename or part Content-Type);
  a WEBP/GIF/BMP/TIFF image answers 415, bytes no decoder recognises 422 FILE_DECODING_FAILURE;
- "no face" is stood in for by a near-uniform image (pixel std-dev < 2): 422 ERROR_NO_FACE_IN_FILE;
- slider values must be 1 to 3 ASCII digits with a value 0..100; `filter_type` 1 or 2 digits,
  1..35 ("0" and "" are refused);
- an unknown path, or a known path with the wrong method, answers 404 ERROR_AI_NOT_EXISTS;
- an unknown, forgotten or expired task answers 404 ERROR_RESOURCE_NOT_FOUND;
- credits are reserved at submit (15 per task in flight) and billed when a task completes;
  a failed task releases its reservation and is not billed.

Faults (see faults.py) apply to one request in this order: `slow` is taken first and delays
whatever answer finally goes out; a `drop` before processing closes the connection; a
`rate_limit` (submit only) or `server_error` answers instead of processing; then the request is
processed; a `drop` after processing closes (submit) or cuts the body (others); `malformed`
truncates the body. Every submit is parsed and logged before any fault applies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..clock import DEFAULT_CLOCK
from .contract import RESULT_LOCATIONS, STATUS_LOCATIONS, SYNC_ENCODINGS
from .effect import FORMATS, resolve_effect
from .endpoints import EmulatorEndpoints, StoredResult, Task
from .faults import FAILURE_SHAPES, FaultPlan
from .http_handlers import ApiHandler, CdnHandler, EmulatorHttpServer
from .stats import EmulatorStats


class _Choice:
    """An attribute that only takes one of a few values (checked when set, even while serving)."""

    def __init__(self, choices: tuple[str, ...], normalise: Callable[[str], str] | None = None) -> None:
        self.choices = choices
        self.normalise = normalise

    def __set_name__(self, owner: type, name: str) -> None:
        self.public = name
        self.private = "_" + name

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj, self.private)

    def __set__(self, obj: object, value: str) -> None:
        value = self.normalise(value) if self.normalise and isinstance(value, str) else value
        if value not in self.choices:
            raise ValueError(f"{self.public} must be one of {', '.join(self.choices)}, got {value!r}")
        setattr(obj, self.private, value)


def _format_name(value: str) -> str:
    value = value.upper()
    return "JPEG" if value == "JPG" else value


class Emulator(EmulatorEndpoints):
    """The Face Beauty Pro API and its result CDN on loopback; `with Emulator() as emu:`.

    Timings are read from the attributes when a task is created, so setting e.g.
    `processing_seconds` on a running emulator affects new tasks. Time is `time_source()` (pass a
    FakeClock's `monotonic` to step through queued -> processing -> done -> expired without
    sleeping). `faults` arms failures; `stats` counts and logs what happened.

    Each `stats.submit_log` entry: `method`, `path`, `headers` (lower-cased names; the key value
    replaced by "<matched>"/"<not matched>"), `key_matched` (True/False, None when absent),
    `content_type`, `fields` (text fields), `part_names` (in order), `image_filename`,
    `image_content_type` (the part's header, None if absent), `image_size` (bytes, None if no part).
    """

    result_location = _Choice(RESULT_LOCATIONS)
    status_location = _Choice(STATUS_LOCATIONS)
    failure_shape = _Choice(FAILURE_SHAPES)
    sync_result_encoding = _Choice(SYNC_ENCODINGS)
    result_format = _Choice(tuple(FORMATS), normalise=_format_name)

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = "emulator-key",
        queued_seconds: float = 0.0,
        processing_seconds: float = 0.0,
        result_ttl_seconds: float = 24 * 3600,
        credits: int | None = None,
        time_source: Callable[[], float] = DEFAULT_CLOCK.monotonic,
        result_location: str = "result_url",
        status_location: str = "top",
        failure_shape: str = "status3",
        sync_result_encoding: str = "base64",
        result_format: str = "PNG",
        result_scale: float = 1.0,
        cdn_port: int = 0,
        log: Callable[[str], None] | None = None,
        effect: str = "auto",
    ) -> None:
        self.effect = resolve_effect(effect)  # "local" (the offline engine) or "stand-in"
        self.host = host
        self.port = port
        self.cdn_port = cdn_port
        self.api_key = api_key
        self.queued_seconds = queued_seconds
        self.processing_seconds = processing_seconds
        self.result_ttl_seconds = result_ttl_seconds
        self.credits = credits
        self.time_source = time_source
        self.result_location = result_location
        self.status_location = status_location
        self.failure_shape = failure_shape
        self.sync_result_encoding = sync_result_encoding
        self.result_format = result_format
        self.result_scale = result_scale
        self.log = log
        self._faults = FaultPlan()
        self._stats = EmulatorStats()
        self._lock = threading.RLock()
        self._tasks: dict[str, Task] = {}
        self._results: dict[str, StoredResult] = {}
        self._reserved = 0
        self._servers: list[EmulatorHttpServer] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind both servers and serve them from daemon threads; returns self."""
        if self._servers:
            return self
        api = EmulatorHttpServer((self.host, self.port), ApiHandler, self)
        try:
            cdn = EmulatorHttpServer((self.host, self.cdn_port), CdnHandler, self)
        except BaseException:
            api.server_close()
            raise
        self._servers = [api, cdn]
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            thread.name = f"face-beauty-emulator-{server.server_port}"
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection; safe to call twice."""
        servers, self._servers = self._servers, []
        stoppers = [threading.Thread(target=server.shutdown, daemon=True) for server in servers]
        for stopper in stoppers:  # in parallel: each waits up to one poll interval
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in servers:
            server.server_close()
            server.close_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._servers)

    @property
    def base_url(self) -> str:
        """The API root, e.g. http://127.0.0.1:PORT (the client appends /api/...)."""
        return self._url(0)

    @property
    def cdn_base_url(self) -> str:
        """The root of the second server, which serves results without a key."""
        return self._url(1)

    def _url(self, index: int) -> str:
        if not self._servers:
            raise RuntimeError("the emulator is not running; call start() or use `with Emulator() as emu:`")
        return f"http://{_url_host(self.host)}:{self._servers[index].server_port}"

    @property
    def stats(self) -> EmulatorStats:
        """The live statistics, brought up to date with `time_source()` first."""
        self._settle()
        return self._stats

    # -- scenario controls -------------------------------------------------------------------

    def expire_all_results(self) -> None:
        """Every result URL handed out so far answers 404 now; queries still say status 2 with the dead URL."""
        with self._lock:
            self._settle_locked(self.time_source())
            for stored in self._results.values():
                stored.dead = True

    def forget_all_tasks(self) -> None:
        """Every task query answers 404 ERROR_RESOURCE_NOT_FOUND from now on (result URLs still work)."""
        with self._lock:
            self._settle_locked(self.time_source())
            self._tasks.clear()
            self._reserved = 0

    def task_ids(self) -> list[str]:
        """The ids of the tasks the emulator still knows, oldest first."""
        with self._lock:
            return list(self._tasks)


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
