"""`retouch`: validate, run the batch with Ctrl-C as a clean cancel, write each result atomically."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from ..local.faces.limits import MAX_FACES, MAX_FACES_LIMIT
from .heap import return_image_buffers_promptly
from .output import EXIT_INTERRUPTED, EXIT_USAGE, err, stderr_is_terminal
from .progress_report import BatchReporter, describe_settings, report_interrupt, report_result
from .retouch_job import RetouchJob, validate_retouch

if TYPE_CHECKING:
    from ..api.client import ClientSettings
    from ..run.backend import RetouchBackend


@contextmanager
def _ctrl_c_cancels(event: threading.Event) -> Iterator[None]:
    """First Ctrl-C: cancel cleanly (workers stop within 0.25 s, tasks stay recorded). Second: quit now."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if event.is_set():
            from ..run.paid_request import abandon_in_flight

            unanswered = abandon_in_flight()  # recorded as "sent, answer not received" before we quit
            if unanswered:
                err(
                    f"interrupted again: quitting now; {unanswered} request(s) were sent and their answers not "
                    "received: recorded as such, so a re-run does not pay for them again (`python -m beauty_api "
                    "journal list` shows them, `journal forget` sends again); recorded tasks are resumed by a re-run."
                )
            else:
                err("interrupted again: quitting now; recorded tasks are resumed by a re-run.")
            os._exit(EXIT_INTERRUPTED)
        event.set()
        err("stopping: letting the images in flight record their state (Ctrl-C again to quit at once)...")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_job(backend: RetouchBackend, job: RetouchJob, *, live: bool = False) -> int:
    """Retouch, write, report; the exit status. `live`: one status line instead of per-image lines."""
    from ..errors import RetouchCancelled
    from ..run.batch import retouch_batch

    reporter = BatchReporter(job, live=live)
    cancel = threading.Event()
    reporter.start()
    try:
        with _ctrl_c_cancels(cancel):
            result = retouch_batch(
                backend,
                job.sources,
                job.params,
                options=job.options,
                concurrency=job.concurrency,
                on_progress=reporter.on_progress,
                on_item_done=reporter.on_item_done,  # writes each result as soon as it is done
                check_cancel=cancel.is_set,
                keep_images=False,  # ... and then lets it go: memory stays flat however many inputs
            )
    except RetouchCancelled:
        reporter.stop()
        report_interrupt(reporter, job.options.mode)
        return EXIT_INTERRUPTED
    finally:
        reporter.stop()
    return report_result(job, reporter, result)


def _client_settings(job: RetouchJob) -> ClientSettings:
    from ..api.client import ClientSettings

    if job.poll is None:
        return ClientSettings(timeout=job.timeout)
    return ClientSettings(timeout=job.timeout, poll_initial=job.poll, poll_max=job.poll)


def cmd_retouch(args: argparse.Namespace) -> int:
    job, problems = validate_retouch(args)
    if not 1 <= getattr(args, "max_faces", MAX_FACES) <= MAX_FACES_LIMIT:
        problems = [*problems, f"--max-faces must be 1..{MAX_FACES_LIMIT}, got {args.max_faces}"]
        job = None
    if job is None:
        for problem in problems:
            err(f"error: {problem}")
        return EXIT_USAGE
    if job.folder is not None:
        try:
            job.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            err(f"error: -o: cannot create the folder {job.folder}: {error.strerror or error}")
            return EXIT_USAGE
    return_image_buffers_promptly()  # peak memory: see heap.py
    local = args.backend == "local"
    err(describe_settings(job, args.backend, args.max_faces if local else None))
    backend = build_backend(args.backend, job, no_cache=args.no_cache, max_faces=args.max_faces)
    # An ApiBackend closes its HTTP connections when the batch is over.
    with backend if isinstance(backend, AbstractContextManager) else nullcontext(backend):
        return run_job(backend, job, live=not args.verbose and stderr_is_terminal())


BACKENDS = ("api", "local")


def build_backend(
    name: str, job: RetouchJob, *, no_cache: bool = False, max_faces: int = MAX_FACES
) -> RetouchBackend:
    """The backend `--backend` names: the paid API (key from the environment) or the offline engine."""
    if name == "local":
        from ..local.needs import require

        require("`retouch --backend local`")  # one line and exit 2 when torch or kornia is missing
        from ..local.retouch.backend import LocalBackend

        return LocalBackend(max_faces=max_faces)
    from ..run.api_backend import ApiBackend

    return ApiBackend.from_environment(settings=_client_settings(job), use_cache=False if no_cache else None)
