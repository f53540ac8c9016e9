"""Where the API key and the API address come from, and the ApiKey wrapper that keeps the key out of text.

Precedence, for both the key and the base URL: an explicit argument, then the environment
(`AILAB_API_KEY`, `AILAB_API_BASE_URL`), then an INI file (section `[ailabtools]`, keys
`api_key`, `base_url`), then (base URL only) the public default. The key is never a node
widget, so it never ends up in a saved workflow or a PNG's metadata.

Config file: `$AILAB_CONFIG_FILE` when set (and then only that file: an explicit choice should
not silently fall back to another one), else the first existing of `<pack root>/ailab_config.ini`
(git-ignored) and `$XDG_CONFIG_HOME/face-beauty-pro/config.ini` (default `~/.config/...`).
"""

from __future__ import annotations

import configparser
import hmac
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from .errors import ConfigurationError

ENV_API_KEY = "AILAB_API_KEY"
ENV_BASE_URL = "AILAB_API_BASE_URL"
ENV_CONFIG_FILE = "AILAB_CONFIG_FILE"
DEFAULT_BASE_URL = "https://www.ailabapi.com"
CONFIG_SECTION = "ailabtools"
CONFIG_FILE_NAME = "ailab_config.ini"
KEY_SIGNUP_URL = "https://www.ailabtools.com"
PACK_ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger(__name__)

_REDACTED = "ApiKey(<redacted>)"
_QUOTES = ("'", '"')
_warned_paths: set[Path] = set()


class ApiKey:
    """The API key; its repr/str/format are redacted so it cannot leak through logs or tracebacks.

    `reveal()` is the one way to read it (the transport calls it to build the request header).
    Pickling is refused (`__reduce__` raises TypeError): a pickle would write the secret into a
    file or another process, and nothing in the package needs it; `copy`/`deepcopy` return the
    same immutable object. Equality is by value (constant-time), so two resolutions compare equal.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        cleaned = _clean(value)
        if not cleaned:
            raise ConfigurationError("The API key is empty; " + _where_to_set_key())
        _check_key_shape(cleaned, "the given value")
        object.__setattr__(self, "_value", cleaned)

    def reveal(self) -> str:
        """The secret itself: only for the request header, never for text meant for people."""
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ApiKey is immutable")

    def __repr__(self) -> str:
        return _REDACTED

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return _REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApiKey):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((ApiKey, self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "ApiKey cannot be pickled (it would write the API key to disk or another process); "
            f"resolve it again there with {ENV_API_KEY} or the config file."
        )

    def __copy__(self) -> ApiKey:
        return self

    def __deepcopy__(self, memo: dict) -> ApiKey:
        return self


# -- config file ------------------------------------------------------------------------------


def _xdg_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "face-beauty-pro" / "config.ini"


def config_search_paths() -> list[Path]:
    """The config files looked at, in order (for the README, the CLI and error messages)."""
    explicit = os.environ.get(ENV_CONFIG_FILE, "").strip()
    if explicit:
        return [Path(explicit).expanduser()]
    return [PACK_ROOT / CONFIG_FILE_NAME, _xdg_config_path()]


@dataclass(frozen=True)
class _ConfigFile:
    path: Path | None
    values: dict[str, str]
    has_section: bool


def _find_config_file() -> Path | None:
    paths = config_search_paths()
    explicit = bool(os.environ.get(ENV_CONFIG_FILE, "").strip())
    for path in paths:
        if path.is_file():
            return path
    if explicit:
        raise ConfigurationError(
            f"{ENV_CONFIG_FILE} points to {paths[0]}, which is not a readable file; "
            f"fix the path or unset {ENV_CONFIG_FILE}."
        )
    return None


def _read_config() -> _ConfigFile:
    """The `[ailabtools]` values of the first config file found (empty when there is none)."""
    path = _find_config_file()
    if path is None:
        return _ConfigFile(None, {}, False)
    parser = configparser.ConfigParser(interpolation=None)  # keys may contain '%'
    try:
        with path.open(encoding="utf-8-sig") as handle:
            parser.read_file(handle)
    except configparser.Error as error:
        # configparser's own text quotes the offending line, which may hold the key: never show it.
        raise ConfigurationError(
            f"The config file {path} is not a valid INI file ({_parse_problem(error)}); it needs a "
            f"[{CONFIG_SECTION}] section with `api_key = <your key>`."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(
            f"The config file {path} cannot be read ({error.__class__.__name__}); check its permissions "
            "and that it is UTF-8 text."
        ) from None
    _warn_if_world_readable(path)
    if not parser.has_section(CONFIG_SECTION):
        return _ConfigFile(path, {}, False)
    return _ConfigFile(path, dict(parser.items(CONFIG_SECTION)), True)


def _parse_problem(error: configparser.Error) -> str:
    lineno = getattr(error, "lineno", None)
    errors = getattr(error, "errors", None)  # ParsingError: [(lineno, line), ...]
    if lineno is None and errors:
        lineno = errors[0][0]
    where = f" at line {lineno}" if lineno else ""
    return f"{error.__class__.__name__}{where}"


def _warn_if_world_readable(path: Path) -> None:
    """A key in a file other users can read is a shared key; say so once per file (POSIX only)."""
    if os.name != "posix" or path in _warned_paths:
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IROTH:
        _warned_paths.add(path)
        log.warning(
            "The config file %s is readable by other users of this machine; run `chmod 600 %s` "
            "so only you can read the API key in it.",
            path,
            path,
        )


# -- API key ----------------------------------------------------------------------------------


def _clean(value: str) -> str:
    """Strip whitespace and one pair of surrounding quotes (as pasted into a shell or INI file)."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES:
        text = text[1:-1].strip()
    return text


def _check_key_shape(key: str, source: str) -> None:
    """Refuse a key that cannot be one (inner spaces, line breaks, non-ASCII), without showing it."""
    if any(ch.isspace() for ch in key):
        raise ConfigurationError(
            f"The API key from {source} contains spaces or line breaks inside it, so it is not a valid "
            "key (probably a copy/paste accident); copy the key again from https://www.ailabtools.com "
            "(Personal Center) and paste it on one line."
        )
    if not all(33 <= ord(ch) < 127 for ch in key):
        raise ConfigurationError(
            f"The API key from {source} contains characters that cannot be part of a key (non-ASCII "
            "or control characters); copy the key again from https://www.ailabtools.com."
        )


def _where_to_set_key() -> str:
    first = config_search_paths()[0]
    return (
        f"set the environment variable {ENV_API_KEY}=<your key> (then restart ComfyUI if it runs the pack), or put\n"
        f"    [{CONFIG_SECTION}]\n"
        f"    api_key = <your key>\n"
        f"in {first} (then run `chmod 600` on that file). Get a key at {KEY_SIGNUP_URL} "
        "(sign up, then Personal Center > API KEY). To try the pack without a key, run "
        "`python -m beauty_api demo` from the pack's folder, which uses the offline emulator."
    )


def _key_from(value: str | None, source: str) -> ApiKey | None:
    if value is None:
        return None
    cleaned = _clean(value)
    if not cleaned:
        return None
    _check_key_shape(cleaned, source)
    return ApiKey(cleaned)


def resolve_api_key(explicit: str | ApiKey | None = None) -> ApiKey:
    """The key from, in order: `explicit`, $AILAB_API_KEY, the config file.

    An empty or blank value counts as not given (a UI field left empty falls through to the
    environment). No key anywhere raises ConfigurationError with the exact steps to set one.
    """
    if isinstance(explicit, ApiKey):
        return explicit
    key = _key_from(explicit, "the explicit argument")
    if key is None:
        key = _key_from(os.environ.get(ENV_API_KEY), f"the environment variable {ENV_API_KEY}")
    if key is not None:
        return key
    config = _read_config()
    key = _key_from(config.values.get("api_key"), f"the config file {config.path}")
    if key is not None:
        return key
    found = ""
    if config.path is not None:
        section = "an empty `api_key`" if config.has_section else f"no [{CONFIG_SECTION}] section"
        found = f" (the config file {config.path} has {section})"
    raise ConfigurationError(f"No AILabTools API key is set{found}. To fix it, " + _where_to_set_key())


# -- base URL ---------------------------------------------------------------------------------


def _validate_base_url(value: str, source: str) -> str:
    text = _clean(value)
    problem = _url_problem(text)
    if problem:
        raise ConfigurationError(
            f"The API base URL from {source} ({shown_address(text)}) is not usable: {problem}. Use an http(s) "
            f"address with a host, e.g. {DEFAULT_BASE_URL}, or unset {ENV_BASE_URL} to use that default."
        )
    return text.rstrip("/")


def shown_address(text: str) -> str:
    """What an error may show of a configured address: scheme, host, port and path, nothing else.

    A user name, password, query string or fragment may hold a secret (in plain or
    percent-encoded form), so they are never shown, not even in part."""
    try:
        parts = urlsplit(text.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<an address that cannot be parsed>"
    if parts.scheme.lower() not in ("http", "https") or not host:
        return "<not an http(s) address>"
    host = f"[{host}]" if ":" in host else host
    where = f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")
    plain = all(ch.isprintable() and not ch.isspace() and ch not in "%=;@" for ch in parts.path)
    path = parts.path if plain else "/..."
    hidden = bool(parts.username or parts.password or parts.query or parts.fragment) or not plain
    return f"'{where}{path}'" + (" (with the rest left out)" if hidden else "")


def _url_problem(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "it cannot be parsed (check the host and the port)"
    if parts.scheme.lower() not in ("http", "https"):
        return "it does not start with http:// or https://"
    if not parts.hostname:
        return "it has no host name"
    if parts.username or parts.password:
        return "it contains a user name or password (credentials do not belong in the URL)"
    if parts.query or parts.fragment or "?" in text or "#" in text:
        return "it has a query string or fragment (give only the address, e.g. https://host[/prefix])"
    if any(ch in parts.path for ch in "%=;@"):
        return "its path has characters an API address never needs (%, =, ; or @)"
    if any(ch.isspace() for ch in text):
        return "it contains spaces"
    return ""


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_base_url(url: str) -> str:
    """The identity of an API address: `scheme://host:port/prefix`, lower-case, explicit port, no trailing slash.

    Two spellings of one address (`HTTPS://Host/`, `https://host:443`) give the same text, two
    different addresses (the emulator on 127.0.0.1:8765, the real API) never do. The request
    fingerprint includes it, so a result paid for at one address is never served for another;
    per-address state (e.g. a history of task durations) keys on it too. Raises
    ConfigurationError for an address `resolve_base_url` would refuse.
    """
    text = _validate_base_url(url, "the given address")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    port = parts.port if parts.port is not None else _DEFAULT_PORTS[scheme]
    prefix = parts.path.rstrip("/")
    return f"{scheme}://{host}:{port}{prefix}"


def resolve_base_url(explicit: str | None = None) -> str:
    """The API root from, in order: `explicit`, $AILAB_API_BASE_URL, the config file, the default.

    Validated (http or https, with a host) and without a trailing slash, so the client can
    append `/api/...` paths.
    """
    if explicit is not None and _clean(explicit):
        return _validate_base_url(explicit, "the explicit argument")
    from_env = os.environ.get(ENV_BASE_URL)
    if from_env is not None and _clean(from_env):
        return _validate_base_url(from_env, f"the environment variable {ENV_BASE_URL}")
    config = _read_config()
    from_file = config.values.get("base_url")
    if from_file is not None and _clean(from_file):
        return _validate_base_url(from_file, f"the config file {config.path}")
    return DEFAULT_BASE_URL


# -- other settings of the config file ---------------------------------------------------------


def config_file_value(name: str) -> tuple[str | None, Path | None]:
    """A setting `name` of the config file's [ailabtools] section (blank counts as unset), and the file.

    For settings of other parts of the pack (e.g. `ledger_url`), read with the same search
    order and the same one-line errors as the key.
    """
    config = _read_config()
    value = config.values.get(name)
    if value is None or not _clean(value):
        return None, config.path
    return _clean(value), config.path
