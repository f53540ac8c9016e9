"""The one interface every retouch engine implements, and what it takes and gives back.

`RetouchBackend` is the seam between the batch (and every front-end: CLI, ComfyUI nodes, Python
callers) and an engine: the paid API (`api_backend.ApiBackend`) or the offline engine
(`local.retouch.backend.LocalBackend`). The batch layer only talks to this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..api.client import MODES
from ..clock import CancelCheck
from ..codec import SourceImage
from ..errors import InvalidParameterError
from ..params import BeautyParams
from .progress_events import ProgressCallback

if TYPE_CHECKING:
    import numpy as np

    from .concurrency import AdaptiveLimiter

CREDITS_PER_IMAGE = 15


@dataclass(frozen=True)
class RetouchOptions:
    """Per-run choices that do not change what the API is asked to do (except `mode`)."""

    mode: str = "async"
    keep_returned_size: bool = False
    use_cache: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidParameterError(f"mode: {self.mode!r} is not one of {', '.join(MODES)}.")


DEFAULT_OPTIONS = RetouchOptions()


@dataclass(frozen=True)
class RetouchOutcome:
    """A retouched image and how it was obtained."""

    image: np.ndarray  # HxWx3 uint8, or HxWx4 when the input had alpha
    origin: str  # "new" (paid this run), "cached" (from disk), "resumed" (a task paid earlier), "local"
    task_id: str | None
    seconds: float
    credits_spent: int
    note: str | None = None  # what a report should add, e.g. the local engine's "no face"


class RetouchBackend(Protocol):
    """Anything that can retouch one image with BeautyParams: the API today, an offline engine later."""

    def retouch(
        self,
        source: SourceImage,
        params: BeautyParams,
        *,
        options: RetouchOptions = ...,
        index: int = 0,
        on_progress: ProgressCallback | None = None,
        check_cancel: CancelCheck | None = None,
        limiter: AdaptiveLimiter | None = None,
    ) -> RetouchOutcome: ...
