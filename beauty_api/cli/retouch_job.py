"""`retouch` before anything is paid: every option, input and setup check, as one `RetouchJob`."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError, ImageError, InvalidParameterError
from ..params import (
    SLIDER_NAMES,
    BeautyParams,
)
from ..run.concurrency import MAX_CONCURRENCY, check_concurrency
from ..timeouts import DEFAULT_TIMEOUT, check_timeout
from .output import one_line
from .output_paths import plan_outputs

if TYPE_CHECKING:
    from ..codec import SourceImage
    from ..run.backend import RetouchOptions


# The option the user typed, for each API field (error messages name the option).
FIELD_FLAGS: dict[str, str] = {
    **{name: "--" + name.replace("_", "-") for name in SLIDER_NAMES},
    "filter_type": "--filter",
}


@dataclass(frozen=True)
class RetouchJob:
    """A fully validated retouch: nothing in here can fail for a reason known before sending."""

    inputs: list[Path]
    outputs: list[Path]
    sources: Sequence[SourceImage]  # each file decoded when its turn comes (codec.lazy_files)
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
            BeautyParams.from_mapping({name: value})
        except InvalidParameterError as error:
            problems.append(_flag_message(error))
    if problems:
        return None, problems
    return BeautyParams.from_mapping(values), []


def _parse_seconds(option: str, text: str, example: str) -> tuple[float, str | None]:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        return 0.0, f"{option}: {text!r} is not a positive number of seconds (e.g. {example})."
    return value, None


def _parse_timeout(text: str) -> tuple[float, str | None]:
    seconds, problem = _parse_seconds("--timeout", text, f"{DEFAULT_TIMEOUT:g}")
    if problem:
        return seconds, problem
    try:
        return check_timeout(seconds), None
    except InvalidParameterError as error:
        return 0.0, f"--{error}"


def _parse_concurrency(text: str) -> tuple[int, str | None]:
    try:
        return check_concurrency(int(text)), None
    except (ValueError, InvalidParameterError):
        return 0, f"--concurrency: {text!r} is out of range; allowed 1..{MAX_CONCURRENCY} images in flight."


def load_inputs(paths: Sequence[str]) -> tuple[list[Path], Sequence[SourceImage], list[str]]:
    """Check every input's header now, so a missing, non-image or wrong-size file stops the run
    before anything is paid; the pixels are decoded later, one image at a time, when its turn
    comes (a file damaged past its header fails then, alone, before its own request)."""
    from ..codec import MIN_SIDE, image_file_size, lazy_files

    inputs, problems = [], []
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
            width, height = image_file_size(path)
        except ImageError as error:
            problems.append(f"{where}: {one_line(error)}")
            continue
        if width < MIN_SIDE or height < MIN_SIDE:
            problems.append(
                f"{where}: {width} x {height} px is too small; the API needs at least {MIN_SIDE} px on each side."
            )
            continue
        inputs.append(path)
    return inputs, lazy_files(inputs), problems


def check_setup(use_cache: bool) -> list[str]:
    """Key, address and cache settings, resolved now: a setup problem is found before anything is sent."""
    from ..config import resolve_api_key, resolve_base_url
    from ..ledger.storage_paths import cache_settings

    checks = [resolve_api_key, resolve_base_url] + ([cache_settings] if use_cache else [])
    problems: list[str] = []
    for check in checks:
        try:
            check()
        except ConfigurationError as error:
            if str(error) not in problems:  # a broken config file spoils key and address alike: say it once
                problems.append(str(error))
    return problems


def validate_retouch(args: argparse.Namespace) -> tuple[RetouchJob | None, list[str]]:
    """Everything `retouch` needs, or every problem found (in the order of the command line)."""
    params, problems = parse_params(args)
    timeout, problem_t = _parse_timeout(args.timeout)
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
    from ..run.backend import RetouchOptions

    options = RetouchOptions(
        mode="sync" if args.sync else "async",
        keep_returned_size=args.keep_size,
        use_cache=not args.no_cache,
    )
    job = RetouchJob(inputs, outputs, sources, params, options, timeout, poll, concurrency, folder)
    return job, []
