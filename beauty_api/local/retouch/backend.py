"""LocalBackend: the RetouchBackend of the offline engine, so the CLI, scripts and batch layer use it unchanged.

Free (0 credits), no key, no network. An image without a face is a result, not a failure: it gets
the look only, and the outcome's note says "no face" for the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ...clock import CancelCheck
from ...clock import check_cancel as raise_if_cancelled
from ...codec import SourceImage, attach_alpha
from ...params import BeautyParams
from ...run.backend import DEFAULT_OPTIONS, RetouchOptions, RetouchOutcome
from ...run.progress_events import Progress, ProgressCallback

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ...run.concurrency import AdaptiveLimiter
    from ..faces.face import Face
    from .engine import LocalEngine, VideoTracker

ORIGIN = "local"


class LocalBackend:
    """RetouchBackend over LocalEngine. One image at a time: torch already uses every core for one.

    `video`: the frames of one video, in order (the batch's own sources; a lazy Sequence is fine).
    The faces are then tracked from frame to frame as the frames come (streamed: one frame in memory
    at a time, however long the clip), and image `index` is retouched with frame `index`'s tracked
    faces: no jitter. Any call order works: frames asked for early are tracked up to (their faces
    kept, not their pixels); a frame asked for again restarts the tracking from the first frame.
    `max_faces`: at most this many faces per image (the engine's setting when `engine` is given).
    While frame `index` is retouched, the next frame's faces are tracked on another thread: the
    work of a frame is split by stage, one torch thread each, rather than inside each operation
    (the retouch's small tensor steps keep one core busy, not two). The tracker still sees every
    frame once, in order, and the frame ahead is done before `retouch` returns, with torch's thread
    count as it was; one frame more is in memory.
    """

    def __init__(
        self,
        engine: LocalEngine | None = None,
        *,
        device: str | None = None,
        video: Sequence[SourceImage] | None = None,
        max_faces: int | None = None,
    ) -> None:
        if engine is None:
            from .engine import LocalEngine

            engine = (
                LocalEngine(device=device)
                if max_faces is None
                else LocalEngine(device=device, max_faces=max_faces)
            )
        self.engine = engine
        self.video = video
        self._tracker: VideoTracker | None = None
        self._next = 0  # the next frame the tracker expects
        self._ahead: dict[int, list[Face]] = {}  # faces of frames tracked before they were asked for
        self._prefetch: tuple[int, _FrameAhead] | None = None  # the next frame, being tracked
        self._lock = threading.Lock()

    def _tracked_faces(
        self, index: int, source: SourceImage, params: BeautyParams, check_cancel: CancelCheck | None
    ) -> list[Face] | None:
        """Frame `index`'s tracked faces, or None when this is not a video (or no face control is set)."""
        from .engine import needs_faces

        if self.video is None or len(self.video) < 2 or not needs_faces(params):
            return None
        if self._prefetch is not None:  # the tracker is ours again once the frame ahead is done
            frame, ahead = self._prefetch
            self._prefetch = None
            self._ahead[frame] = ahead.faces()
        if index in self._ahead:
            faces = self._ahead.pop(index)
        else:
            if self._tracker is None or index < self._next:
                self._tracker, self._next, self._ahead = self.engine.tracker(), 0, {}
            while self._next < index:  # Cancel is checked between frames (one frame: well under 0.5 s)
                raise_if_cancelled(check_cancel)
                self._ahead[self._next] = self._tracker.faces(self.video[self._next].rgb)
                self._next += 1
            raise_if_cancelled(check_cancel)
            self._next += 1
            faces = self._tracker.faces(source.rgb)
        if self._tracker is not None and self._next == index + 1 < len(self.video):
            tracker, video, frame = self._tracker, self.video, self._next
            self._next += 1
            self._prefetch = (frame, _FrameAhead(lambda: tracker.faces(video[frame].rgb)))
        return faces

    def retouch(
        self,
        source: SourceImage,
        params: BeautyParams,
        *,
        options: RetouchOptions = DEFAULT_OPTIONS,
        index: int = 0,
        on_progress: ProgressCallback | None = None,
        check_cancel: CancelCheck | None = None,
        limiter: AdaptiveLimiter | None = None,
    ) -> RetouchOutcome:
        """Retouch one image on this machine. `options` and `limiter` concern the API and are ignored."""
        started = time.perf_counter()

        def emit(stage: str) -> None:
            if on_progress is not None:
                on_progress(Progress(index, stage, None, time.perf_counter() - started))

        raise_if_cancelled(check_cancel)
        with self._lock:
            raise_if_cancelled(check_cancel)
            emit("processing")
            with _one_torch_thread_per_stage(self.video is not None and len(self.video) > 1):
                try:
                    faces = self._tracked_faces(index, source, params, check_cancel)
                    if faces is None:
                        result = self.engine.retouch(source.rgb, params)
                    else:
                        result = self.engine.retouch_with_faces(source.rgb, faces, params)
                finally:
                    if self._prefetch is not None:  # done before the thread count is restored
                        self._prefetch[1].join()
        image = attach_alpha(result.image, source.alpha)
        emit("done")
        return RetouchOutcome(image, ORIGIN, None, time.perf_counter() - started, 0, note=result.note)


class _FrameAhead:
    """The faces of the next frame, tracked on a thread of its own; `faces()` waits and returns them
    (or raises what the tracking raised)."""

    def __init__(self, track: Callable[[], list[Face]]) -> None:
        self._track = track
        self._faces: list[Face] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="face-beauty-track", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._faces = self._track()
        except BaseException as error:  # handed to whoever asks for the faces
            self._error = error

    def join(self) -> None:
        self._thread.join()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def faces(self) -> list[Face]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._faces


@contextmanager
def _one_torch_thread_per_stage(active: bool) -> Iterator[None]:
    """While a video frame is worked on (two stages at once), one torch thread for each stage."""
    if not active:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)
