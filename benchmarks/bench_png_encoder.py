"""Our PNG writer against Pillow's encoder, end to end: should the codec keep its own writer?

Run: `python benchmarks/bench_png_encoder.py [--rounds N]`. Runs bench_pipeline's batch case (16
images, concurrency 3 and 8, the emulator at T = 2 s) with each encoder in turn, alternating the
order every round so that a change in machine load hits both alike, and prints each run and the
medians. Issue 8 item 11's rule: switch to Pillow unless it loses more than 3% end to end.
Pillow is used at its fastest useful setting (compress_level=1, compress_type=Z_RLE).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_pipeline
import numpy as np
from PIL import Image

from beauty_api.codec import png_writer, upload_encoding
from beauty_api.emulator import Emulator

T = 2.0
IMAGES = 16


def pillow_png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return buffer.getvalue()


ENCODERS = {"own writer": png_writer.encode_png, "Pillow": pillow_png}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    walls: dict[tuple[str, int], list[float]] = {(name, c): [] for name in ENCODERS for c in (3, 8)}
    try:
        with Emulator(processing_seconds=T) as emulator:
            variants = bench_pipeline.Variants()
            for number in range(rounds):
                order = list(ENCODERS) if number % 2 == 0 else list(reversed(ENCODERS))
                for name in order:
                    upload_encoding.encode_png = ENCODERS[name]
                    for concurrency in (3, 8):
                        row, _ = bench_pipeline.bench_batch(emulator, variants, T, IMAGES, concurrency)
                        walls[(name, concurrency)].append(float(row.measured.split()[0]))
                        print(f"round {number + 1}  {name:10}  c={concurrency}: {row.measured}", flush=True)
    finally:
        upload_encoding.encode_png = png_writer.encode_png
    for concurrency in (3, 8):
        own = statistics.median(walls[("own writer", concurrency)])
        pillow = statistics.median(walls[("Pillow", concurrency)])
        print(
            f"c={concurrency}: own writer {own:.2f} s, Pillow {pillow:.2f} s (medians of {rounds}); "
            f"Pillow {100 * (pillow - own) / own:+.1f}%"
        )


if __name__ == "__main__":
    main()
