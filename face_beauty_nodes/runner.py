"""Running one retouch node call inside ComfyUI: the worker thread, the display ticker, Cancel, errors.

The blocking batch runs in a thread (`asyncio.to_thread`) while the event loop keeps other
async nodes going and this coroutine refreshes the node's display (status.py) twice a
second. Every way a run can end leaves an honest final frame on the node: the summary, the
failures with their reasons, "cancelled", or the error's one line.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..beauty_api import codec
from ..beauty_api.clock import DEFAULT_CLOCK
from ..beauty_api.errors import BatchFailed, BeautyError, ConfigurationError, ImageError, RetouchCancelled
from ..beauty_api.params import BeautyParams
from ..beauty_api.run.backend import RetouchBackend, RetouchOptions, RetouchOutcome
from ..beauty_api.run.batch import retouch_batch
from . import bridge
from .status import NodeStatus, StatusPublisher, report_text

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("beauty_api.nodes.runner")  # one logger tree for the pack

# The progress display is refreshed this often (so at most ~2 text updates a second).
PROGRESS_TICK_SECONDS = 0.5
# How often the node's coroutine looks whether a worker has seen Cancel.
CANCEL_POLL_SECONDS = 0.05


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
class RunPlan:
    """How one node call retouches: which backend (built in the worker), its options, failures."""

    make_backend: Callable[[], RetouchBackend]
    retouch_options: RetouchOptions
    concurrency: int
    pass_through: bool  # failed images come out unchanged instead of failing the node
    # Called when the batch ends with images still to retouch (failed, not sent, or running at
    # the deadline), so a re-queue runs the node again (requeue.py); None: it does not.
    on_incomplete: Callable[[], None] | None = None


async def run_retouch(
    image: Any, make_params: Callable[[], BeautyParams], plan: RunPlan, node_id: str | None
) -> tuple[Any, str]:
    """Retouch the IMAGE batch; expected failures become one FaceBeautyProError line.

    `make_params` is called here, so a bad widget value is shown on the node like any error.
    """
    status = NodeStatus(total=batch_size(image))
    publisher = StatusPublisher(status, node_id)
    try:
        return await _run(image, make_params(), plan, status, publisher)
    except RetouchCancelled:
        status.cancelled()
        publisher.publish_final()
        interrupt = bridge.interrupt_exception_type()
        if interrupt is None:
            raise
        raise interrupt() from None
    except BeautyError as error:
        message = _message(error)
        status.stopped(message)
        publisher.publish_final()
        raise FaceBeautyProError(message) from None
    except BaseException as error:
        if bridge.is_interrupt(error):
            status.cancelled()
            publisher.publish_final()
        raise


async def _run(
    image: Any, params: BeautyParams, plan: RunPlan, status: NodeStatus, publisher: StatusPublisher
) -> tuple[Any, str]:
    """Run the blocking work in a thread; meanwhile refresh the progress display and watch for Cancel.

    On Cancel the node raises as soon as any worker (or ComfyUI's progress hook) has seen the
    interrupt, without waiting for the other workers: they stop at their own next check
    (<= 0.25 s) in the background, and their tasks stay in the journal for a re-run to resume.
    """
    watch = bridge.InterruptWatch()
    _publish(publisher, watch)  # shows "starting" at once, and sees a Cancel pressed before we started
    watch.raise_if_tripped()
    work = asyncio.ensure_future(asyncio.to_thread(_retouch_blocking, image, params, plan, status, watch))
    work.add_done_callback(_retrieve)
    clock = DEFAULT_CLOCK
    next_publish = clock.monotonic() + PROGRESS_TICK_SECONDS
    try:
        while True:
            if work.done() or clock.monotonic() >= next_publish:
                next_publish = clock.monotonic() + PROGRESS_TICK_SECONDS
                _publish(publisher, watch)
            watch.raise_if_tripped()
            if work.done():
                return work.result()
            await asyncio.wait({work}, timeout=CANCEL_POLL_SECONDS)
    finally:
        if not work.done():  # cancelled, or this coroutine was: stop the workers as well
            watch.trip(RetouchCancelled("The node was cancelled."))


def _publish(publisher: StatusPublisher, watch: bridge.InterruptWatch) -> None:
    """Refresh the display; ComfyUI's progress hook may raise (and clear) the interrupt: keep it."""
    try:
        publisher.publish()
    except BaseException as error:
        watch.trip(error)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a finished worker's exception as seen (it may finish after the node gave up on it)."""
    if not task.cancelled():
        task.exception()


def _retouch_blocking(
    image: Any, params: BeautyParams, plan: RunPlan, status: NodeStatus, watch: bridge.InterruptWatch
) -> tuple[Any, str]:
    """The whole job, off the event loop: key check, encode, retouch, assemble, report."""
    backend = plan.make_backend()
    # An ApiBackend closes its HTTP connections when the batch is over (also after a Cancel).
    output = OutputBatch(image)

    def on_item_done(index: int, outcome: RetouchOutcome | None) -> None:
        if outcome is not None:
            output.put(index, outcome.image)  # straight into the IMAGE tensor; the batch then lets it go
        status.on_item_done(index, outcome)

    with backend if isinstance(backend, AbstractContextManager) else nullcontext(backend):
        result = retouch_batch(
            backend,
            codec.lazy_batch(image),  # one uint8 copy per image in flight, not of the whole batch
            params,
            options=plan.retouch_options,
            concurrency=plan.concurrency,
            on_progress=status.on_progress,
            on_item_done=on_item_done,
            check_cancel=watch,
            keep_images=False,
        )
    retry = plan.on_incomplete is not None
    if result.failures and plan.on_incomplete is not None:
        plan.on_incomplete()
    status.finish(result, passed_through=plan.pass_through, retry_on_requeue=retry)
    if not plan.pass_through:
        result.raise_for_failures()
    tensor = output.tensor(passed_through=[failure.index for failure in result.failures])
    report = report_text(result, passed_through=plan.pass_through, retry_on_requeue=retry)
    log.info("Face Beauty Pro:\n%s", report)
    return tensor, report


def batch_size(image: Any) -> int:
    """How many images an IMAGE input holds: a 3-D `[H,W,C]` tensor is one image, not H."""
    return 1 if len(image.shape) <= 3 else int(image.shape[0])


class OutputBatch:
    """The node's IMAGE output, filled in as each result arrives, so a batch never holds its
    results twice (a list of arrays, then the stacked tensor).

    Failed images (pass through) are the input, unchanged: a float input is copied back as is,
    so its exact values survive; an integer tensor (uint8 0..255) is scaled, never cast; a
    3-D `[H,W,C]` input is one image, not H rows.
    """

    def __init__(self, image: Any) -> None:
        self.batch = image if len(image.shape) > 3 else image.unsqueeze(0)
        self._lock = threading.Lock()
        self._tensor: Any = None

    def put(self, index: int, array: np.ndarray) -> None:
        """Place one result (HxWxC uint8) at its index; results must share one shape."""
        import torch

        with self._lock:
            if self._tensor is None:
                shape = (int(self.batch.shape[0]), *array.shape)
                self._tensor = torch.zeros(shape, dtype=torch.float32)
            if tuple(self._tensor.shape[1:]) != array.shape:
                raise ImageError(
                    f"results in one batch must share a shape, got {tuple(self._tensor.shape[1:])} and "
                    f"{array.shape}; turn keep_returned_size off to get every result at its input's size"
                )
            self._tensor[index] = torch.from_numpy(array).to(torch.float32).div_(255.0)

    def tensor(self, passed_through: Sequence[int] = ()) -> Any:
        """The finished IMAGE tensor; the `passed_through` indices get their input back."""
        import torch

        if self._tensor is None:  # nothing succeeded: every image is passed through
            return codec.to_comfy_tensor([self._as_array(i) for i in range(int(self.batch.shape[0]))])
        for index in passed_through:
            original = self.batch[index]
            if self.batch.is_floating_point() and tuple(original.shape) == tuple(self._tensor.shape[1:]):
                self._tensor[index] = original.to(dtype=torch.float32, device=self._tensor.device)
            else:
                self.put(index, self._as_array(index))
        return self._tensor

    def _as_array(self, index: int) -> np.ndarray:
        source = codec.images_from_input(self.batch[index])[0]
        return codec.attach_alpha(source.rgb, source.alpha)


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
