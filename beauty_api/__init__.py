"""Face Beauty Pro: a client for the AILabTools portrait-retouching API, with an offline emulator.

No ComfyUI import anywhere in this package: it is used by the ComfyUI nodes, by scripts and
by the CLI (`python -m beauty_api`).
"""

from .errors import (
    ApiError,
    BatchFailed,
    BeautyError,
    ConfigurationError,
    DeadlineExceeded,
    ImageError,
    InvalidParameterError,
    ProtocolError,
    ResultDownloadError,
    RetouchCancelled,
    SubmitOutcomeUnknown,
    TaskFailedError,
    TransportError,
)
from .params import FILTER_NAMES, SLIDER_NAMES, BeautyParams, resolve_filter
from .version import VERSION

__version__ = VERSION

__all__ = [
    "FILTER_NAMES",
    "SLIDER_NAMES",
    "ApiError",
    "BatchFailed",
    "BeautyError",
    "BeautyParams",
    "ConfigurationError",
    "DeadlineExceeded",
    "ImageError",
    "InvalidParameterError",
    "ProtocolError",
    "ResultDownloadError",
    "RetouchCancelled",
    "SubmitOutcomeUnknown",
    "TaskFailedError",
    "TransportError",
    "resolve_filter",
]
