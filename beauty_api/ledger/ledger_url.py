"""FACE_BEAUTY_LEDGER_URL: where a shared (PostgreSQL) ledger is, shown without secrets, and its driver.

One setting moves the journal and the result cache of every worker into one PostgreSQL
database: `FACE_BEAUTY_LEDGER_URL=postgresql://user@host[:port]/database` in the environment,
or `ledger_url = ...` in the config file's [ailabtools] section (config.py). Unset, the ledger
stays the embedded SQLite one. The password is never part of the setting: libpq reads it from
its own sources (PGPASSWORD, ~/.pgpass or PGPASSFILE, a service file), so it is in no config
value, log line or error. Every message names the ledger as `describe_ledger_url()` shows it:
scheme, user, host, port and database, never a password, query or fragment.

A URL set while the driver (psycopg 3) is missing is one clear error, never a silent fall back
to SQLite: workers that believe they share a ledger and do not would pay twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType
from urllib.parse import parse_qsl, unquote, urlsplit

from ..config import config_file_value
from ..errors import ConfigurationError

LEDGER_URL_ENV = "FACE_BEAUTY_LEDGER_URL"
CONFIG_KEY = "ledger_url"
SCHEMES = ("postgresql", "postgres")
INSTALL_HINT = 'pip install "face-beauty-pro[postgres]" (or pip install "psycopg[binary]>=3.1" in the Python that runs the pack)'
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def resolve_ledger_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The shared ledger's URL from FACE_BEAUTY_LEDGER_URL, else the config file; None: use SQLite.

    Raises ConfigurationError (secret-free, one line) for a value that cannot be a PostgreSQL
    address or that carries a password.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(LEDGER_URL_ENV, "").strip()
    if value:
        return check_ledger_url(value, f"the environment variable {LEDGER_URL_ENV}")
    from_file, path = config_file_value(CONFIG_KEY)
    if from_file:
        return check_ledger_url(from_file, f"`{CONFIG_KEY}` in the config file {path}")
    return None


def describe_ledger_url(url: str) -> str:
    """`postgresql://user@host:port/database`: what a person may see. Never raises, never shows a secret."""
    text = url.strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else "postgresql"
    if scheme not in SCHEMES:
        scheme = "postgresql"
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port
        user = unquote(parts.username or "")
    except ValueError:
        return f"{scheme}://(an address that cannot be parsed)"
    if ":" in host:
        host = f"[{host}]"
    user_part = f"{user}@" if user else ""
    port_part = f":{port}" if port is not None else ""
    database = unquote(parts.path.lstrip("/"))
    return f"{scheme}://{user_part}{host or '(local socket)'}{port_part}/{database}"


def check_ledger_url(url: str, source: str = "the ledger URL") -> str:
    """`url` stripped, if it names a PostgreSQL database without a password in it; else ConfigurationError."""
    text = url.strip()
    shown = describe_ledger_url(text)
    problem = _problem(text)
    if problem:
        raise ConfigurationError(
            f"The shared ledger address from {source} ({shown}) is not usable: {problem}. "
            f"Use {LEDGER_URL_ENV}=postgresql://USER@HOST[:PORT]/DATABASE, or unset it to keep the local ledger."
        )
    return text


def _problem(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as error:
        return f"it cannot be parsed ({error.__class__.__name__})"
    if parts.scheme.lower() not in SCHEMES:
        return "it does not start with postgresql://"
    if parts.password is not None or any(key.strip().lower() in _SECRET_PARAMETERS for key, _ in query):
        return (
            "it contains a password; remove it and give the password as libpq reads it "
            "(PGPASSWORD in the environment, or a line in ~/.pgpass / PGPASSFILE)"
        )
    if parts.fragment:
        return "it has a #fragment"
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        return "it names no database (the path must be /DATABASE)"
    if any(ch.isspace() for ch in text):
        return "it contains spaces"
    return ""


def load_driver(url: str) -> ModuleType:
    """psycopg, or ConfigurationError in one line when the URL is set but the driver is not installed."""
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            f"{LEDGER_URL_ENV} points to a shared ledger ({describe_ledger_url(url)}) but the PostgreSQL "
            f"driver is not installed; {INSTALL_HINT}, or unset {LEDGER_URL_ENV} to use the local ledger."
        ) from None
    return psycopg


def scrub(text: str, url: str, environ: Mapping[str, str] | None = None) -> str:
    """A driver's message on one line, without anything of the URL beyond what describe_ledger_url shows.

    libpq quotes option values it rejects; the password (PGPASSWORD) and every query value are
    replaced, whatever the driver chose to say.
    """
    environ = os.environ if environ is None else environ
    secrets: list[str] = [url.strip()]
    try:
        parts = urlsplit(url.strip())
        secrets += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
        secrets += [parts.password or "", parts.query, parts.fragment]
    except ValueError:
        secrets.append(url.strip())
    secrets.append(environ.get("PGPASSWORD", ""))
    line = " ".join(text.split())
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        line = line.replace(secret, "***")
    return line[:300]
