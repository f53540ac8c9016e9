"""Opening encoded image bytes safely: sniff the format first, check the size before decoding."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from PIL import Image, UnidentifiedImageError

from ..errors import ImageError
from .images import MAX_DECODE_PIXELS

_T = TypeVar("_T")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Formats we decode, by magic bytes. Pillow is only ever asked to open one of these, so no
# exotic plugin (EPS via Ghostscript, ...) can be reached from downloaded bytes.
_SNIFF: tuple[tuple[bytes, int, str], ...] = (
    (PNG_SIGNATURE, 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"WEBP", 8, "WEBP"),  # RIFF....WEBP, RIFF checked below
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
)


def _sniff(head: bytes) -> str | None:
    for magic, offset, name in _SNIFF:
        if head[offset : offset + len(magic)] == magic and (name != "WEBP" or head[:4] == b"RIFF"):
            return name
    return None


def _not_an_image(head: bytes, what: str, downloaded: bool) -> ImageError:
    shown = head[:16].hex(" ")
    text_hint = ""
    if head and all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head[:16]):
        text_hint = (
            " (it looks like text, e.g. an HTML or JSON error page)" if downloaded else " (it is a text file)"
        )
    return ImageError(
        f"{what} is not a PNG, JPEG or WEBP image (also accepted: GIF, BMP, TIFF); first bytes: {shown or 'none'}{text_hint}"
    )


def with_opened(
    stream: BinaryIO, what: str, convert: Callable[[Image.Image], _T], *, downloaded: bool = False
) -> _T:
    """Sniff, open with only that format's plugin, check the size from the header, then decode.

    `downloaded`: the bytes came from a server (a text body there is likely an error page).
    """
    head = stream.read(16)
    stream.seek(0)
    fmt = _sniff(head)
    if fmt is None:
        raise _not_an_image(head, what, downloaded)
    try:
        with Image.open(stream, formats=[fmt]) as image:
            _check_decode_size(image.size, what)
            image.load()
            return convert(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{what} claims a size too large to decode safely ({exc}); refusing it as a possible decompression bomb"
        ) from exc
    except UnidentifiedImageError as exc:
        raise _not_an_image(head, what, downloaded) from exc
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, MemoryError) as exc:
        raise ImageError(f"{what} could not be decoded as {fmt} (damaged or truncated?): {exc}") from exc


def peek_size(stream: BinaryIO, what: str) -> tuple[int, int]:
    """(width, height) from the header alone (format sniffed first); nothing is decoded."""
    head = stream.read(16)
    stream.seek(0)
    fmt = _sniff(head)
    if fmt is None:
        raise _not_an_image(head, what, False)
    try:
        with Image.open(stream, formats=[fmt]) as image:
            _check_decode_size(image.size, what)
            return image.size
    except UnidentifiedImageError as exc:
        raise _not_an_image(head, what, False) from exc
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageError(f"{what} could not be read as {fmt} (damaged or truncated?): {exc}") from exc


def _check_decode_size(size: tuple[int, int], what: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{what} has an invalid size {width} x {height}")
    if width * height > MAX_DECODE_PIXELS:
        raise ImageError(
            f"{what} is {width} x {height} px ({width * height / 1e6:.0f} MP), over the {MAX_DECODE_PIXELS / 1e6:.0f} MP "
            "limit; refusing to decode it (possible decompression bomb)"
        )
