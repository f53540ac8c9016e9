"""The command line: every command, option and help text (argparse), errors as one line."""

from __future__ import annotations

import argparse

from ..local.faces.limits import MAX_FACES
from ..params import (
    NO_FILTER,
    SLIDER_DEFAULT,
    SLIDER_DESCRIPTIONS,
    SLIDER_NAMES,
)
from ..run.concurrency import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from ..timeouts import DEFAULT_TIMEOUT
from ..version import VERSION
from .cache import cmd_cache_clear, cmd_cache_info
from .demo import cmd_demo
from .filters import cmd_filters
from .journal import add_journal_command
from .landmarks import add_parser as add_landmarks_parser
from .output import PROG
from .retouch import BACKENDS, cmd_retouch
from .retouch_job import FIELD_FLAGS

DEFAULT_DEMO_DIR = "face-beauty-demo"
SAVE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
DEFAULT_SUFFIX = ".png"


class UsageError(Exception):
    """A command line argparse cannot read; reported as one line, exit 2."""


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
    parser.add_argument("--version", action="version", version=f"face-beauty-pro {VERSION}")
    verbose_help = "debug logging to stderr (the API key is never shown)"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # The same flag after the subcommand; SUPPRESS keeps it from resetting the top-level value.
    verbose = _Parser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_retouch(commands, verbose)
    add_landmarks_parser(commands, [verbose])  # offline face analysis
    commands.add_parser(
        "filters", parents=[verbose], help="list the 35 filters (number and name)"
    ).set_defaults(handler=cmd_filters)
    demo = commands.add_parser(
        "demo",
        parents=[verbose],
        help="offline demo: the emulator on 127.0.0.1 retouches the bundled portrait (no key, no credits)",
    )
    demo.add_argument(
        "-o", "--output", default=DEFAULT_DEMO_DIR, metavar="DIR", help=f"default ./{DEFAULT_DEMO_DIR}"
    )
    demo.set_defaults(handler=cmd_demo)
    cache = commands.add_parser("cache", parents=[verbose], help="show or clear the result cache")
    actions = cache.add_subparsers(dest="cache_action", metavar="ACTION", required=True)
    actions.add_parser("info", parents=[verbose], help="directory, entries, total size").set_defaults(
        handler=cmd_cache_info
    )
    actions.add_parser("clear", parents=[verbose], help="remove every cached result").set_defaults(
        handler=cmd_cache_clear
    )
    add_journal_command(commands, verbose)
    return parser


def _add_retouch(commands: argparse._SubParsersAction, verbose: argparse.ArgumentParser) -> None:
    retouch = commands.add_parser(
        "retouch",
        parents=[verbose],
        help="retouch image files through the API (15 credits per new image)",
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
        help="check each task every SECONDS (default: around the moment it is expected to finish, "
        "learned from earlier tasks, at most 5 s apart); mainly for tests against the emulator",
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
    retouch.add_argument(
        "--max-faces",
        type=int,
        default=MAX_FACES,
        metavar="N",
        help=f"local backend: retouch at most N faces per image, the clearest first (default {MAX_FACES}; "
        "faces down to about 40 px wide are found)",
    )
    retouch.set_defaults(handler=cmd_retouch)
