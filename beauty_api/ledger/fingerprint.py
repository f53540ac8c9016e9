"""The identity of a paid request: the key of the task journal and of the result cache."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from ..config import normalise_base_url

# Bump when the meaning of a fingerprint changes, so old journal/cache rows stop matching.
# 2: the normalised API address is part of it (a result from the emulator is never served for
# the real API, nor one account's gateway's for another's).
FINGERPRINT_VERSION = "2"


def request_fingerprint(
    endpoint: str, mode: str, fields: Mapping[str, str], image_bytes: bytes, *, base_url: str
) -> str:
    """Hex sha256 over the API address, the endpoint path, the mode, every form field and the uploaded bytes.

    Two requests with the same fingerprint would be answered with the same result, so the
    second one need never be paid for. `base_url` is normalised (config.normalise_base_url),
    so two spellings of one address match and two addresses never do. The API key is
    deliberately not part of it.
    """
    digest = hashlib.sha256()
    digest.update(f"v{FINGERPRINT_VERSION}\n{normalise_base_url(base_url)}\n{endpoint}\n{mode}\n".encode())
    for name in sorted(fields):
        digest.update(f"{name}={fields[name]}\n".encode())
    digest.update(hashlib.sha256(image_bytes).digest())
    return digest.hexdigest()
