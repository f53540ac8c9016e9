"""One exception hierarchy for everything the package raises, and the table that classifies API codes.

Every message says what went wrong and what to do about it. No message ever contains the
API key: exceptions are built from API answers and our own text, never from request headers.

Classification is by `error_detail.code`, not by HTTP status alone: the vendor moved codes
between statuses on 2026-01-08 (see shared/api/contract.md section 2), and 429 means both
"slow down" (retry) and "out of credits" (never retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class BeautyError(Exception):
    """Base class of every error raised by beauty_api."""


class ConfigurationError(BeautyError):
    """The client is not set up: no API key, a malformed base URL or config file."""


class InvalidParameterError(BeautyError, ValueError):
    """A beauty parameter is out of range or of the wrong type (caught before any request)."""


class ImageError(BeautyError, ValueError):
    """An input or result image cannot be used: too small, NaN, undecodable, too large to decode."""


class RetouchCancelled(BeautyError):
    """The caller asked to stop (e.g. Cancel in ComfyUI) while a request or a wait was under way."""


class DeadlineExceeded(BeautyError, TimeoutError):
    """The overall deadline passed before the task finished. The task may still finish remotely."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class TransportError(BeautyError):
    """The API could not be reached, or the connection broke, and retries did not help.

    `reason` is the cause in a few secret-free words ("connection refused", "read timeout"), for
    displays: the requests exception itself is never kept (it holds the request's headers).
    """

    reason: str = ""


class SubmitOutcomeUnknown(TransportError):
    """The submit was sent but no answer came back, so a paid task may exist.

    It is not retried automatically: a blind resubmit could create a second paid task.
    """


class LedgerUnavailable(BeautyError):
    """The task journal cannot be read or written, so nothing was sent: the ledger fails closed.

    The message is one line naming the file and the one action that fixes it; a request the
    ledger might know is never sent while it cannot be asked.
    """

    transient: bool = False  # True while another process holds the lock: worth waiting for

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class ResumeFailed(BeautyError):
    """A task paid earlier could not be resumed, and whether it still can be is unknown.

    The message names the one command that forgets the task (`python -m beauty_api journal
    forget TASK_ID`), for when the address that made it is gone for good.
    """

    def __init__(self, message: str, *, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id


class NotSent(BeautyError):
    """An image of a batch that was never sent: the batch stopped at an error no image could escape."""


class BatchFailed(BeautyError):
    """Some images of a batch failed; the others succeeded and their paid results are kept (cached).

    `failures` is a list of `(index, exception)` pairs, in batch order. Images that failed with
    the same message share one line (a refused key is said once, not once per image).
    """

    def __init__(self, failures: list[tuple[int, BaseException]], total: int) -> None:
        self.failures = failures
        self.total = total
        lines = [
            f"{len(failures)} of {total} image(s) failed; the others were kept and a re-run pays only for these:"
        ]
        lines += [
            f"  {name_images(indices, offset=1)}: {text}"
            for text, indices in group_by_message(failures).items()
        ]
        super().__init__("\n".join(lines))


def group_by_message(failures: list[tuple[int, BaseException]]) -> dict[str, list[int]]:
    """Failed image indices by problem, in order of first appearance, keyed by the first one's text.

    API errors with the same code and message are one problem although each answer has its own
    request_id (the first one's ids are shown, for support).
    """
    texts: dict[object, str] = {}
    groups: dict[str, list[int]] = {}
    for index, error in failures:
        text = texts.setdefault(_problem(error), str(error))
        groups.setdefault(text, []).append(index)
    return groups


def _problem(error: BaseException) -> object:
    if isinstance(error, ApiError) and not isinstance(error, TaskFailedError):
        return (type(error), error.code, error.http_status, error.api_message, error.operation)
    return str(error)


def name_images(indices: list[int], offset: int = 0) -> str:
    """'image 3' or 'images 3, 4, 5' (`offset` 1 for people counting from 1)."""
    numbers = [str(index + offset) for index in indices]
    if len(numbers) == 1:
        return f"image {numbers[0]}"
    shown = ", ".join(numbers[:10]) + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")
    return f"images {shown}"


class ProtocolError(BeautyError):
    """The API answered with something this client cannot read (bad JSON, unknown task status)."""


class ResultDownloadError(BeautyError):
    """The result image could not be downloaded (expired URL, over the size cap, network failure)."""


class ResultExpired(ResultDownloadError):
    """The result host answered 403/404/410: the URL expired (results live 24 h) or is invalid.

    Only this case makes a recorded task worth submitting again; any other download failure
    keeps the task so a re-run can try the download once more without paying.
    """


@dataclass(frozen=True)
class CodeInfo:
    """What an `error_detail.code` means for the caller."""

    category: str  # auth | credits | rate_limit | parameters | image | face | content | not_found | server
    retryable: bool
    advice: str


_AUTH = CodeInfo(
    "auth",
    False,
    "Check the API key: set AILAB_API_KEY to a valid key from https://www.ailabtools.com (Personal Center).",
)
_LOCKED = CodeInfo(
    "auth", False, "The account is locked or the call is not allowed; contact AILabTools support."
)
_CREDITS = CodeInfo(
    "credits",
    False,
    "Your AILabTools account is out of credits; top up at https://www.ailabtools.com, then re-run.",
)
_RATE = CodeInfo("rate_limit", True, "The API is rate-limiting this account; lower the concurrency or wait.")
_PARAMS = CodeInfo(
    "parameters", False, "A request parameter was refused; check the beauty settings (0..100)."
)
_IMAGE = CodeInfo(
    "image", False, "The image was refused; use a JPEG or PNG photo under 2 MB, each side 49..4095 px."
)
_FACE = CodeInfo(
    "face", False, "The API found no usable face; use a photo with one clear, frontal, well-lit face."
)
_CONTENT = CodeInfo("content", False, "The image failed the API's content review; use another photo.")
_NOT_FOUND = CodeInfo(
    "not_found",
    False,
    "The task or resource no longer exists (results live 24 hours); submit the image again.",
)
_SERVER = CodeInfo("server", True, "The API had a temporary problem; try again in a moment.")

CODE_TABLE: dict[str, CodeInfo] = {
    **dict.fromkeys(["ERROR_USER_NOT_EXISTS", "ERROR_APPLICATIONS_NOT_EXISTS"], _AUTH),
    **dict.fromkeys(["ERROR_USER_LOCKED", "ERROR_ILLEGAL_OPERATION"], _LOCKED),
    "ERROR_NOT_ENOUGH_CREDITS": _CREDITS,
    **dict.fromkeys(
        ["EXCEEDING_LIMITS", "ERROR_BATCH_TASK_LIMIT_EXCEEDED", "AI_SERVICE_FLOW_RESTRICTION"], _RATE
    ),
    **dict.fromkeys(
        [
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
        ],
        _PARAMS,
    ),
    **dict.fromkeys(
        [
            "FILE_SIZE_EXCEEDS_LIMIT",
            "FILE_RESOLUTION_EXCEEDS_LIMITS",
            "ERROR_HIGH_RESOLUTION",
            "ERROR_REQUEST_BODY_TOO_LARGE",
            "UNSUPPORTED_FILE_TYPES",
            "ERROR_UNSUPPORTED_GRAYSCALE_IMAGE",
            "FILE_DECODING_FAILURE",
            "ERROR_INVALID_FILE",
            "ERROR_ILLEGAL_FILE",
            "ERROR_LOW_RESOLUTION",
        ],
        _IMAGE,
    ),
    **dict.fromkeys(
        [
            "ERROR_NO_FACE_IN_FILE",
            "ERROR_FACE_COUNT_INVALID",
            "ERROR_SMALL_FACE_SIZE",
            "ERROR_FACE_SIZE_RATIO_NOT_MET",
            "ERROR_FACE_UNRECOGNIZABLE",
            "ERROR_BLURRY_FACE",
            "ERROR_INCOMPLETE_FACE",
            "ERROR_FACE_NOT_FACING_FORWARD",
        ],
        _FACE,
    ),
    **dict.fromkeys(["FILE_CONTENT_NON_COMPLIANCE", "ERROR_CONTENT_NON_COMPLIANCE"], _CONTENT),
    **dict.fromkeys(
        [
            "ERROR_AI_NOT_EXISTS",
            "ERROR_RESOURCE_NOT_FOUND",
            "ERROR_CONTENT_NOT_FOUND",
            "ERROR_FILE_NOT_FOUND",
            "ERROR_RESOURCE_RECLAIMED",
            "ERROR_TASK_REVOKED",
        ],
        _NOT_FOUND,
    ),
    **dict.fromkeys(
        [
            "PROCESSING_FAILURE",
            "UNKNOWN_ERROR",
            "SERVICE_INTERNAL_ERROR",
            "AI_SERVICE_ERROR",
            "AI_SERVICE_INTERNAL_ERROR",
            "ERROR_GATEWAY",
            "FILE_SERVICE_ERROR",
            "ERROR_FILE_UPLOAD_FAILED",
            "ERROR_FILE_DOWNLOAD_FAILED",
            "ERROR_DATA_TRANSFER_FAILED",
            "AI_SERVICE_UNAUTHORIZED",
            "AI_SERVICE_NOT_FOUND",
            "ERROR_INSUFFICIENT_RESOURCES",
            "ERROR_RESOURCE_UNAVAILABLE",
            "AI_SERVICE_TIMEOUT",
            "ERROR_FILE_DOWNLOAD_TIMEOUT",
        ],
        _SERVER,
    ),
}

# Categories no image of a batch can escape (the key is refused, the account has no credits or is
# locked): the batch stops at the first one instead of paying the same refusal for every image.
ACCOUNT_CATEGORIES = frozenset({"auth", "credits"})


def is_account_error(error: BaseException) -> bool:
    """True for an API refusal of the account itself, which every other image would get too."""
    return isinstance(error, ApiError) and error.category in ACCOUNT_CATEGORIES


# Codes that mean "slow down": the adaptive concurrency limiter listens for these.
RATE_LIMIT_CODES = frozenset(code for code, info in CODE_TABLE.items() if info.category == "rate_limit")


def classify(code: str, http_status: int) -> CodeInfo:
    """Meaning of an error code; unknown codes fall back on the HTTP status class."""
    info = CODE_TABLE.get(code)
    if info is not None:
        return info
    if http_status in (401, 403):
        return _AUTH
    if http_status in (404, 410):
        return _NOT_FOUND
    if http_status in (408, 500, 502, 503, 504):
        return _SERVER
    if http_status == 429:
        return _RATE
    return CodeInfo("unknown", False, "The API refused the request; see the code and message above.")


class ApiError(BeautyError):
    """An error answer from the API, with every field support will ask for.

    `code` is `error_detail.code` (or the legacy `error_code_str`), `api_message` the API's
    own text, `request_id`/`log_id` the identifiers to quote to AILabTools support.
    """

    def __init__(
        self,
        *,
        http_status: int,
        code: str,
        api_message: str,
        request_id: str = "",
        log_id: str = "",
        operation: str = "request",
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.api_message = api_message
        self.request_id = request_id
        self.log_id = log_id
        self.operation = operation
        self.raw = raw or {}
        self.info = classify(code, http_status)
        super().__init__(self._text())

    @property
    def retryable(self) -> bool:
        return self.info.retryable

    @property
    def category(self) -> str:
        return self.info.category

    def _text(self) -> str:
        ids = ", ".join(
            f"{k} {v}" for k, v in (("request_id", self.request_id), ("log_id", self.log_id)) if v
        )
        where = f" [{ids}]" if ids else ""
        code = self.code or "no code"
        message = self.api_message or "no message"
        return f"Face Beauty Pro {self.operation} failed: {code} (HTTP {self.http_status}): {message}. {self.info.advice}{where}"


class TaskFailedError(ApiError):
    """The task was accepted but failed remotely (task_status 3, or an error answer while polling)."""

    def __init__(self, *, task_id: str, **kwargs: Any) -> None:
        self.task_id = task_id
        kwargs.setdefault("operation", f"task {task_id}")
        super().__init__(**kwargs)
