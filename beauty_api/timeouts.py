"""The overall time limit of one retouch: its default and the range a user may choose.

In a module of its own (no requests, no numpy) so the command line can show and check
`--timeout` without loading the HTTP client; `client.py` re-exports all of it.
"""

from __future__ import annotations

from .errors import InvalidParameterError

# The overall limit of one retouch (submit, polls, download), and the range a user may choose for it
# (the Options node's widget and the CLI's --timeout): the one default and the one range check.
DEFAULT_TIMEOUT = 300.0
TIMEOUT_MIN, TIMEOUT_MAX = 10.0, 3600.0


def positive_seconds(value: object) -> bool:
    """A finite number > 0 (not a bool, not NaN)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value  # not NaN
        and 0 < value < float("inf")
    )


def check_timeout(seconds: object) -> float:
    """A user's choice of timeout, in TIMEOUT_MIN..TIMEOUT_MAX seconds; InvalidParameterError otherwise."""
    if not positive_seconds(seconds) or not TIMEOUT_MIN <= float(seconds) <= TIMEOUT_MAX:  # type: ignore[arg-type]
        raise InvalidParameterError(
            f"timeout: {seconds!r} is out of range; allowed {TIMEOUT_MIN:g}..{TIMEOUT_MAX:g} seconds."
        )
    return float(seconds)  # type: ignore[arg-type]
