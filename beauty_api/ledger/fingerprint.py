"""The identity of a paid request: the key of the task journal and of the result cache.

Version 3 hashes what the request means, not how it was encoded: the decoded pixels (and the
alpha channel), every form field, the endpoint, the mode, the API address and the upload
policy's version (codec.UPLOAD_POLICY_VERSION). A Pillow or zlib upgrade between a crash and the
re-run changes the PNG bytes but not the fingerprint, so the re-run still resumes and still
hits the cache. Version 2 hashed the uploaded bytes: `legacy_fingerprint` still computes it, and
the ledger reads a v2 row under it (the journal moves it to the v3 key on first claim, the cache
copies a v2 hit to its v3 key), so entries written before the change keep working.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from ..codec import UPLOAD_POLICY_VERSION, SourceImage
from ..config import normalise_base_url

FINGERPRINT_VERSION = "3"
LEGACY_VERSION = "2"  # the normalised API address and the exact uploaded bytes


def pixel_digest(source: SourceImage) -> bytes:
    """sha256 over the decoded pixels: size, RGB bytes and the alpha channel (if any)."""
    digest = hashlib.sha256()
    height, width = source.rgb.shape[:2]
    digest.update(f"{width}x{height}\n".encode())
    digest.update(memoryview(source.rgb.tobytes()))
    if source.alpha is None:
        digest.update(b"no-alpha")
    else:
        digest.update(b"alpha\n")
        digest.update(memoryview(source.alpha.tobytes()))
    return digest.digest()


def request_fingerprint(
    endpoint: str, mode: str, fields: Mapping[str, str], pixels: bytes, *, base_url: str
) -> str:
    """Hex sha256 over the API address, endpoint, mode, form fields, upload policy and `pixels`
    (`pixel_digest(source)`). Two requests with one fingerprint get the same answer, so the second
    is never paid for. `base_url` is normalised (two spellings match, two addresses never do).
    The API key is deliberately not part of it."""
    return _fingerprint(
        f"v{FINGERPRINT_VERSION}\n{normalise_base_url(base_url)}\n{endpoint}\n{mode}\n"
        f"upload-policy={UPLOAD_POLICY_VERSION}\n",
        fields,
        pixels,
    )


def legacy_fingerprint(
    endpoint: str, mode: str, fields: Mapping[str, str], image_bytes: bytes, *, base_url: str
) -> str:
    """The version-2 fingerprint (over the uploaded bytes), to find entries written before version 3."""
    return _fingerprint(
        f"v{LEGACY_VERSION}\n{normalise_base_url(base_url)}\n{endpoint}\n{mode}\n",
        fields,
        hashlib.sha256(image_bytes).digest(),
    )


def _fingerprint(head: str, fields: Mapping[str, str], content_digest: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(head.encode())
    for name in sorted(fields):
        digest.update(f"{name}={fields[name]}\n".encode())
    digest.update(content_digest)
    return digest.hexdigest()
