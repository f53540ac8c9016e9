"""The API as the emulator enforces it: addresses, header, limits, fields, and code -> HTTP status."""

from __future__ import annotations

# The one definition of the key header's name (re-exported for the emulator's modules).
from ..api.protocol import KEY_HEADER as KEY_HEADER

SUBMIT_PATH = "/api/portrait/effects/face-beauty-pro"
QUERY_PATH = "/api/common/query-async-task-result"
CREDITS_PATH = "/api/common/query-credits"
RESULTS_PREFIX = "/results/"
TIMELINE_PATH = "/_emulator/tasks"  # not the API's: each task's timeline, for benchmarks (no key)

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

CODE_MESSAGES: dict[str, str] = {
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
