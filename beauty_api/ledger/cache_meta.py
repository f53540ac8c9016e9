"""The small JSON note stored with each cached result, with anything URL- or secret-looking left out.

Result URLs may carry a signed token, so neither they nor keys named like secrets ever reach the
cache index; the bytes are what matters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidParameterError

log = logging.getLogger(__name__)

MAX_META_BYTES = 4096
_SECRET_WORDS = ("key", "token", "secret", "password", "authorization", "signature", "url", "cookie")


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _clean(value: Any) -> Any:
    """JSON-friendly copy of `value` without URL-looking strings or secret-looking keys."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if not _looks_secret(str(k)) and not _is_url(v)}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value if not _is_url(v)]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def dump_meta(meta: Mapping[str, Any]) -> str:
    """The stored text of `meta`: cleaned, and '{}' when it would be larger than MAX_META_BYTES."""
    text = json.dumps(_clean(meta), sort_keys=True, default=str)
    if len(text.encode()) > MAX_META_BYTES:
        log.warning("Cache metadata of %d bytes is too large; stored without metadata.", len(text))
        return "{}"
    return text


def load_meta(text: str) -> dict[str, Any]:
    """The dict stored by `dump_meta`, or {} for anything unreadable."""
    try:
        meta = json.loads(text)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


@dataclass(frozen=True)
class CacheEntry:
    """What a cache stores for one `put`: the bytes, their SHA-256 and the cleaned meta text."""

    data: bytes
    sha256: str
    meta_text: str


def prepare_entry(
    key: object, data: bytes, meta: Mapping[str, Any] | None, max_bytes: int
) -> CacheEntry | None:
    """Check a `put` the same way in every cache: a bad key raises, a result larger than the
    whole cache is not kept (None, logged), anything else is hashed and its meta cleaned."""
    if not isinstance(key, str) or not key:
        raise InvalidParameterError(f"key must be a non-empty string, got {key!r}.")
    data = bytes(data)
    if len(data) > max_bytes:
        log.info(
            "A result of %d bytes is larger than the whole cache (%d bytes); not cached.",
            len(data),
            max_bytes,
        )
        return None
    return CacheEntry(data, hashlib.sha256(data).hexdigest(), dump_meta(meta or {}))
