"""`filters`: the 35 filter numbers and names."""

from __future__ import annotations

import argparse

from ..params import (
    FILTER_NAMES,
    NO_FILTER,
)
from .output import EXIT_OK, out


def cmd_filters(args: argparse.Namespace) -> int:
    out(f"{0:>2}  {NO_FILTER}")
    for number, name in enumerate(FILTER_NAMES, start=1):
        out(f"{number:>2}  {name}")
    return EXIT_OK
