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

import base64
import contextlib
import email.message
import email.parser
import email.policy
import io
import json
import re
import secrets
import socket
import socketserver
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

from ..clock import DEFAULT_CLOCK
from .effect import FILTER_COUNT, FORMATS, EncodedResult, encode_result, render, resolve_effect
from .faults import FAILURE_SHAPES, Fault, FaultPlan

SUBMIT_PATH = "/api/portrait/effects/face-beauty-pro"
QUERY_PATH = "/api/common/query-async-task-result"
CREDITS_PATH = "/api/common/query-credits"
RESULTS_PREFIX = "/results/"
KEY_HEADER = "ailabapi-api-key"

CREDITS_PER_TASK = 15
UNLIMITED_BALANCE = 1_000_000  # what query-credits shows when `credits` is None
MAX_IMAGE_BYTES = 2_000_000
MIN_SIDE = 49  # "larger than 48x48"
MAX_SIDE = 4095  # "smaller than 4096x4096"
MAX_BODY_BYTES = 32 * 1024 * 1024
NO_FACE_STD = 2.0

# The API's documented form fields, written out here (not imported from params.py) so the
# emulator checks the client independently.
SLIDER_FIELDS: tuple[str, ...] = (
    "whitening",
    "smoothing",
    "thinface",
    "shrink_face",
    "enlarge_eye",
    "remove_eyebrow",
)
SLIDER_CODES: dict[str, str] = {
    "whitening": "ERROR_INVALID_SKIN_WHITENING_PARAMETER",
    "smoothing": "ERROR_INVALID_SMOOTHING_PARAMETER",
    "thinface": "ERROR_INVALID_FACE_SLIMMING_PARAMETER",
    "enlarge_eye": "ERROR_INVALID_BIG_EYES_PARAMETER",
}
RESULT_LOCATIONS: tuple[str, ...] = (
    "result_url",
    "data.result_url",
    "data.image_url",
    "data.image",
    "data.images",
)
STATUS_LOCATIONS: tuple[str, ...] = ("top", "data")
SYNC_ENCODINGS: tuple[str, ...] = ("base64", "data_uri")

_STATUS_OF_CODES: dict[int, tuple[str, ...]] = {
    400: (
        "ERROR_PARAMETERS",
        "MISSING_PARAMETERS",
        "ERROR_INVALID_PARAMETER",
        "PARAMETERS_CANNOT_EMPTY",
        "UNSUPPORTED_PARAMETER_VALUES",
        "ERROR_INVALID_PARAMETER_FORMAT",
        "ERROR_PARAMETER_CONVERSION_FAILED",
        "ERROR_INVALID_BIG_EYES_PARAMETER",
        "ERROR_INVALID_FACE_SLIMMING_PARAMETER",
        "ERROR_INVALID_SMOOTHING_PARAMETER",
        "ERROR_INVALID_SKIN_WHITENING_PARAMETER",
    ),
    401: ("ERROR_USER_NOT_EXISTS", "ERROR_APPLICATIONS_NOT_EXISTS"),
    403: ("ERROR_USER_LOCKED", "ERROR_ILLEGAL_OPERATION"),
    404: (
        "ERROR_AI_NOT_EXISTS",
        "ERROR_RESOURCE_NOT_FOUND",
        "ERROR_CONTENT_NOT_FOUND",
        "ERROR_FILE_NOT_FOUND",
    ),
    410: ("ERROR_RESOURCE_RECLAIMED", "ERROR_TASK_REVOKED"),
    413: (
        "FILE_SIZE_EXCEEDS_LIMIT",
        "FILE_RESOLUTION_EXCEEDS_LIMITS",
        "ERROR_HIGH_RESOLUTION",
        "ERROR_REQUEST_BODY_TOO_LARGE",
    ),
    415: ("UNSUPPORTED_FILE_TYPES", "ERROR_UNSUPPORTED_GRAYSCALE_IMAGE"),
    422: (
        "FILE_DECODING_FAILURE",
        "ERROR_INVALID_FILE",
        "ERROR_ILLEGAL_FILE",
        "ERROR_LOW_RESOLUTION",
        "ERROR_NO_FACE_IN_FILE",
        "ERROR_FACE_COUNT_INVALID",
        "ERROR_SMALL_FACE_SIZE",
        "ERROR_FACE_SIZE_RATIO_NOT_MET",
        "ERROR_FACE_UNRECOGNIZABLE",
        "ERROR_BLURRY_FACE",
        "ERROR_INCOMPLETE_FACE",
        "ERROR_FACE_NOT_FACING_FORWARD",
        "FILE_CONTENT_NON_COMPLIANCE",
        "ERROR_CONTENT_NON_COMPLIANCE",
    ),
    429: ("ERROR_NOT_ENOUGH_CREDITS", "EXCEEDING_LIMITS", "ERROR_BATCH_TASK_LIMIT_EXCEEDED"),
    500: ("PROCESSING_FAILURE", "UNKNOWN_ERROR", "SERVICE_INTERNAL_ERROR"),
    502: (
        "AI_SERVICE_ERROR",
        "AI_SERVICE_INTERNAL_ERROR",
        "ERROR_GATEWAY",
        "FILE_SERVICE_ERROR",
        "ERROR_FILE_UPLOAD_FAILED",
        "ERROR_FILE_DOWNLOAD_FAILED",
        "ERROR_DATA_TRANSFER_FAILED",
        "AI_SERVICE_UNAUTHORIZED",
        "AI_SERVICE_NOT_FOUND",
    ),
    503: ("AI_SERVICE_FLOW_RESTRICTION", "ERROR_INSUFFICIENT_RESOURCES", "ERROR_RESOURCE_UNAVAILABLE"),
    504: ("AI_SERVICE_TIMEOUT", "ERROR_FILE_DOWNLOAD_TIMEOUT"),
}
# error_detail.code -> HTTP status, as in the vendor's table since 2026-01-08
CODE_STATUS: dict[str, int] = {code: status for status, codes in _STATUS_OF_CODES.items() for code in codes}

_CODE_MESSAGES: dict[str, str] = {
    "ERROR_USER_NOT_EXISTS": "User does not exist.",
    "ERROR_APPLICATIONS_NOT_EXISTS": "Application does not exist.",
    "ERROR_AI_NOT_EXISTS": "The API does not exist or has been deactivated.",
    "ERROR_NO_FACE_IN_FILE": "No face detected in the file.",
    "ERROR_NOT_ENOUGH_CREDITS": "Insufficient credits.",
    "EXCEEDING_LIMITS": "Exceeds limit.",
    "AI_SERVICE_FLOW_RESTRICTION": "AI service is rate-limited.",
    "FILE_SIZE_EXCEEDS_LIMIT": "File size exceeds the limit.",
    "FILE_RESOLUTION_EXCEEDS_LIMITS": "File resolution exceeds the limit.",
    "UNSUPPORTED_FILE_TYPES": "Unsupported file type.",
    "FILE_DECODING_FAILURE": "File decoding failed.",
    "ERROR_LOW_RESOLUTION": "The image resolution is too low.",
    "PROCESSING_FAILURE": "Processing failed.",
}


def code_message(code: str) -> str:
    """The API's short text for `code` (a readable form of the code where the emulator has none)."""
    known = _CODE_MESSAGES.get(code)
    if known:
        return known
    words = code.removeprefix("ERROR_").replace("_", " ").lower()
    return words[:1].upper() + words[1:] + "."


def status_of(code: str, default: int = 500) -> int:
    """HTTP status the API uses for `code`."""
    return CODE_STATUS.get(code, default)


def _ids() -> dict[str, str]:
    return {"request_id": str(uuid.uuid4()), "log_id": secrets.token_hex(16)}


def success_fields() -> dict[str, Any]:
    """The public response fields of a successful answer."""
    return {
        **_ids(),
        "error_code": 0,
        "error_code_str": "",
        "error_msg": "",
        "error_detail": {"status_code": 200, "code": "", "code_message": "", "message": ""},
    }


def error_fields(code: str, message: str, status: int | None = None) -> dict[str, Any]:
    """The public response fields of an error answer: every legacy and current field is filled."""
    status = status_of(code) if status is None else status
    text = code_message(code)
    return {
        **_ids(),
        "error_code": status,
        "error_code_str": code,
        "error_msg": f"{text} - {message}" if message else text,
        "error_detail": {"status_code": status, "code": code, "code_message": text, "message": message},
    }


# -- answers -----------------------------------------------------------------------------------


@dataclass
class Answer:
    """An HTTP answer before it is (maybe) mangled by a fault and sent."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Answer:
    """An answer with a JSON body."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Answer(status, body, headers=dict(headers or {}))


def error_answer(code: str, message: str, status: int | None = None) -> Answer:
    """An API error answer whose HTTP status equals its `error_code`."""
    payload = error_fields(code, message, status)
    return json_answer(payload["error_code"], payload)


class Refusal(Exception):
    """Raised while validating a request; becomes an error answer."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def answer(self) -> Answer:
        return error_answer(self.code, self.message, self.status)


# -- statistics --------------------------------------------------------------------------------


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


# -- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePart:
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class SubmitRequest:
    """A parsed submit: the text fields (first value of each name) and the `image` part."""

    fields: dict[str, str]
    image: ImagePart | None
    part_names: tuple[str, ...]


def parse_multipart(content_type: str, body: bytes) -> SubmitRequest:
    """Parse a multipart/form-data body (the `cgi` module is gone in 3.13).

    Parts are split on the boundary by hand and only their small header blocks go through the
    email package: parsing a whole upload with it costs ~40 ms per MB of CPU, which on a
    2-core machine would be charged to the client in the benchmarks.
    """
    if not content_type.lower().startswith("multipart/form-data"):
        return SubmitRequest({}, None, ())
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return SubmitRequest({}, None, ())
    values: dict[str, str] = {}
    image: ImagePart | None = None
    names: list[str] = []
    # Every delimiter but the first follows a CRLF; prefixing one makes them all alike.
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter
            break
        head, separator, payload = chunk.partition(b"\r\n\r\n")
        if not separator:
            continue
        part = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(
            head.lstrip(b"\r\n") + b"\r\n\r\n"
        )
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        names.append(name)
        if name == "image":
            if image is None:
                image = ImagePart(part.get_filename(), part.get("Content-Type"), payload)
        elif name not in values:
            values[name] = payload.decode("utf-8", "replace")
    return SubmitRequest(values, image, tuple(names))


def _check_slider(name: str, raw: str | None) -> int:
    if raw is None:
        return 50
    if re.fullmatch(r"[0-9]{1,3}", raw) and int(raw) <= 100:
        return int(raw)
    code = SLIDER_CODES.get(name, "ERROR_INVALID_PARAMETER")
    raise Refusal(code, f"{name} must be an integer from 0 to 100, got {raw!r}")


def _check_filter(raw: str | None) -> int | None:
    if raw is None:
        return None
    if re.fullmatch(r"[0-9]{1,2}", raw) and 1 <= int(raw) <= FILTER_COUNT:
        return int(raw)
    raise Refusal(
        "UNSUPPORTED_PARAMETER_VALUES", f"filter_type must be one of 1..{FILTER_COUNT}, got {raw!r}"
    )


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    return None


def _other_format(data: bytes) -> str | None:
    """Format name Pillow gives bytes that are not JPEG/PNG, or None if nothing recognises them."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format or "unknown"
    except Exception:
        return None


def decode_upload(data: bytes) -> np.ndarray:
    """Check an uploaded image as the API does (size, type, decoding, resolution, face) and decode it."""
    if len(data) > MAX_IMAGE_BYTES:
        raise Refusal(
            "FILE_SIZE_EXCEEDS_LIMIT",
            f"image is {len(data)} bytes; the limit is 2 MB (read as {MAX_IMAGE_BYTES} bytes)",
        )
    if _sniff(data) is None:
        other = _other_format(data)
        if other is not None:
            raise Refusal("UNSUPPORTED_FILE_TYPES", f"image format {other} is not supported; use JPEG or PNG")
        raise Refusal("FILE_DECODING_FAILURE", "image bytes are not a recognisable image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_resolution(*image.size)
            image.load()
            rgb = np.asarray(image.convert("RGB"))
    except Refusal:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... on broken files
        raise Refusal("FILE_DECODING_FAILURE", f"image could not be decoded ({type(exc).__name__})") from None
    if float(rgb[::4, ::4].std()) < NO_FACE_STD:
        raise Refusal("ERROR_NO_FACE_IN_FILE", "pic not has face")
    return rgb


def _check_resolution(width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise Refusal(
            "ERROR_LOW_RESOLUTION", f"image is {width}x{height}; each side must be larger than 48 px"
        )
    if max(width, height) > MAX_SIDE:
        raise Refusal(
            "FILE_RESOLUTION_EXCEEDS_LIMITS",
            f"image is {width}x{height}; each side must be smaller than 4096 px",
        )


@dataclass(frozen=True)
class ValidSubmit:
    task_type: str
    sliders: dict[str, int]
    filter_type: int | None
    rgb: np.ndarray


def validate_submit(request: SubmitRequest) -> ValidSubmit:
    """Every documented check of a submit, in the emulator's order; raises Refusal."""
    task_type = request.fields.get("task_type", "sync")
    if task_type not in ("async", "sync"):
        raise Refusal(
            "UNSUPPORTED_PARAMETER_VALUES", f"task_type must be 'async' or 'sync', got {task_type!r}"
        )
    if request.image is None or not request.image.data:
        raise Refusal("MISSING_PARAMETERS", "image is required (a multipart file part named 'image')")
    sliders = {name: _check_slider(name, request.fields.get(name)) for name in SLIDER_FIELDS}
    filter_type = _check_filter(request.fields.get("filter_type"))
    rgb = decode_upload(request.image.data)
    return ValidSubmit(task_type, sliders, filter_type, rgb)


# -- tasks -------------------------------------------------------------------------------------


@dataclass
class _Task:
    task_id: str
    queued_until: float
    done_at: float
    expires_at: float
    result: EncodedResult | None
    failure: Fault | None
    shape: str
    url_base: str
    settled: bool = False
    url: str = ""


@dataclass
class _Stored:
    result: EncodedResult
    expires_at: float
    dead: bool = False


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


class Emulator:
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
        self._tasks: dict[str, _Task] = {}
        self._results: dict[str, _Stored] = {}
        self._reserved = 0
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind both servers and serve them from daemon threads; returns self."""
        if self._servers:
            return self
        api = _Server((self.host, self.port), _ApiHandler, self)
        try:
            cdn = _Server((self.host, self.cdn_port), _CdnHandler, self)
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
    def faults(self) -> FaultPlan:
        return self._faults

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

    # -- endpoint logic (called from handler threads) ----------------------------------------

    def _key_matches(self, value: str | None) -> bool | None:
        if value is None:
            return None
        if self.api_key is None:
            return bool(value.strip())
        return secrets.compare_digest(value.encode("utf-8", "replace"), self.api_key.encode("utf-8"))

    def check_key(self, value: str | None) -> None:
        """Refuse a request without the right `ailabapi-api-key` header."""
        if value is None or not value.strip():
            raise Refusal("ERROR_APPLICATIONS_NOT_EXISTS", f"missing request header {KEY_HEADER}")
        if not self._key_matches(value):
            raise Refusal("ERROR_USER_NOT_EXISTS", "the API key is not valid")

    def handle_submit(
        self, key: str | None, request: SubmitRequest, *, received_at: float | None = None
    ) -> Answer:
        """Validate, then answer a sync result or create a task timed from `received_at` (default: now)."""
        self.check_key(key)
        valid = validate_submit(request)
        self._reserve_credits()
        try:
            failure = self._faults.take("fail_task", "task")
            if valid.task_type == "sync":
                return self._finish_sync(valid, failure)
            return self._create_task(valid, failure, received_at)
        except BaseException:
            self._release_reservation()
            raise

    def _reserve_credits(self) -> None:
        with self._lock:
            self._settle_locked(self.time_source())
            if (
                self.credits is not None
                and self.credits - self._reserved * CREDITS_PER_TASK < CREDITS_PER_TASK
            ):
                raise Refusal(
                    "ERROR_NOT_ENOUGH_CREDITS",
                    f"a Face Beauty Pro request needs {CREDITS_PER_TASK} credits; balance {self.credits}",
                )
            self._reserved += 1

    def _release_reservation(self) -> None:
        with self._lock:
            self._reserved = max(0, self._reserved - 1)

    def _bill_locked(self) -> None:
        self._reserved = max(0, self._reserved - 1)
        if self.credits is not None:
            self.credits = max(0, self.credits - CREDITS_PER_TASK)
        self._stats.bump(credits_billed=CREDITS_PER_TASK)

    def _render(self, valid: ValidSubmit) -> EncodedResult:
        rgb = render(valid.rgb, valid.sliders, valid.filter_type, self.effect)
        return encode_result(rgb, self.result_format, self.result_scale)

    def _finish_sync(self, valid: ValidSubmit, failure: Fault | None) -> Answer:
        if failure is not None:
            self._release_reservation()
            self._stats.bump(sync_failed=1)
            return error_answer(failure.code, "the image could not be processed")
        result = self._render(valid)
        encoded = base64.b64encode(result.data).decode("ascii")
        if self.sync_result_encoding == "data_uri":
            encoded = f"data:{result.mime_type};base64,{encoded}"
        with self._lock:
            self._bill_locked()
        self._stats.bump(sync_completed=1)
        return json_answer(200, {**success_fields(), "task_type": "sync", "result": encoded})

    def _create_task(self, valid: ValidSubmit, failure: Fault | None, received_at: float | None) -> Answer:
        result = None if failure is not None else self._render(valid)
        now = self.time_source()
        queued_until = (now if received_at is None else received_at) + max(0.0, float(self.queued_seconds))
        done_at = queued_until + max(0.0, float(self.processing_seconds))
        task = _Task(
            task_id=uuid.uuid4().hex,
            queued_until=queued_until,
            done_at=done_at,
            expires_at=done_at + float(self.result_ttl_seconds),
            result=result,
            failure=failure,
            shape=(failure.shape if failure and failure.shape else self.failure_shape),
            url_base=self.cdn_base_url,
        )
        with self._lock:
            self._tasks[task.task_id] = task
            self._settle_locked(now)
        self._stats.bump(tasks_created=1)
        return json_answer(200, {**success_fields(), "task_type": "async", "task_id": task.task_id})

    def _settle(self) -> None:
        with self._lock:
            self._settle_locked(self.time_source())

    def _settle_locked(self, now: float) -> None:
        """Finish tasks whose time has come (bill, publish results) and drop expired ones."""
        for task_id, task in list(self._tasks.items()):
            if not task.settled and now >= task.done_at:
                self._finish_task_locked(task)
            if task.settled and now >= task.expires_at:
                del self._tasks[task_id]
        for token, stored in list(self._results.items()):
            if now >= stored.expires_at:
                del self._results[token]

    def _finish_task_locked(self, task: _Task) -> None:
        task.settled = True
        if task.failure is not None or task.result is None:
            self._reserved = max(0, self._reserved - 1)
            self._stats.bump(tasks_failed=1)
            return
        token = secrets.token_urlsafe(24)
        self._results[token] = _Stored(task.result, task.expires_at)
        task.url = f"{task.url_base}{RESULTS_PREFIX}{token}.{task.result.extension}"
        self._bill_locked()
        self._stats.bump(tasks_completed=1)

    def handle_query(self, key: str | None, query: str) -> Answer:
        self.check_key(key)
        task_id = (parse_qs(query).get("task_id") or [""])[0]
        if not task_id:
            raise Refusal("MISSING_PARAMETERS", "task_id is required")
        now = self.time_source()
        with self._lock:
            self._settle_locked(now)
            task = self._tasks.get(task_id)
            if task is None:
                raise Refusal("ERROR_RESOURCE_NOT_FOUND", f"task {task_id} does not exist or has expired")
            if not task.settled:
                return json_answer(200, self._status_body(0 if now < task.queued_until else 1, ""))
            if task.failure is None:
                return json_answer(200, self._status_body(2, task.url))
            return self._failure_answer(task)

    def _status_body(self, status: int, url: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        body = success_fields()
        body.update(extra or {})
        if self.status_location == "top":
            body["task_status"] = status
        else:
            body.setdefault("data", {})["task_status"] = status
        if self.result_location == "result_url":
            body["result_url"] = url
        elif url:
            name = self.result_location.split(".", 1)[1]
            body.setdefault("data", {})[name] = [url] if name == "images" else url
        return body

    def _failure_answer(self, task: _Task) -> Answer:
        code = task.failure.code if task.failure else "PROCESSING_FAILURE"
        message = "the task failed while processing"
        if task.shape == "http_error":
            return error_answer(code, message)
        extra = error_fields(code, message) if task.shape == "status3" else None
        return json_answer(200, self._status_body(3, "", extra))

    def handle_credits(self, key: str | None) -> Answer:
        self.check_key(key)
        with self._lock:
            self._settle_locked(self.time_source())
            billed = self._stats.credits_billed
            balance = self.credits if self.credits is not None else max(0, UNLIMITED_BALANCE - billed)
        pools = [
            _credit_pool("common", "Universal credits", balance, balance + billed),
            _credit_pool("portrait_facial_beautification_pro", "Face Beauty Pro", 0, 0),
        ]
        return json_answer(200, {**success_fields(), "data": pools})

    def handle_download(self, path: str) -> Answer:
        match = re.fullmatch(r"/results/([A-Za-z0-9_-]+)\.(png|jpg|webp)", path)
        if match is None:
            return _cdn_not_found()
        token, extension = match.groups()
        now = self.time_source()
        with self._lock:
            self._settle_locked(now)
            stored = self._results.get(token)
        if stored is None or stored.dead or now >= stored.expires_at or stored.result.extension != extension:
            return _cdn_not_found()
        headers = {"Cache-Control": "max-age=86400", "ETag": f'"{token}"'}
        return Answer(200, stored.result.data, stored.result.mime_type, headers)


def _credit_pool(sign: str, name: str, balance: int, total: int) -> dict[str, Any]:
    return {
        "unique_sign": sign,
        "name": name,
        "balance": balance,
        "total": total,
        "last_recharge_balance": total,
        "balance_warning": 0,
        "first_buy_time": "2026-01-01 00:00:00",
        "last_update_time": "2026-01-01 00:00:00",
    }


def _cdn_not_found() -> Answer:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>\n"
    )
    return Answer(404, body.encode("utf-8"), "application/xml")


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


# -- HTTP plumbing -----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that knows its emulator and can close its open connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], emulator: Emulator):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return  # the client went away (timeouts, dropped connections): nothing to report
        super().handle_error(request, client_address)


class _BodyTooLarge(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    """Shared plumbing: body reading, fault application, answer writing."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    server: _Server

    @property
    def emulator(self) -> Emulator:
        return self.server.emulator

    def log_message(self, format: str, *args: Any) -> None:
        if self.emulator.log is not None:
            self.emulator.log(f"{self.address_string()} {format % args}")

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            raise _BodyTooLarge
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(100).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1000) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyTooLarge
            chunks.append(self.rfile.read(size))
            self.rfile.readline(10)

    def respond(self, endpoint: str, process: Callable[[], Answer]) -> None:
        """Apply the armed faults around `process` (see FaultPlan) and send what is left."""
        plan = self.emulator.faults
        slow = plan.take("slow", endpoint)
        delay = slow.seconds if slow else 0.0
        drop = plan.take("drop", endpoint)
        if drop is not None and not drop.after_processing:
            self._pause(delay)
            self.close_connection = True
            return
        answer = self.early_fault(endpoint) or self._safely(process)
        if drop is not None:
            self._pause(delay)
            if endpoint == "submit":
                self.close_connection = True
            else:
                self.send_answer(answer, partial=True)
            return
        if plan.take("malformed", endpoint) is not None:
            answer = Answer(200, answer.body[: len(answer.body) // 2], answer.content_type)
        self._pause(delay)
        self.send_answer(answer)

    def early_fault(self, endpoint: str) -> Answer | None:
        """A rate-limit or server-error fault answered before any processing."""
        plan = self.emulator.faults
        fault = plan.take("rate_limit", endpoint) if endpoint == "submit" else None
        fault = fault or plan.take("server_error", endpoint)
        if fault is None:
            return None
        answer = self.fault_answer(fault)
        if fault.retry_after is not None:
            answer.headers["Retry-After"] = f"{fault.retry_after:g}"
        return answer

    def fault_answer(self, fault: Fault) -> Answer:
        return error_answer(fault.code, "injected by the emulator", fault.status)

    def _safely(self, process: Callable[[], Answer]) -> Answer:
        try:
            return process()
        except Refusal as refusal:
            return refusal.answer()
        except Exception:
            traceback.print_exc()
            return error_answer("SERVICE_INTERNAL_ERROR", "emulator bug; see its stderr")

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            DEFAULT_CLOCK.sleep(seconds)

    def send_answer(self, answer: Answer, *, partial: bool = False) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if partial or self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer.body[: len(answer.body) // 2] if partial else answer.body)
        if partial:
            self.wfile.flush()
            self.close_connection = True

    def recorded_headers(self) -> tuple[dict[str, str], bool | None]:
        """Request headers with lower-cased names and the key value replaced by whether it matched."""
        headers = {name.lower(): value for name, value in self.headers.items()}
        matched = self.emulator._key_matches(headers.get(KEY_HEADER))
        if matched is not None:
            headers[KEY_HEADER] = "<matched>" if matched else "<not matched>"
        return headers, matched

    def body_or_refuse(self) -> bytes | None:
        """The request body, or None after answering 413 to a body over MAX_BODY_BYTES."""
        try:
            return self.read_body()
        except _BodyTooLarge:
            self.close_connection = True
            self.send_answer(error_answer("ERROR_REQUEST_BODY_TOO_LARGE", "request body too large"))
            return None
        except ValueError:
            self.close_connection = True
            self.send_answer(error_answer("ERROR_PARAMETERS", "malformed chunked body"))
            return None


class _ApiHandler(_Handler):
    server_version = "FaceBeautyProEmulator/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        body = self.body_or_refuse()
        if body is None:
            return
        url = urlsplit(self.path)
        key = self.headers.get(KEY_HEADER)
        emulator = self.emulator
        if (method, url.path) == ("POST", SUBMIT_PATH):
            # The task's clock starts once the upload is in: the emulator's own decoding and
            # rendering (CPU shared with the client on a small machine) must not add to T.
            received_at = emulator.time_source()
            request = self._record_submit(body)
            self.respond("submit", lambda: emulator.handle_submit(key, request, received_at=received_at))
        elif (method, url.path) == ("GET", QUERY_PATH):
            emulator._stats.bump(queries=1)
            self.respond("query", lambda: emulator.handle_query(key, url.query))
        elif (method, url.path) == ("GET", CREDITS_PATH):
            emulator._stats.bump(credit_queries=1)
            self.respond("credits", lambda: emulator.handle_credits(key))
        else:
            self.send_answer(error_answer("ERROR_AI_NOT_EXISTS", f"no API at {method} {url.path}"))

    def _record_submit(self, body: bytes) -> SubmitRequest:
        content_type = self.headers.get("Content-Type", "")
        try:
            request = parse_multipart(content_type, body)
        except Exception:
            request = SubmitRequest({}, None, ())
        headers, matched = self.recorded_headers()
        image = request.image
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "key_matched": matched,
            "content_type": content_type,
            "fields": dict(request.fields),
            "part_names": list(request.part_names),
            "image_filename": image.filename if image else None,
            "image_content_type": image.content_type if image else None,
            "image_size": len(image.data) if image else None,
        }
        self.emulator._stats.bump(submits_received=1)
        self.emulator._stats.append("submit_log", entry)
        return request


class _CdnHandler(_Handler):
    server_version = "EmulatorCDN/1.0"

    def do_GET(self) -> None:
        if self.body_or_refuse() is None:
            return
        headers, _ = self.recorded_headers()
        stats = self.emulator._stats
        stats.bump(downloads=1)
        stats.append("cdn_request_headers", headers)
        path = urlsplit(self.path).path
        self.respond("download", lambda: self.emulator.handle_download(path))

    def fault_answer(self, fault: Fault) -> Answer:
        text = f"{fault.status} injected CDN error ({fault.code})\n"
        return Answer(fault.status, text.encode("utf-8"), "text/plain; charset=utf-8")
