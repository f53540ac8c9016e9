"""The ComfyUI nodes: validate the widgets, call beauty_api, report. No HTTP or image logic here.

Classic V1 node classes (plain classes with INPUT_TYPES), because they load on every current
ComfyUI and can be tested without one. The FUNCTION is `async def`; face_beauty_nodes/runner.py runs
the blocking batch in a thread and keeps the node's display (face_beauty_nodes/status.py) up to date.

The pack's own modules are imported relatively: ComfyUI imports the pack folder as a package
whose name has hyphens and is not on sys.path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .beauty_api.api.client import MODES, ClientSettings
from .beauty_api.errors import InvalidParameterError
from .beauty_api.params import (
    BeautyParams,
)
from .beauty_api.run.api_backend import ApiBackend
from .beauty_api.run.backend import CREDITS_PER_IMAGE, RetouchOptions
from .beauty_api.run.concurrency import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, check_concurrency
from .beauty_api.timeouts import DEFAULT_TIMEOUT, check_timeout
from .beauty_api.timeouts import TIMEOUT_MAX as TIMEOUT_MAX_S
from .beauty_api.timeouts import TIMEOUT_MIN as TIMEOUT_MIN_S
from .face_beauty_nodes import bridge
from .face_beauty_nodes.requeue import INCOMPLETE_RUNS, run_key
from .face_beauty_nodes.runner import FaceBeautyProError, RunPlan, run_retouch
from .face_beauty_nodes.widgets import CATEGORY, retouch_widgets

OPTIONS_TYPE = "FACE_BEAUTY_OPTIONS"
WIDGET_NAMES = tuple(retouch_widgets())  # the six sliders and filter_type, as ComfyUI names them
ON_FAILURE_CHOICES = ("fail", "pass through")
TIMEOUT_MIN, TIMEOUT_MAX, TIMEOUT_DEFAULT = int(TIMEOUT_MIN_S), int(TIMEOUT_MAX_S), int(DEFAULT_TIMEOUT)
# Words people type in the node search. Newer ComfyUI versions send SEARCH_ALIASES to the frontend
# (server.py node_info: "search_aliases"); 0.3.64 searches names only, hence the display
# name "Face Beauty Pro (AILab Retouch)" in __init__.py.
SEARCH_ALIASES = (
    "retouch",
    "portrait",
    "skin",
    "smooth",
    "whiten",
    "slim face",
    "big eyes",
    "filter",
    "ailab",
    "ailabtools",
)


@dataclass(frozen=True)
class FaceBeautyRunOptions:
    """What the Options node outputs; the main node uses these defaults when nothing is connected."""

    timeout_seconds: int = TIMEOUT_DEFAULT
    concurrency: int = DEFAULT_CONCURRENCY
    keep_returned_size: bool = False
    mode: str = "async"
    on_failure: str = "fail"
    use_cache: bool = True

    def __post_init__(self) -> None:
        problems = []
        for check, value in ((check_timeout, self.timeout_seconds), (check_concurrency, self.concurrency)):
            try:
                check(value)
            except InvalidParameterError as error:
                problems.append(str(error).rstrip("."))
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.on_failure not in ON_FAILURE_CHOICES:
            problems.append(f"on_failure {self.on_failure!r} is not one of {', '.join(ON_FAILURE_CHOICES)}")
        if problems:
            raise FaceBeautyProError("Face Beauty Pro Options: " + "; ".join(problems) + ".")

    def retouch_options(self) -> RetouchOptions:
        return RetouchOptions(
            mode=self.mode, keep_returned_size=self.keep_returned_size, use_cache=self.use_cache
        )

    def client_settings(self) -> ClientSettings:
        return ClientSettings(timeout=float(self.timeout_seconds))

    def run_plan(self, on_incomplete: Callable[[], None] | None = None) -> RunPlan:
        """How the runner retouches with these settings: the API backend, built when the node runs.

        `on_incomplete` makes a re-queue retry failed images; only with the cache on, where the
        images that succeeded come back at 0 credits (off, a retry would pay for all again).
        """

        def make_backend() -> ApiBackend:
            return ApiBackend.from_environment(
                settings=self.client_settings(),
                comfy_user_dir=bridge.user_directory(),
                use_cache=self.use_cache,
            )

        return RunPlan(
            make_backend=make_backend,
            retouch_options=self.retouch_options(),
            concurrency=self.concurrency,
            pass_through=self.on_failure != "fail",
            on_incomplete=on_incomplete if self.use_cache else None,
        )


DEFAULT_RUN_OPTIONS = FaceBeautyRunOptions()


class FaceBeautyPro:
    """Face Beauty Pro: retouch every portrait of a batch through the AILabTools API."""

    DESCRIPTION = (
        "Retouches every portrait in the batch with the AILabTools Face Beauty Pro API: skin "
        "whitening and smoothing, face slimming, small face, big eyes and eyebrow removal "
        "(0 = off, 100 = strongest), plus an optional colour filter. "
        f"Paid API: each new image costs {CREDITS_PER_IMAGE} AILabTools credits (about $0.04). "
        "Re-running an unchanged graph costs nothing: ComfyUI reuses the output, and results are "
        "also kept in a local cache; after a run in which images failed (passed through), "
        "queueing again retries just those. The API key comes from the AILAB_API_KEY environment variable "
        "or the pack's config file (see README), never from a widget, so it is never saved in "
        "workflows or image metadata. Cancel stops waiting at once; a re-run resumes a task that "
        "was already paid for."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = SEARCH_ALIASES
    FUNCTION = "retouch"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("image", "report")
    OUTPUT_TOOLTIPS = (
        "The retouched images: same batch size, order, width and height as the input.",
        "Per image: cached / resumed / new, task id and seconds; and the credits this run spent.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, Any]]:
        required: dict[str, Any] = {
            "image": (
                "IMAGE",
                {"tooltip": "Portrait(s) to retouch; every image of the batch is sent (one task each)."},
            )
        }
        required.update(retouch_widgets())
        return {
            "required": required,
            "optional": {
                "options": (
                    OPTIONS_TYPE,
                    {
                        "tooltip": "Less common settings (timeout, concurrency, mode, failure handling, "
                        "cache) from a Face Beauty Pro Options node; defaults when not connected."
                    },
                )
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, unique_id: object = None, **inputs: object) -> int:
        """ComfyUI's cache key part: moves on after a run that left images to retry (requeue.py).

        ComfyUI passes the linked inputs (image, options) as None here, so only the node id and
        the widget values tell one request from another.
        """
        return INCOMPLETE_RUNS.generation(run_key(unique_id, widget_values(inputs)))

    async def retouch(
        self,
        image: Any,
        whitening: int,
        smoothing: int,
        thinface: int,
        shrink_face: int,
        enlarge_eye: int,
        remove_eyebrow: int,
        filter_type: str,
        options: FaceBeautyRunOptions | None = None,
        unique_id: str | None = None,
    ) -> tuple[Any, str]:
        """Retouch the batch; expected failures become one FaceBeautyProError line (see its docstring)."""
        run_options = options if options is not None else DEFAULT_RUN_OPTIONS
        sliders = {
            "whitening": whitening,
            "smoothing": smoothing,
            "thinface": thinface,
            "shrink_face": shrink_face,
            "enlarge_eye": enlarge_eye,
            "remove_eyebrow": remove_eyebrow,
        }
        key = run_key(unique_id, widget_values({**sliders, "filter_type": filter_type}))
        return await run_retouch(
            image,
            lambda: BeautyParams(**sliders, filter_type=filter_type),
            run_options.run_plan(on_incomplete=lambda: INCOMPLETE_RUNS.mark_incomplete(key)),
            node_id=None if unique_id is None else str(unique_id),
        )


def widget_values(inputs: dict[str, object]) -> dict[str, object]:
    """The retouch widgets among a node's inputs (what IS_CHANGED and the run both key on)."""
    return {name: inputs.get(name) for name in WIDGET_NAMES}


class FaceBeautyProOptions:
    """The less common settings, kept off the main node so it stays uncluttered."""

    DESCRIPTION = (
        "Less common settings for Face Beauty Pro: overall timeout per image, how many images are "
        "processed at once, async or sync API mode, what to do when an image fails, and the local "
        "result cache. Connect its output to the 'options' input of Face Beauty Pro."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ("retouch options", "ailab", "timeout", "concurrency")
    FUNCTION = "build"
    RETURN_TYPES = (OPTIONS_TYPE,)
    RETURN_NAMES = ("options",)
    OUTPUT_TOOLTIPS = ("Connect to the 'options' input of a Face Beauty Pro node.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "timeout_seconds": (
                    "INT",
                    {
                        "default": TIMEOUT_DEFAULT,
                        "min": TIMEOUT_MIN,
                        "max": TIMEOUT_MAX,
                        "step": 1,
                        "tooltip": "Longest wait for one image (submit, queue, processing, download). "
                        "A task still running remotely at the deadline is resumed, not paid again, "
                        "on the next run.",
                    },
                ),
                "concurrency": (
                    "INT",
                    {
                        "default": DEFAULT_CONCURRENCY,
                        "min": 1,
                        "max": MAX_CONCURRENCY,
                        "step": 1,
                        "tooltip": "How many images of a batch are in flight at once; lowered "
                        "automatically while the API rate-limits.",
                    },
                ),
                "keep_returned_size": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Keep the size the API returns instead of resizing the result back "
                        "to the input size (a batch needs all results the same size).",
                    },
                ),
                "mode": (
                    list(MODES),
                    {
                        "default": "async",
                        "tooltip": "async: submit a task and poll it (resumable after Cancel or a "
                        "crash). sync: one long request that returns the image (not resumable).",
                    },
                ),
                "on_failure": (
                    list(ON_FAILURE_CHOICES),
                    {
                        "default": "fail",
                        "tooltip": "fail: the node fails, naming every failed image (the others are "
                        "kept in the cache). pass through: failed images come out unchanged and "
                        "the report lists them; queue again to retry just those.",
                    },
                ),
                "use_cache": (
                    "BOOLEAN",
                    {
                        "default": True,
                        "tooltip": "Reuse results of identical requests from the local result cache "
                        "(no credits). Off: always ask the API again.",
                    },
                ),
            }
        }

    def build(
        self,
        timeout_seconds: int,
        concurrency: int,
        keep_returned_size: bool,
        mode: str,
        on_failure: str,
        use_cache: bool,
    ) -> tuple[FaceBeautyRunOptions]:
        """Bundle the settings into one value for the main node's `options` input."""
        return (
            FaceBeautyRunOptions(
                timeout_seconds=int(timeout_seconds),
                concurrency=int(concurrency),
                keep_returned_size=bool(keep_returned_size),
                mode=mode,
                on_failure=on_failure,
                use_cache=bool(use_cache),
            ),
        )
