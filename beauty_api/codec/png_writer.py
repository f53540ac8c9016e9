"""Our own PNG writer: Average filter + zlib Z_RLE, rows deflated in two halves on two threads.

Kept over Pillow's encoder because it measured faster for upload-sized photos, for files a few
percent larger, and the encode sits on every upload's critical path. The figures and the command
that makes them (`benchmarks/bench_png_encoder.py`) are in docs/development.md, "PNG writer".
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .safe_open import PNG_SIGNATURE

# PNG rows are filtered and deflated in two halves on two threads from this size on (see _png_idat).
# Four parts measured slower than two on a 2-core machine.
_PNG_SPLIT_BYTES = 512 * 1024


def _avg_filter(rgb: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """PNG filter type 3 (Average) for every row, as (H, 1 + 3W) bytes ready for deflate.

    `previous` is the row above the first one (for sampling strips), zeros when absent.
    Average filtering is vectorised in uint8 arithmetic: floor((a + b) / 2) = a>>1 + b>>1 + (a&b&1).
    """
    height, width, _ = rgb.shape
    rows = rgb.reshape(height, width * 3)
    up = np.empty_like(rows)
    up[0] = 0 if previous is None else previous.reshape(-1)
    up[1:] = rows[:-1]
    prediction = np.empty_like(rows)
    left, above = rows[:, :-3], up[:, 3:]
    np.right_shift(left, 1, out=prediction[:, 3:])
    prediction[:, 3:] += above >> 1
    prediction[:, 3:] += left & above & 1
    np.right_shift(up[:, :3], 1, out=prediction[:, :3])
    filtered = np.empty((height, width * 3 + 1), np.uint8)
    filtered[:, 0] = 3
    np.subtract(rows, prediction, out=filtered[:, 1:])  # modulo 256, as PNG wants
    return filtered


def _deflate_part(part: np.ndarray, last: bool) -> bytes:
    """Raw deflate (Z_RLE) of one part; non-final parts end byte-aligned with a sync flush."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
    body = compressor.compress(part.data.cast("B"))
    return body + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def _filter_and_deflate(rgb: np.ndarray, start: int, stop: int, last: bool) -> tuple[np.ndarray, bytes]:
    """Rows start..stop filtered (with the row above as context) and deflated."""
    previous = rgb[start - 1] if start > 0 else None
    filtered = _avg_filter(rgb[start:stop], previous)
    return filtered, _deflate_part(filtered, last)


def _png_idat(rgb: np.ndarray) -> bytes:
    """The zlib stream of the filtered rows, filtered and deflated in two halves on two threads.

    numpy and zlib both release the GIL, so the halves really run in parallel. The raw deflate
    streams concatenate into one valid stream (the first ends with a sync flush), and Z_RLE only
    looks one byte back, so the split costs nothing measurable in size. The split depends only on
    the image size, never on the core count, so the bytes are the same on every machine.
    """
    height, width, _ = rgb.shape
    halves = 2 if height >= 2 and height * (width * 3 + 1) >= _PNG_SPLIT_BYTES else 1
    bounds = [(i * height // halves, (i + 1) * height // halves, i == halves - 1) for i in range(halves)]
    if halves > 1 and (os.cpu_count() or 1) > 1:
        with ThreadPoolExecutor(max_workers=halves) as pool:
            results = list(pool.map(lambda b: _filter_and_deflate(rgb, *b), bounds))
    else:
        results = [_filter_and_deflate(rgb, *b) for b in bounds]
    checksum = 1
    for filtered, _ in results:
        checksum = zlib.adler32(filtered.data.cast("B"), checksum)
    return b"\x78\x01" + b"".join(body for _, body in results) + struct.pack(">I", checksum)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def encode_png(rgb: np.ndarray) -> bytes:
    """8-bit RGB PNG, no metadata."""
    height, width, _ = rgb.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", _png_idat(rgb)),
            _png_chunk(b"IEND", b""),
        )
    )


def estimate_png_bytes(rgb: np.ndarray) -> int:
    """PNG size predicted from ~1/32 of the rows, in 8 strips spread over the image.

    Measured within -2%..+7% on photos, noise and upscaled portraits (1/16 was no better); flat
    graphics are over-estimated, which only matters near the cap, where they never are.
    """
    height, width, _ = rgb.shape
    strips = 8
    strip_rows = max(4, height // (32 * strips))
    if strips * strip_rows >= height:
        return len(encode_png(rgb))
    starts = np.linspace(1, height - strip_rows, strips).astype(int)
    filtered = [_avg_filter(rgb[start : start + strip_rows], rgb[start - 1]) for start in starts]
    sample = np.concatenate(filtered)
    compressed = len(_deflate_part(sample, last=True))
    return int(compressed / sample.size * height * (width * 3 + 1)) + 64
