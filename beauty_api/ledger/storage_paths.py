"""Where the task journal and the result cache live, and the cache settings from the environment.

One ledger per OS user, shared by the command line, the ComfyUI nodes and Python callers:
`FACE_BEAUTY_STATE_DIR` if set, else the per-user cache directory of the platform. ComfyUI's
user folder held its own ledger before; `legacy_comfy_dir` names it and state_merge.py takes it
over on first use. How the files inside are kept private is `private_store.py`'s job.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .journal import TaskJournal
    from .result_cache import NullCache, ResultCache

log = logging.getLogger(__name__)

STATE_DIR_ENV = "FACE_BEAUTY_STATE_DIR"
CACHE_ENV = "FACE_BEAUTY_CACHE"
CACHE_MAX_MB_ENV = "FACE_BEAUTY_CACHE_MAX_MB"
CACHE_MAX_DAYS_ENV = "FACE_BEAUTY_CACHE_MAX_DAYS"

APP_DIR_NAME = "face-beauty-pro"  # under the per-user cache directory
COMFY_DIR_NAME = "face_beauty_pro"  # under ComfyUI's user directory
JOURNAL_FILE = "journal.sqlite3"
TIMINGS_FILE = "timings.sqlite3"
CACHE_DIR = "cache"

DEFAULT_CACHE_MAX_MB = 2048
DEFAULT_CACHE_MAX_DAYS = 30.0
MIB = 1024 * 1024
DAY = 24 * 3600.0

_OFF = frozenset({"0", "off", "false", "no"})
_ON = frozenset({"", "1", "on", "true", "yes"})


# -- where -------------------------------------------------------------------------------------


def user_cache_root(
    *,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Path:
    """The platform's per-user cache directory (XDG on Linux, ~/Library/Caches, %LOCALAPPDATA%)."""
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    if platform.startswith("win"):
        local = environ.get("LOCALAPPDATA", "").strip()
        return Path(local) if local else home / "AppData" / "Local"
    if platform == "darwin":
        return home / "Library" / "Caches"
    xdg = environ.get("XDG_CACHE_HOME", "").strip()
    # The XDG spec says a relative value is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg)
    return home / ".cache"


def state_dir(
    *,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
    home: Path | None = None,
) -> Path:
    """The directory of the journal and the cache. Not created here: the stores create it (0o700).

    Precedence: env FACE_BEAUTY_STATE_DIR > the per-user cache dir. Every front-end of one OS
    user gets the same folder, so they share one ledger.
    """
    environ = os.environ if environ is None else environ
    override = environ.get(STATE_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser().absolute()
    return user_cache_root(platform=platform, environ=environ, home=home) / APP_DIR_NAME


def legacy_comfy_dir(comfy_user_dir: Path) -> Path:
    """Where ComfyUI kept its own ledger before it joined the per-user one (taken over on first use)."""
    return Path(comfy_user_dir) / COMFY_DIR_NAME


def journal_path(state: Path) -> Path:
    """The task journal's SQLite file inside a state directory."""
    return Path(state) / JOURNAL_FILE


def timings_path(state: Path) -> Path:
    """The task-duration history's SQLite file (what the poll schedule learns from)."""
    return Path(state) / TIMINGS_FILE


def cache_dir(state: Path) -> Path:
    """The result cache's directory (index + blobs) inside a state directory."""
    return Path(state) / CACHE_DIR


# -- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheSettings:
    """Result-cache switches read from the environment."""

    enabled: bool = True
    max_bytes: int = DEFAULT_CACHE_MAX_MB * MIB
    max_age: float = DEFAULT_CACHE_MAX_DAYS * DAY


def cache_enabled_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """FACE_BEAUTY_CACHE: 0/off/false/no switch the cache off; unset, 1/on/true/yes keep it on."""
    environ = os.environ if environ is None else environ
    raw = environ.get(CACHE_ENV, "").strip().lower()
    if raw in _OFF:
        return False
    if raw in _ON:
        return True
    raise ConfigurationError(
        f"{CACHE_ENV}={environ.get(CACHE_ENV)!r} is not understood; "
        "use 0, off, false or no to switch the result cache off, or 1, on, true or yes to keep it on."
    )


def cache_settings(environ: Mapping[str, str] | None = None) -> CacheSettings:
    """All cache settings from the environment; a malformed value raises ConfigurationError."""
    environ = os.environ if environ is None else environ
    enabled = cache_enabled_from_env(environ)
    max_mb = _env_number(
        environ,
        CACHE_MAX_MB_ENV,
        DEFAULT_CACHE_MAX_MB,
        integer=True,
        minimum=0,
        form="a whole number of megabytes (MiB) >= 0, e.g. 2048",
    )
    max_days = _env_number(
        environ,
        CACHE_MAX_DAYS_ENV,
        DEFAULT_CACHE_MAX_DAYS,
        integer=False,
        minimum=None,
        form="a number of days > 0, e.g. 30 or 0.5",
    )
    if max_days <= 0:
        raise ConfigurationError(
            f"{CACHE_MAX_DAYS_ENV}={environ.get(CACHE_MAX_DAYS_ENV)!r} is not valid; expected a number of days > 0, e.g. 30 or 0.5."
        )
    return CacheSettings(enabled=enabled, max_bytes=int(max_mb) * MIB, max_age=float(max_days) * DAY)


def _env_number(
    environ: Mapping[str, str],
    name: str,
    default: float,
    *,
    integer: bool,
    minimum: float | None,
    form: str,
) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value: float = int(raw) if integer else float(raw)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")) or (minimum is not None and value < minimum):
        raise ConfigurationError(f"{name}={raw!r} is not valid; expected {form}.")
    return value


# -- opening the stores ------------------------------------------------------------------------


def open_result_cache(state: Path, *, enabled: bool | None = None) -> ResultCache | NullCache:
    """The result cache under `state`, or a NullCache when switched off (arg, else FACE_BEAUTY_CACHE).

    An explicit `enabled` wins over the environment. A cache that cannot be set up (read-only
    disk...) degrades to a NullCache with a warning: results are still returned, just not kept.
    """
    from .result_cache import NullCache, ResultCache

    if enabled is None:
        enabled = cache_enabled_from_env()
    if not enabled:
        return NullCache()
    settings = cache_settings({k: v for k, v in os.environ.items() if k != CACHE_ENV})
    try:
        return ResultCache(cache_dir(state), max_bytes=settings.max_bytes, max_age=settings.max_age)
    except OSError as error:
        log.warning(
            "The result cache at %s cannot be used (%s); results will not be kept on disk.",
            cache_dir(state),
            error,
        )
        return NullCache()


def open_journal(state: Path) -> TaskJournal:
    """The task journal under `state`. Never raises for disk trouble: the journal degrades itself."""
    from .journal import TaskJournal

    return TaskJournal(journal_path(state))
