"""`demo`: the offline demo (emulator on loopback, bundled portrait), reported on stdout."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import BeautyError
from .output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err, one_line, out


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo_run import format_report, run_demo

    target = Path(args.output)
    if target.exists() and not target.is_dir():
        err(f"error: -o {args.output}: exists and is not a folder.")
        return EXIT_USAGE
    try:
        result = run_demo(target)
    except BeautyError as error:
        err(f"error: the demo failed: {one_line(error)}")
        return EXIT_FAILED
    except OSError as error:
        err(f"error: -o {args.output}: cannot write the demo images: {error.strerror or error}")
        return EXIT_USAGE
    out(format_report(result))
    return EXIT_OK
