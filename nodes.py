"""The ComfyUI nodes: validate the widgets, call beauty_api, report. No HTTP or image logic here.

Classic V1 node classes (plain classes with INPUT_TYPES), because they load on every current
ComfyUI and can be tested without one. The FUNCTION is `async def`: the blocking batch runs in
a thread (`asyncio.to_thread`) while the event loop keeps other async nodes going and this
coroutine refreshes the progress display twice a second.

The pack's own modules are imported relatively: ComfyUI imports the pack folder as a package
whose name has hyphens and is not on sys.path.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import comfy_bridge
from .beauty_api import codec
from .beauty_api.backend import CREDITS_PER_IMAGE, MODES, ApiBackend, Progress, RetouchOptions
from .beauty_api.batch import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, BatchResult, retouch_batch
from .beauty_api.client import ClientSettings
from .beauty_api.clock import DEFAULT_CLOCK
from .beauty_api.errors import BatchFailed, BeautyError, ConfigurationError, RetouchCancelled
from .beauty_api.params import (
    FILTER_NAMES,
    NO_FILTER,
    SLIDER_DEFAULT,
    SLIDER_DESCRIPTIONS,
    SLIDER_MAX,
    SLIDER_MIN,
    SLIDER_NAMES,
    BeautyParams,
)

log = logging.getLogger("face_beauty_pro")

OPTIONS_TYPE = "FACE_BEAUTY_OPTIONS"
CATEGORY = "image/Face Beauty Pro"
ON_FAILURE_CHOICES = ("fail", "pass through")
TIMEOUT_MIN, TIMEOUT_MAX, TIMEOUT_DEFAULT = 10, 3600, 300
# The progress display is refreshed this often (so at most ~2 text updates a second).
PROGRESS_TICK_SECONDS = 0.5
# How often the node's coroutine looks whether a worker has seen Cancel.
CANCEL_POLL_SECONDS = 0.05
# Stages after which an image no longer counts as "in flight" in the progress text.
_FINISHED_STAGES = frozenset({"cached", "done", "failed"})


class FaceBeautyProError(RuntimeError):
    """An expected failure (API refusal, missing key, bad image...), shown as one readable message.

    ComfyUI shows `exception_type: exception_message` and the traceback of the raised exception
    (execution.py: `full_type_name(type)`, `traceback.format_tb`). The node raises this short
    exception itself, `from None`, so the message is the API's code, its message and what to
    do, and the traceback is just the node call instead of the whole client stack. The module
    name is fixed because ComfyUI names a pack's modules after their full folder path, which
    would otherwise be printed as the type. Unexpected bugs are not wrapped: they keep their
    full traceback.
    """


FaceBeautyProError.__module__ = "face_beauty_pro"


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
        if not TIMEOUT_MIN <= self.timeout_seconds <= TIMEOUT_MAX:
            problems.append(f"timeout_seconds {self.timeout_seconds} is not in {TIMEOUT_MIN}..{TIMEOUT_MAX}")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            problems.append(f"concurrency {self.concurrency} is not in 1..{MAX_CONCURRENCY}")
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


DEFAULT_RUN_OPTIONS = FaceBeautyRunOptions()


def _slider(name: str) -> tuple[str, dict[str, Any]]:
    return (
        "INT",
        {
            "default": SLIDER_DEFAULT,
            "min": SLIDER_MIN,
            "max": SLIDER_MAX,
            "step": 1,
            "display": "slider",
            "tooltip": SLIDER_DESCRIPTIONS[name],
        },
    )


class FaceBeautyPro:
    """Face Beauty Pro: retouch every portrait of a batch through the AILabTools API."""

    DESCRIPTION = (
        "Retouches every portrait in the batch with the AILabTools Face Beauty Pro API: skin "
        "whitening and smoothing, face slimming, small face, big eyes and eyebrow removal "
        "(0 = off, 100 = strongest), plus an optional colour filter. "
        f"Paid API: each new image costs {CREDITS_PER_IMAGE} AILabTools credits (about $0.04). "
        "Re-running an unchanged graph costs nothing: ComfyUI reuses the output, and results are "
        "also kept in a local cache. The API key comes from the AILAB_API_KEY environment variable "
        "or the pack's config file (see README), never from a widget, so it is never saved in "
        "workflows or image metadata. Cancel stops waiting at once; a re-run resumes a task that "
        "was already paid for."
    )
    CATEGORY = CATEGORY
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
        required.update({name: _slider(name) for name in SLIDER_NAMES})
        required["filter_type"] = (
            [NO_FILTER, *FILTER_NAMES],
            {
                "default": NO_FILTER,
                "tooltip": "Colour filter applied with the retouch; 'none' applies no filter. "
                "The names are the API's 35 official filters, in its numbering order (1..35).",
            },
        )
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
        try:
            params = BeautyParams(**sliders, filter_type=filter_type)
            return await _run(image, params, run_options, None if unique_id is None else str(unique_id))
        except RetouchCancelled:
            interrupt = comfy_bridge.interrupt_exception_type()
            if interrupt is None:
                raise
            raise interrupt() from None
        except BeautyError as error:
            raise FaceBeautyProError(_message(error)) from None


class FaceBeautyProOptions:
    """The less common settings, kept off the main node so it stays uncluttered."""

    DESCRIPTION = (
        "Less common settings for Face Beauty Pro: overall timeout per image, how many images are "
        "processed at once, async or sync API mode, what to do when an image fails, and the local "
        "result cache. Connect its output to the 'options' input of Face Beauty Pro."
    )
    CATEGORY = CATEGORY
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
                        "the report lists them.",
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


# -- running one node call ------------------------------------------------------------------------


async def _run(
    image: Any, params: BeautyParams, options: FaceBeautyRunOptions, node_id: str | None
) -> tuple[Any, str]:
    """Run the blocking work in a thread; meanwhile refresh the progress display and watch for Cancel.

    On Cancel the node raises as soon as any worker (or ComfyUI's progress hook) has seen the
    interrupt, without waiting for the other workers: they stop at their own next check
    (<= 0.25 s) in the background, and their tasks stay in the journal for a re-run to resume.
    """
    watch = comfy_bridge.InterruptWatch()
    display = _ProgressDisplay(total=int(image.shape[0]), node_id=node_id)
    _publish(display, watch)  # shows "0/N done" at once, and sees a Cancel pressed before we started
    watch.raise_if_tripped()
    work = asyncio.ensure_future(asyncio.to_thread(_retouch_blocking, image, params, options, display, watch))
    work.add_done_callback(_retrieve)
    clock = DEFAULT_CLOCK
    next_publish = clock.monotonic() + PROGRESS_TICK_SECONDS
    try:
        while True:
            if work.done() or clock.monotonic() >= next_publish:
                next_publish = clock.monotonic() + PROGRESS_TICK_SECONDS
                _publish(display, watch)
            watch.raise_if_tripped()
            if work.done():
                return work.result()
            await asyncio.wait({work}, timeout=CANCEL_POLL_SECONDS)
    finally:
        if not work.done():  # cancelled, or this coroutine was: stop the workers as well
            watch.trip(RetouchCancelled("The node was cancelled."))


def _publish(display: _ProgressDisplay, watch: comfy_bridge.InterruptWatch) -> None:
    """Refresh the display; ComfyUI's progress hook may raise (and clear) the interrupt: keep it."""
    try:
        display.publish()
    except BaseException as error:
        watch.trip(error)


def _retrieve(task: asyncio.Future) -> None:
    """Mark a finished worker's exception as seen (it may finish after the node gave up on it)."""
    if not task.cancelled():
        task.exception()


def _retouch_blocking(
    image: Any,
    params: BeautyParams,
    options: FaceBeautyRunOptions,
    display: _ProgressDisplay,
    watch: comfy_bridge.InterruptWatch,
) -> tuple[Any, str]:
    """The whole job, off the event loop: key check, encode, retouch, assemble, report."""
    backend = ApiBackend.from_environment(
        settings=options.client_settings(),
        comfy_user_dir=comfy_bridge.user_directory(),
        use_cache=options.use_cache,
    )
    sources = codec.images_from_input(image)
    result = retouch_batch(
        backend,
        sources,
        params,
        options=options.retouch_options(),
        concurrency=options.concurrency,
        on_progress=display.on_progress,
        on_item_done=display.on_item_done,
        check_cancel=watch,
    )
    display.finish(result)
    if options.on_failure == "fail":
        result.raise_for_failures()
    output = _assemble(image, sources, result)
    report = _report(result, options)
    log.info("Face Beauty Pro:\n%s", report)
    return output, report


def _assemble(image: Any, sources: Sequence[codec.SourceImage], result: BatchResult) -> Any:
    """One IMAGE tensor in input order; failed images (pass through) are the input, unchanged."""
    arrays = [
        outcome.image if outcome is not None else codec.attach_alpha(source.rgb, source.alpha)
        for source, outcome in zip(sources, result.outcomes, strict=True)
    ]
    output = codec.to_comfy_tensor(arrays)
    for failure in result.failures:
        original = image[failure.index]
        if tuple(original.shape) == tuple(output.shape[1:]):
            output[failure.index] = original.to(device=output.device, dtype=output.dtype)
    return output


def _report(result: BatchResult, options: FaceBeautyRunOptions) -> str:
    """The batch's own per-image report, plus which images were passed through."""
    text = result.report()
    if result.failures:
        indices = ", ".join(str(failure.index) for failure in result.failures)
        text += f"\npassed through unchanged (on_failure = {options.on_failure}): image(s) {indices}"
    return text


def _message(error: BeautyError) -> str:
    """The text shown in ComfyUI: a one-image batch names the image's own error directly.

    Setup problems (no key, a bad config file) are flattened to one line, so the error
    dialog's first line is already the whole instruction.
    """
    if isinstance(error, BatchFailed) and error.total == 1 and len(error.failures) == 1:
        return str(error.failures[0][1])
    if isinstance(error, ConfigurationError):
        return " ".join(str(error).split())
    return str(error)


class _ProgressDisplay:
    """Per-image stages from worker threads, shown as a progress bar and one line of text.

    Workers only record state (under a lock); `publish()` is called from the node's coroutine
    on the event loop every PROGRESS_TICK_SECONDS, so ComfyUI calls happen on one thread and at
    most about twice a second.
    """

    def __init__(self, total: int, node_id: str | None) -> None:
        self.total = total
        self.node_id = node_id
        self.clock = DEFAULT_CLOCK
        self.started = self.clock.monotonic()
        self._lock = threading.Lock()
        self._stages: dict[int, str] = {}
        self._finished: set[int] = set()
        self._summary: str | None = None
        self._bar = comfy_bridge.progress_bar(total, node_id)
        self._shown_count = -1
        self._shown_text = ""

    # called from worker threads
    def on_progress(self, progress: Progress) -> None:
        with self._lock:
            self._stages[progress.index] = progress.stage

    def on_item_done(self, index: int, outcome: object) -> None:
        with self._lock:
            self._finished.add(index)

    def finish(self, result: BatchResult) -> None:
        parts = [f"{count} {origin}" for origin, count in result.counts().items() if count]
        if result.failures:
            parts.append(f"{len(result.failures)} failed")
        with self._lock:
            self._finished = set(range(self.total))
            self._summary = f"{', '.join(parts) or 'nothing to do'} · {result.credits_spent} credits"

    # called from the event loop
    def text(self) -> tuple[int, str]:
        with self._lock:
            finished = len(self._finished)
            summary = self._summary
            active = [
                (index, stage)
                for index, stage in sorted(self._stages.items())
                if index not in self._finished and stage not in _FINISHED_STAGES
            ]
        seconds = int(self.clock.monotonic() - self.started)
        if summary is not None:
            state = summary
        elif active:
            shown = [f"image {index} {stage}" for index, stage in active[:3]]
            if len(active) > 3:
                shown.append(f"+{len(active) - 3} more")
            state = ", ".join(shown)
        else:
            state = "starting"
        return finished, f"Face Beauty Pro: {finished}/{self.total} done · {state} · {seconds} s"

    def publish(self) -> None:
        """Push changes to ComfyUI; a display failure is logged, except ComfyUI's interrupt."""
        finished, text = self.text()
        if finished != self._shown_count:
            self._shown_count = finished
            try:
                self._bar.update_absolute(finished, self.total)
            except Exception as error:
                if comfy_bridge.is_interrupt(error):
                    raise
                log.debug("progress bar update failed: %s", error)
        if text != self._shown_text:
            self._shown_text = text
            comfy_bridge.send_progress_text(text, self.node_id)


# -- Face Beauty Face Mask (offline face analysis, no API) ----------------------------------------


class FaceBeautyFaceMask:
    """A soft mask of a face region for every image, from MediaPipe's face mesh run locally by torch."""

    DESCRIPTION = (
        "Finds the faces in every image (offline: Google's MediaPipe face detector and 478-point "
        "face mesh, run by torch on your machine; free, nothing is uploaded) and outputs a soft "
        "mask of the chosen region: face, skin (face without eyes, brows, lips and nostrils), "
        "eyes, brows or lips. Use it to limit any effect to the face, the skin or the eyes. "
        "An image without a face gives an empty (black) mask."
    )
    CATEGORY = CATEGORY
    FUNCTION = "mask"
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    OUTPUT_TOOLTIPS = ("One mask per input image (same width and height): 1 inside the region, 0 outside.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, Any]]:
        from .beauty_api.local.regions import REGIONS

        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Image(s) to find faces in; one mask per image."}),
                "region": (
                    list(REGIONS),
                    {
                        "default": "skin",
                        "tooltip": "Which part of every face: face (the whole oval), skin (face without "
                        "eyes, brows, lips and nostrils), eyes / left_eye / right_eye, brows / left_brow "
                        "/ right_brow, lips. Left and right are the person's own.",
                    },
                ),
                "feather": (
                    "FLOAT",
                    {
                        "default": 6.0,
                        "min": 0.0,
                        "max": 256.0,
                        "step": 0.5,
                        "tooltip": "Width in pixels of the soft edge, centred on the region's outline "
                        "(0 = a crisp, anti-aliased edge).",
                    },
                ),
                "grow": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -256.0,
                        "max": 256.0,
                        "step": 0.5,
                        "tooltip": "Moves the outline outward by this many pixels (negative shrinks it).",
                    },
                ),
                "max_faces": (
                    "INT",
                    {"default": 4, "min": 1, "max": 32, "tooltip": "At most this many faces per image."},
                ),
                "video": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Treat the batch as frames of one video: faces are tracked from frame "
                        "to frame and smoothed, so masks do not flicker. Off: each image on its own.",
                    },
                ),
            }
        }

    def mask(
        self, image: Any, region: str, feather: float, grow: float, max_faces: int = 4, video: bool = False
    ) -> tuple[Any]:
        """Analyse each image (or track the batch) and rasterise the region's mask."""
        import torch

        from .beauty_api.local.analysis import FaceAnalyzer, load_analyzer
        from .beauty_api.local.models import ModelFileError
        from .beauty_api.local.regions import region_mask

        try:
            shared = load_analyzer(image.device)
        except (ModelFileError, ImportError) as error:
            raise FaceBeautyProError(str(error)) from None
        analyzer = FaceAnalyzer(shared.detector, shared.mesh, max_faces=max_faces)
        _, height, width, _ = image.shape
        if video:
            per_image = analyzer.track(image)
        else:
            per_image = []
            for start in range(0, image.shape[0], 8):  # the faces of 8 images go through the mesh together
                comfy_bridge.check_interrupted()
                per_image += analyzer.analyze_batch(image[start : start + 8])
        masks = [
            region_mask(faces, height, width, region, feather=feather, grow=grow, device=image.device)
            for faces in per_image
        ]
        return (torch.stack(masks),)


# -- Face Beauty (Local) --------------------------------------------------------------------------


class FaceBeautyLocal:
    """Face Beauty (Local): the same sliders and filter list as Face Beauty Pro, computed on this machine."""

    DESCRIPTION = (
        "Retouches every portrait (or video frame) of the batch on this machine: free, offline, no key, "
        "nothing uploaded. The same six sliders and 35 filter names as Face Beauty Pro, in the same "
        "order, so one node can replace the other with its settings: use it to preview before paying "
        "for the API, or when the API's exact look is not needed. The looks are our own design inspired "
        "by the API's names (the API's are not published). Faces are found with MediaPipe's face mesh run "
        "by torch; an image without a face gets the filter only and the report says 'no face'. The same "
        "input and settings always give the same output."
    )
    CATEGORY = CATEGORY
    FUNCTION = "retouch"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("image", "report")
    OUTPUT_TOOLTIPS = (
        "The retouched images: same batch size, order, width and height as the input.",
        "Per image: the faces found ('no face' when none) and seconds; 0 credits.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, Any]]:
        # The Pro node's own slider and filter widgets (names, order, ranges, tooltips): swapping one
        # node for the other keeps the settings.
        required = dict(FaceBeautyPro.INPUT_TYPES()["required"])
        required["image"] = ("IMAGE", {"tooltip": "Portrait(s) or video frames to retouch on this machine."})
        return {
            "required": required,
            "optional": {
                "video": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Treat the batch as frames of one video: faces are tracked from frame "
                        "to frame and smoothed, so the reshaping does not jitter. Off: each image on its own.",
                    },
                )
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

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
        video: bool = False,
        unique_id: str | None = None,
    ) -> tuple[Any, str]:
        """Retouch the batch in a worker thread; progress and Cancel as in Face Beauty Pro."""
        try:
            params = BeautyParams(
                whitening=whitening,
                smoothing=smoothing,
                thinface=thinface,
                shrink_face=shrink_face,
                enlarge_eye=enlarge_eye,
                remove_eyebrow=remove_eyebrow,
                filter_type=filter_type,
            )
        except BeautyError as error:
            raise FaceBeautyProError(str(error)) from None
        node_id = None if unique_id is None else str(unique_id)
        try:
            return await _run_local(image, params, bool(video), node_id)
        except RetouchCancelled:
            interrupt = comfy_bridge.interrupt_exception_type()
            if interrupt is None:
                raise
            raise interrupt() from None


async def _run_local(image: Any, params: BeautyParams, video: bool, node_id: str | None) -> tuple[Any, str]:
    """The local batch in a thread; the event loop shows "n/N done" and watches for Cancel meanwhile."""
    total = int(image.shape[0])
    watch = comfy_bridge.InterruptWatch()
    bar = comfy_bridge.progress_bar(total, node_id)
    done = [0]
    shown = [-1]

    def publish() -> None:
        count = done[0]
        if count == shown[0]:
            return
        shown[0] = count
        try:
            bar.update_absolute(count, total)
            comfy_bridge.send_progress_text(f"Face Beauty (Local): {count}/{total} done", node_id)
        except BaseException as error:  # ComfyUI's progress hook raises the interrupt: keep it
            if comfy_bridge.is_interrupt(error):
                watch.trip(error)
            else:
                log.debug("progress update failed: %s", error)

    def on_frame(index: int, result: object) -> None:
        done[0] = index + 1

    publish()
    watch.raise_if_tripped()
    work = asyncio.ensure_future(
        asyncio.to_thread(_retouch_local_blocking, image, params, video, watch, on_frame)
    )
    work.add_done_callback(_retrieve)
    try:
        while not work.done():
            publish()
            watch.raise_if_tripped()
            await asyncio.wait({work}, timeout=CANCEL_POLL_SECONDS)
        publish()
        watch.raise_if_tripped()
        return work.result()
    finally:
        if not work.done():
            watch.trip(RetouchCancelled("The node was cancelled."))


def _retouch_local_blocking(
    image: Any, params: BeautyParams, video: bool, watch: comfy_bridge.InterruptWatch, on_frame: Any
) -> tuple[Any, str]:
    from .beauty_api.local.engine import LocalEngine
    from .beauty_api.local.models import ModelFileError

    sources = codec.images_from_input(image)
    try:
        # CPU: fast enough for the goals and the path the tests measure (LocalEngine takes a device).
        results = LocalEngine(device="cpu").retouch_frames(
            [source.rgb for source in sources], params, track=video, check_cancel=watch, on_frame=on_frame
        )
    except (ModelFileError, ImportError) as error:
        raise FaceBeautyProError(str(error)) from None
    arrays = [codec.attach_alpha(r.image, s.alpha) for r, s in zip(results, sources, strict=True)]
    lines = [f"image {i}: local, {r.note}, {r.seconds:.2f} s, 0 credits" for i, r in enumerate(results)]
    without = [str(i) for i, r in enumerate(results) if r.faces == 0]
    lines.append(
        f"total: {len(results)} image(s) retouched locally"
        + (f"; no face in image(s) {', '.join(without)} (filter only)" if without else "")
        + "; 0 credits spent"
    )
    report = "\n".join(lines)
    log.info("Face Beauty (Local):\n%s", report)
    return codec.to_comfy_tensor(arrays), report
