"""`python -m beauty_api`: retouch image files, list the filters, run the offline demo, manage the cache.

Every check that can fail (parameters, inputs, output path, API key) runs before the first
paid request, and each problem is one line on stderr. Exit codes:

    0    every image was retouched and written
    1    some image failed (one line each); the others were written and their results cached
    2    usage or configuration error: nothing was sent
    130  interrupted: tasks already submitted are in the task journal, a re-run resumes them

Progress, errors and the summary go to stderr; stdout carries only the paths written (and the
listings of `filters` and `cache`), so the command composes in scripts.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .backend import RetouchOptions
from .batch import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from .client import ClientSettings
from .errors import BeautyError, ConfigurationError, ImageError, InvalidParameterError
from .params import (
    FILTER_NAMES,
    NO_FILTER,
    SLIDER_DEFAULT,
    SLIDER_DESCRIPTIONS,
    SLIDER_NAMES,
    BeautyParams,
)

if TYPE_CHECKING:
    from .backend import Progress, RetouchBackend, RetouchOutcome
    from .batch import BatchResult
    from .codec import SourceImage

PROG = "python -m beauty_api"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_TIMEOUT = 300.0
DEFAULT_DEMO_DIR = "face-beauty-demo"
SAVE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
DEFAULT_SUFFIX = ".png"
FIELD_FLAGS: dict[str, str] = {
    **{name: "--" + name.replace("_", "-") for name in SLIDER_NAMES},
    "filter_type": "--filter",
}

log = logging.getLogger("beauty_api")
_print_lock = threading.RLock()  # re-entrant: the Ctrl-C handler may print while the main thread does


class UsageError(Exception):
    """A command line argparse cannot read; reported as one line, exit 2."""


def _err(line: str) -> None:
    """One line to stderr, whole even when worker threads report at the same time."""
    with _print_lock:
        sys.stderr.write(line.rstrip("\n") + "\n")
        sys.stderr.flush()


def _out(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _one_line(text: object) -> str:
    """An error text on one line (some messages carry indented instructions)."""
    return " ".join(str(text).split())


# -- parser -------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors raised to `main` instead of usage dumps and sys.exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; `--help` on each subcommand documents its options."""
    parser = _Parser(
        prog=PROG,
        description="Face Beauty Pro (AILabTools) from the command line: retouch portraits with six "
        "0..100 sliders and 35 colour filters (15 credits per new image), try it offline with `demo`.",
        epilog="Key: set AILAB_API_KEY (or the config file, see README). Exit codes: 0 ok, 1 some image "
        "failed, 2 usage/config error (nothing sent), 130 interrupted (run it again to resume paid tasks).",
    )
    parser.add_argument("--version", action="version", version=f"face-beauty-pro {__version__}")
    verbose_help = "debug logging to stderr (the API key is never shown)"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # The same flag after the subcommand; SUPPRESS keeps it from resetting the top-level value.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_retouch(commands, verbose)
    from .local.landmarks_cli import add_parser as add_landmarks_parser  # offline face analysis

    add_landmarks_parser(commands, [verbose])
    commands.add_parser(
        "filters", parents=[verbose], help="list the 35 filters (number and name)"
    ).set_defaults(handler=_cmd_filters)
    demo = commands.add_parser(
        "demo",
        parents=[verbose],
        help="offline demo: the emulator on 127.0.0.1 retouches the bundled portrait (no key, no credits)",
    )
    demo.add_argument(
        "-o", "--output", default=DEFAULT_DEMO_DIR, metavar="DIR", help=f"default ./{DEFAULT_DEMO_DIR}"
    )
    demo.set_defaults(handler=_cmd_demo)
    cache = commands.add_parser("cache", parents=[verbose], help="show or clear the result cache")
    actions = cache.add_subparsers(dest="cache_action", metavar="ACTION", required=True)
    actions.add_parser("info", parents=[verbose], help="directory, entries, total size").set_defaults(
        handler=_cmd_cache_info
    )
    actions.add_parser("clear", parents=[verbose], help="remove every cached result").set_defaults(
        handler=_cmd_cache_clear
    )
    return parser


def _add_retouch(commands: argparse._SubParsersAction, verbose: argparse.ArgumentParser) -> None:
    retouch = commands.add_parser(
        "retouch",
        parents=[verbose],
        help="retouch image files through the API (15 credits per new image), or --backend local (free)",
        description="Retouch portraits. Results already paid for are reused: from the result cache, "
        "or by resuming a task recorded by an interrupted run.",
    )
    retouch.add_argument("inputs", nargs="+", metavar="INPUT", help="image files (PNG, JPEG, WEBP, ...)")
    retouch.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTPUT",
        help="one input: the output file (.png/.jpg/.jpeg/.webp), or a folder (existing, ending in '/', "
        "or without suffix); several inputs: a folder, created if missing, files named <input stem>.png",
    )
    for name in SLIDER_NAMES:
        retouch.add_argument(
            FIELD_FLAGS[name],
            dest=name,
            default=str(SLIDER_DEFAULT),
            metavar="0-100",
            help=f"{SLIDER_DESCRIPTIONS[name]} Default {SLIDER_DEFAULT}.",
        )
    retouch.add_argument(
        "--filter",
        dest="filter_type",
        default=NO_FILTER,
        metavar="NAME|N",
        help="colour filter by number (1..35) or name, any case; see `filters`. Default none.",
    )
    retouch.add_argument(
        "--timeout",
        default=str(DEFAULT_TIMEOUT),
        metavar="SECONDS",
        help=f"overall limit per image (default {DEFAULT_TIMEOUT:g}); a task still running is resumed by a re-run",
    )
    retouch.add_argument(
        "--poll",
        default=None,
        metavar="SECONDS",
        help="check each task every SECONDS (default: 1 s after submitting, backing off to the "
        "documented 5 s); shorter only makes sense against the emulator or a local proxy",
    )
    retouch.add_argument(
        "--concurrency",
        default=str(DEFAULT_CONCURRENCY),
        metavar="N",
        help=f"images in flight, 1..{MAX_CONCURRENCY} (default {DEFAULT_CONCURRENCY}; lowered automatically on rate limits)",
    )
    retouch.add_argument(
        "--sync",
        action="store_true",
        help="one request per image (task_type=sync); unlike async tasks, an interrupted sync request cannot be resumed",
    )
    retouch.add_argument(
        "--keep-size", action="store_true", help="keep the size the API returns instead of the input's size"
    )
    retouch.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the result cache (the journal stays on)",
    )
    retouch.add_argument(
        "--backend",
        choices=BACKENDS,
        default="api",
        help="api: the paid Face Beauty Pro API (default); local: this machine's offline engine "
        "(free, no key, no network; our own looks, not the API's)",
    )
    retouch.set_defaults(handler=_cmd_retouch)


# -- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status instead of exiting (so tests can call it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        _err(f"error: {error}")
        return EXIT_USAGE
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    with _logging_to_stderr(args.verbose):
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except ConfigurationError as error:
        _err(f"error: {error}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted; nothing was submitted." if args.command == "retouch" else "interrupted.")
        return EXIT_INTERRUPTED


class _StderrHandler(logging.Handler):
    """Log records as whole lines on the current sys.stderr (looked up per record, like `_err`)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _err(self.format(record))
        except Exception:
            self.handleError(record)


@contextmanager
def _logging_to_stderr(verbose: bool) -> Iterator[None]:
    """Warnings always reach stderr; -v adds this package's debug log (the transport redacts the key).

    The logger is put back as it was afterwards, so calling `main` in-process leaves no trace.
    """
    handler = _StderrHandler()
    form = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s"
    handler.setFormatter(logging.Formatter(form))
    previous = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else min(previous or logging.WARNING, logging.WARNING))
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)


# -- retouch: validation --------------------------------------------------------------------------


@dataclass(frozen=True)
class RetouchJob:
    """A fully validated retouch: nothing in here can fail for a reason known before sending."""

    inputs: list[Path]
    outputs: list[Path]
    sources: list[SourceImage]
    params: BeautyParams
    options: RetouchOptions
    timeout: float
    poll: float | None  # None: the client's default schedule
    concurrency: int
    folder: Path | None  # the output folder, created once everything is valid


def _slider_value(text: str) -> object:
    """The text as an int (or float, for a clear 'not a whole number'), else as given."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _flag_message(error: InvalidParameterError) -> str:
    """BeautyParams names the API field; say the option the user typed instead."""
    text = str(error)
    for name, flag in FIELD_FLAGS.items():
        if text.startswith(f"{name}:"):
            return flag + text[len(name) :]
    return text


def parse_params(args: argparse.Namespace) -> tuple[BeautyParams | None, list[str]]:
    """The beauty settings, with one problem line per bad option (all of them, not just the first)."""
    values: dict[str, object] = {name: _slider_value(getattr(args, name)) for name in SLIDER_NAMES}
    values["filter_type"] = args.filter_type
    problems = []
    for name, value in values.items():
        try:
            BeautyParams(**{name: value})
        except InvalidParameterError as error:
            problems.append(_flag_message(error))
    if problems:
        return None, problems
    return BeautyParams(**values), []


def _parse_seconds(option: str, text: str, example: str) -> tuple[float, str | None]:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        return 0.0, f"{option}: {text!r} is not a positive number of seconds (e.g. {example})."
    return value, None


def _parse_concurrency(text: str) -> tuple[int, str | None]:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_CONCURRENCY:
        return 0, f"--concurrency: {text!r} is out of range; allowed 1..{MAX_CONCURRENCY} images in flight."
    return value, None


def load_inputs(paths: Sequence[str]) -> tuple[list[Path], list[SourceImage], list[str]]:
    """Read every input now, so a missing or broken file stops the run before anything is paid."""
    from .codec import MIN_SIDE, load_image_file

    inputs, sources, problems = [], [], []
    for number, text in enumerate(paths, start=1):
        path = Path(text)
        where = f"input {number} ({text})"
        if not path.exists():
            problems.append(f"{where}: no such file.")
            continue
        if path.is_dir():
            problems.append(f"{where}: is a folder; pass the image files (e.g. {text.rstrip('/')}/*.jpg).")
            continue
        try:
            source = load_image_file(path)
        except ImageError as error:
            problems.append(f"{where}: {_one_line(error)}")
            continue
        width, height = source.size
        if width < MIN_SIDE or height < MIN_SIDE:
            problems.append(
                f"{where}: {width} x {height} px is too small; the API needs at least {MIN_SIDE} px on each side."
            )
            continue
        inputs.append(path)
        sources.append(source)
    return inputs, sources, problems


def _is_folder_target(output: str, count: int) -> bool:
    """Several inputs always go to a folder; one input goes to a folder when -o clearly names one."""
    path = Path(output)
    return count > 1 or path.is_dir() or output.endswith(("/", os.sep)) or not path.suffix


def plan_outputs(inputs: Sequence[Path], output: str) -> tuple[list[Path], Path | None, list[str]]:
    """Output file per input (same stem), the folder to create, and any problem with them."""
    target = Path(output)
    if _is_folder_target(output, len(inputs)):
        if target.exists() and not target.is_dir():
            return (
                [],
                None,
                [f"-o {output}: exists and is not a folder; with several inputs, -o is a folder."],
            )
        problem = _unwritable(target)
        outputs = [target / (path.stem + DEFAULT_SUFFIX) for path in inputs]
        return outputs, target, ([problem] if problem else []) + _clashes(inputs, outputs)
    if target.suffix.lower() not in SAVE_SUFFIXES:
        return [], None, [f"-o {output}: unsupported file type; use one of {', '.join(SAVE_SUFFIXES)}."]
    problem = _unwritable(target.parent)
    outputs = [target] * len(inputs)
    return outputs, target.parent, ([problem] if problem else []) + _clashes(inputs, outputs)


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be written into `folder` (created later if missing), or None."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"-o: {probe} is a file, so the folder {folder} cannot be created."
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        return f"-o: no permission to write in {probe}."
    return None


def _clashes(inputs: Sequence[Path], outputs: Sequence[Path]) -> list[str]:
    """Two inputs written to one file, or an input overwritten by its own result."""
    problems, seen = [], {}
    sources = {_real(path): number for number, path in enumerate(inputs, start=1)}
    for number, (source, target) in enumerate(zip(inputs, outputs, strict=True), start=1):
        key = _real(target)
        if key in seen:
            problems.append(
                f"inputs {seen[key]} and {number} ({source}) would both be written to {target}; rename one."
            )
        seen.setdefault(key, number)
        if key in sources:
            problems.append(
                f"input {sources[key]} ({inputs[sources[key] - 1]}) would be overwritten by a result."
            )
    return problems


def _real(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def check_setup(use_cache: bool) -> list[str]:
    """Key, address and cache settings, resolved now: a setup problem is found before anything is sent."""
    from .config import resolve_api_key, resolve_base_url
    from .storage_paths import cache_settings

    checks = [resolve_api_key, resolve_base_url] + ([cache_settings] if use_cache else [])
    problems = []
    for check in checks:
        try:
            check()
        except ConfigurationError as error:
            problems.append(str(error))
    return problems


def validate_retouch(args: argparse.Namespace) -> tuple[RetouchJob | None, list[str]]:
    """Everything `retouch` needs, or every problem found (in the order of the command line)."""
    params, problems = parse_params(args)
    timeout, problem_t = _parse_seconds("--timeout", args.timeout, "300")
    poll, problem_p = (None, None) if args.poll is None else _parse_seconds("--poll", args.poll, "5")
    concurrency, problem_c = _parse_concurrency(args.concurrency)
    problems += [p for p in (problem_t, problem_p, problem_c) if p]
    inputs, sources, input_problems = load_inputs(args.inputs)
    problems += input_problems
    outputs, folder, output_problems = plan_outputs(inputs, args.output) if inputs else ([], None, [])
    problems += output_problems
    if args.backend == "api":  # the local engine needs no key, address or cache
        problems += check_setup(use_cache=not args.no_cache)
    if problems or params is None:
        return None, problems
    options = RetouchOptions(
        mode="sync" if args.sync else "async",
        keep_returned_size=args.keep_size,
        use_cache=not args.no_cache,
    )
    job = RetouchJob(inputs, outputs, sources, params, options, timeout, poll, concurrency, folder)
    return job, []


# -- retouch: running ---------------------------------------------------------------------------

_STAGE_TEXT = {
    "cached": "from the result cache (no credits)",
    "resumed": "resuming a task paid earlier",
    "submitting": "submitting",
    "queued": "queued",
    "processing": "processing",
    "downloading": "downloading",
}


class BatchReporter:
    """Progress lines on stderr and result files on disk, as each image moves on (worker threads)."""

    def __init__(self, job: RetouchJob) -> None:
        self.job = job
        self.total = len(job.inputs)
        self.lock = threading.Lock()
        self.stage: dict[int, str] = {}
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.task_shown: set[int] = set()
        self.written: dict[int, Path] = {}
        self.write_errors: dict[int, str] = {}

    def _prefix(self, index: int) -> str:
        return f"[{index + 1}/{self.total}] {self.job.inputs[index].name}"

    def on_progress(self, progress: Progress) -> None:
        text = _STAGE_TEXT.get(progress.stage)
        with self.lock:
            if progress.stage in ("submitting", "resumed"):
                self.started.add(progress.index)
            if text is None or self.stage.get(progress.index) == progress.stage:
                return
            self.stage[progress.index] = progress.stage
            first_id = progress.task_id is not None and progress.index not in self.task_shown
            if first_id:
                self.task_shown.add(progress.index)
        task = f" (task {progress.task_id})" if first_id else ""
        _err(f"{self._prefix(progress.index)}: {text}{task} {progress.elapsed:.1f} s")

    def on_item_done(self, index: int, outcome: RetouchOutcome | None) -> None:
        with self.lock:
            self.finished.add(index)
        if outcome is None:
            _err(f"{self._prefix(index)}: failed")
            return
        target = self.job.outputs[index]
        try:
            _save_atomically(target, outcome.image)
        except (OSError, ImageError) as error:
            with self.lock:
                self.write_errors[index] = f"cannot write {target}: {_one_line(error)}"
            _err(f"{self._prefix(index)}: {outcome.origin}, but writing {target} failed")
            return
        with self.lock:
            self.written[index] = target
        credits = f", {outcome.credits_spent} credits" if outcome.credits_spent else ""
        credits += f", {outcome.note}" if outcome.note else ""  # the local engine's "no face"
        _err(f"{self._prefix(index)}: done ({outcome.origin}, {outcome.seconds:.1f} s{credits}) -> {target}")

    def unfinished_started(self) -> int:
        """Images whose task was submitted or resumed but not finished: the journal holds them."""
        with self.lock:
            return len(self.started - self.finished)


def _save_atomically(target: Path, image: object) -> None:
    """Write next to the target, then rename: an interrupted run never leaves half a file."""
    from .codec import save_image

    temp = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
    try:
        save_image(temp, image)  # type: ignore[arg-type]
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()


@contextmanager
def _ctrl_c_cancels(event: threading.Event) -> Iterator[None]:
    """First Ctrl-C: cancel cleanly (workers stop within 0.25 s, tasks stay recorded). Second: quit now."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if event.is_set():
            _err("interrupted again: quitting now; recorded tasks are resumed by a re-run.")
            os._exit(EXIT_INTERRUPTED)
        event.set()
        _err("stopping: letting the images in flight record their state (Ctrl-C again to quit at once)...")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_job(backend: RetouchBackend, job: RetouchJob) -> int:
    """Retouch, write, report; the exit status."""
    from .batch import retouch_batch
    from .errors import RetouchCancelled

    reporter = BatchReporter(job)
    cancel = threading.Event()
    try:
        with _ctrl_c_cancels(cancel):
            result = retouch_batch(
                backend,
                job.sources,
                job.params,
                options=job.options,
                concurrency=job.concurrency,
                on_progress=reporter.on_progress,
                on_item_done=reporter.on_item_done,
                check_cancel=cancel.is_set,
            )
    except RetouchCancelled:
        _report_interrupt(reporter, job.options.mode)
        return EXIT_INTERRUPTED
    return _report_result(job, reporter, result)


def _report_interrupt(reporter: BatchReporter, mode: str) -> None:
    in_flight = reporter.unfinished_started()
    written = len(reporter.written)
    done = f"{written} finished image(s) were written; " if written else ""
    if mode == "sync":
        _err(
            f"interrupted: {done}{in_flight} image(s) not yet sent were cancelled, so nothing was paid for them; "
            "re-run the same command to retouch the rest (finished ones come from the result cache)."
        )
    elif in_flight:
        _err(
            f"interrupted: {done}{in_flight} image(s) were in flight; every task already submitted is recorded "
            "in the task journal, so re-running the same command resumes it without paying again."
        )
    else:
        _err(f"interrupted: {done}no task was in flight, so nothing more was paid.")


def _report_result(job: RetouchJob, reporter: BatchReporter, result: BatchResult) -> int:
    for index in sorted(reporter.written):
        _out(str(reporter.written[index]))
    failures = [(f.index, f"{f.code}: {_one_line(f.error)}") for f in result.failures]
    failures += list(reporter.write_errors.items())
    for index, text in sorted(failures):
        _err(f"error: image {index + 1} ({job.inputs[index].name}): {text}")
    _err(_summary(result, len(failures)))
    return EXIT_FAILED if failures else EXIT_OK


def _client_settings(job: RetouchJob) -> ClientSettings:
    if job.poll is None:
        return ClientSettings(timeout=job.timeout)
    return ClientSettings(timeout=job.timeout, poll_initial=job.poll, poll_max=job.poll)


def _summary(result: BatchResult, failed: int) -> str:
    counts = result.counts()
    local = f"{counts['local']} local, " if counts.get("local") else ""
    return (
        f"summary: {len(result.outcomes)} image(s): {local}{counts['new']} new, {counts['cached']} cached, "
        f"{counts['resumed']} resumed, {failed} failed; {result.credits_spent} credits spent"
    )


def _cmd_retouch(args: argparse.Namespace) -> int:
    job, problems = validate_retouch(args)
    if job is None:
        for problem in problems:
            _err(f"error: {problem}")
        return EXIT_USAGE
    if job.folder is not None:
        try:
            job.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            _err(f"error: -o: cannot create the folder {job.folder}: {error.strerror or error}")
            return EXIT_USAGE
    return run_job(build_backend(args.backend, job, no_cache=args.no_cache), job)


BACKENDS = ("api", "local")


def build_backend(name: str, job: RetouchJob, *, no_cache: bool = False) -> RetouchBackend:
    """The backend `--backend` names: the paid API (key from the environment) or the offline engine."""
    if name == "local":
        from .local.backend import LocalBackend

        return LocalBackend()
    from .backend import ApiBackend

    return ApiBackend.from_environment(settings=_client_settings(job), use_cache=False if no_cache else None)


# -- other commands -----------------------------------------------------------------------------


def _cmd_filters(args: argparse.Namespace) -> int:
    _out(f"{0:>2}  {NO_FILTER}")
    for number, name in enumerate(FILTER_NAMES, start=1):
        _out(f"{number:>2}  {name}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import format_report, run_demo

    target = Path(args.output)
    if target.exists() and not target.is_dir():
        _err(f"error: -o {args.output}: exists and is not a folder.")
        return EXIT_USAGE
    try:
        result = run_demo(target)
    except BeautyError as error:
        _err(f"error: the demo failed: {_one_line(error)}")
        return EXIT_FAILED
    except OSError as error:
        _err(f"error: -o {args.output}: cannot write the demo images: {error.strerror or error}")
        return EXIT_USAGE
    _out(format_report(result))
    return EXIT_OK


def _human_size(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop returns


def _open_cache():
    """The result cache at its usual place (with the limits from the environment), or None if absent."""
    from .result_cache import ResultCache
    from .storage_paths import cache_dir, cache_settings, state_dir

    directory = cache_dir(state_dir())
    settings = cache_settings()
    if not directory.is_dir():
        return directory, settings, None
    return directory, settings, ResultCache(directory, max_bytes=settings.max_bytes, max_age=settings.max_age)


def _cmd_cache_info(args: argparse.Namespace) -> int:
    directory, settings, cache = _open_cache()
    stats = cache.stats() if cache is not None else None
    _out(f"directory: {directory}" + ("" if cache is not None else " (not created yet)"))
    _out(f"entries: {stats.entries if stats else 0}")
    _out(
        f"total size: {_human_size(stats.total_bytes if stats else 0)} "
        f"(limit {_human_size(settings.max_bytes)}, entries older than {settings.max_age / 86400:g} days are dropped)"
    )
    if not settings.enabled:
        _out("caching is switched off (FACE_BEAUTY_CACHE); `retouch` neither reads nor writes it.")
    return EXIT_OK


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    directory, _settings, cache = _open_cache()
    removed = cache.clear() if cache is not None else 0
    _out(f"removed {removed} cached result(s) from {directory}")
    return EXIT_OK
