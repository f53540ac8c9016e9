"""Naming network failures: was a request never sent, is it worth retrying, a secret-free reason.

Also the URL helpers every log line and error uses (host+path only: a signed result URL's query
string is a secret) and the loopback proxy bypass.
"""

from __future__ import annotations

import ipaddress
import ssl
from urllib.parse import urlsplit

import urllib3.exceptions as u3
from requests import exceptions as rex


def describe_url(url: str) -> str:
    """host[:port]/path of a URL, without scheme, user info or query string (safe for logs and errors)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if port:
        host = f"{host}:{port}"
    return host + (parts.path or "/")


def proxies_for(url: str) -> dict[str, None] | None:
    """Keep loopback traffic (the emulator, a local gateway) away from HTTP(S)_PROXY.

    Proxies from the environment are honoured for every other host (requests' trust_env); a
    proxy cannot reach this machine's loopback anyway. None values tell requests "no proxy".
    """
    host = (urlsplit(url).hostname or "").lower()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost" or host.endswith(".localhost")
    return {"http": None, "https": None, "all": None} if loopback else None


def host_of(url: str) -> str:
    return describe_url(url).split("/", 1)[0]


# -- classifying network failures -------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its args' exceptions (requests wraps urllib3 errors there) and its causes."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        item = todo.pop(0)
        if any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [a for a in getattr(item, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(item, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        for linked in (item.__cause__, item.__context__):
            if linked is not None:
                todo.append(linked)
    return seen


def never_sent(exc: rex.RequestException) -> bool:
    """True when the request provably never reached the server (so even a submit may be resent).

    Connect timeouts, refused connections, DNS failures and proxy connect failures happen before
    a byte of the request is sent. Anything else (read timeout, reset or dropped connection, a
    broken chunked answer, an SSL error that may be mid-stream) may come after the server got it.
    """
    if isinstance(exc, rex.ConnectTimeout):
        return True
    if isinstance(exc, rex.ReadTimeout | rex.ChunkedEncodingError):
        return False
    if isinstance(exc, rex.ProxyError):
        return True
    if isinstance(exc, rex.ConnectionError):
        for item in _chain(exc):
            if isinstance(item, u3.NewConnectionError | u3.ConnectTimeoutError | ConnectionRefusedError):
                return True
            if isinstance(item, ssl.SSLCertVerificationError):
                return True
    return False


def is_certificate_error(exc: BaseException) -> bool:
    return any(isinstance(item, ssl.SSLCertVerificationError) for item in _chain(exc))


def is_retryable_failure(exc: rex.RequestException) -> bool:
    """Network failures worth another attempt (for requests that are safe to resend)."""
    if is_certificate_error(exc):
        return False  # a certificate problem does not go away by itself
    return isinstance(
        exc,
        rex.ConnectionError | rex.Timeout | rex.ChunkedEncodingError | rex.ContentDecodingError,
    )


def failure_reason(exc: BaseException) -> str:
    """A short, secret-free description of a network failure (no URL, no headers)."""
    chain = _chain(exc)
    checks: list[tuple[type | tuple[type, ...], str]] = [
        (ssl.SSLCertVerificationError, "TLS certificate not trusted"),
        (u3.NameResolutionError, "host name not found"),
        (ConnectionRefusedError, "connection refused"),
        (rex.ConnectTimeout, "connect timeout"),
        (rex.ProxyError, "proxy error"),
        (rex.ReadTimeout, "no answer in time (read timeout)"),
        (rex.ChunkedEncodingError, "connection dropped while reading the answer"),
        (ConnectionResetError, "connection reset"),
        (rex.SSLError, "TLS error"),
        (u3.NewConnectionError, "cannot connect"),
        (u3.ProtocolError, "connection dropped"),
        (rex.ConnectionError, "connection failed"),
    ]
    for kind, text in checks:
        if any(isinstance(item, kind) for item in chain):
            return text
    return exc.__class__.__name__
