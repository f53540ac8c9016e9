"""The overall limit of one retouch: its one default and its one range check.

A module of its own, importing nothing heavy, so the CLI's parser (`--help`, `filters`) can show
the default without importing requests or numpy; the client, the CLI and the Options node all
use these names.
"""

from __future__ import annotations

from .errors import InvalidParameterError

# The overall limit of one retouch (submit, polls, download), and the range a user may choose for it
# (the Options node's widget and the CLI's --timeout).
DEFAULT_TIMEOUT = 300.0
TIMEOUT_MIN, TIMEOUT_MAX = 10.0, 3600.0


def check_timeout(seconds: object) -> float:
    """A user's choice of timeout, in TIMEOUT_MIN..TIMEOUT_MAX seconds; InvalidParameterError otherwise."""
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or seconds != seconds  # NaN
        or not TIMEOUT_MIN <= float(seconds) <= TIMEOUT_MAX
    ):
        raise InvalidParameterError(
            f"timeout: {seconds!r} is out of range; allowed {TIMEOUT_MIN:g}..{TIMEOUT_MAX:g} seconds."
        )
    return float(seconds)
