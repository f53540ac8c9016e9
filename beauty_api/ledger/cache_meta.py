"""The small JSON note stored with each cached result, with anything URL- or secret-looking left out.

Result URLs may carry a signed token, so neither they nor keys named like secrets ever reach the
cache index; the bytes are what matters.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

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
