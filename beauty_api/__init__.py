"""Face Beauty Pro: a client for the AILabTools portrait-retouching API, its ledger, an emulator and
an offline engine.

No ComfyUI import anywhere in this package: it is used by the ComfyUI nodes, by scripts and by the
CLI (`python -m beauty_api`). The everyday names are importable from here; the heavy ones (numpy,
requests, torch behind them) load on first use, so `import beauty_api` stays cheap:

    from beauty_api import ApiBackend, BeautyParams, load_image_file, retouch_batch, save_image

The subpackages, lowest first (ARCHITECTURE.md has the map): `params`, `errors`, `config`, `clock`
(shared vocabulary); `codec` (images); `api` (the vendor's HTTP API); `ledger` (what was paid and
what it produced); `run` (many images with any backend); `local` (the offline engine); `emulator`;
`cli`.
"""

from . import moved_modules as _moved_modules
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

#: name -> submodule that defines it, imported on first access (PEP 562)
_LAZY = {
    "ApiBackend": "run.api_backend",
    "RetouchBackend": "run.backend",
    "RetouchOptions": "run.backend",
    "RetouchOutcome": "run.backend",
    "BatchResult": "run.batch",
    "Progress": "run.progress_events",
    "retouch_batch": "run.batch",
    "FaceBeautyClient": "api.client",
    "load_image_file": "codec",
    "save_image": "codec",
    "Emulator": "emulator",
    "LocalBackend": "local.retouch.backend",
    "LocalEngine": "local.retouch.engine",
    "load_analyzer": "local.faces.analysis",
    "region_mask": "local.faces.regions",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


_moved_modules.install(__name__)

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
    *_LAZY,
]
