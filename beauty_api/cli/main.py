"""`main()`: parse the command line, run the command, turn setup errors and Ctrl-C into exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ConfigurationError, LedgerUnavailable
from .output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, err, logging_to_stderr
from .parser import UsageError, build_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status instead of exiting (so tests can call it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        err(f"error: {error}")
        return EXIT_USAGE
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    with logging_to_stderr(args.verbose):
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except ConfigurationError as error:
        err(f"error: {error}")
        return EXIT_USAGE
    except LedgerUnavailable as error:
        err(f"error: {error}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        err("interrupted; nothing was submitted." if args.command == "retouch" else "interrupted.")
        return EXIT_INTERRUPTED
