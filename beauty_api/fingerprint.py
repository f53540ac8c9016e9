"""The identity of a paid request: the key of the task journal and of the result cache."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

# Bump when the meaning of a fingerprint changes, so old journal/cache rows stop matching.
FINGERPRINT_VERSION = "1"


def request_fingerprint(endpoint: str, mode: str, fields: Mapping[str, str], image_bytes: bytes) -> str:
    """Hex sha256 over the endpoint path, the mode, every form field and the exact uploaded bytes.

    Two requests with the same fingerprint would be answered with the same result, so the
    second one need never be paid for. The API key is deliberately not part of it.
    """
    digest = hashlib.sha256()
    digest.update(f"v{FINGERPRINT_VERSION}\n{endpoint}\n{mode}\n".encode())
    for name in sorted(fields):
        digest.update(f"{name}={fields[name]}\n".encode())
    digest.update(hashlib.sha256(image_bytes).digest())
    return digest.hexdigest()
