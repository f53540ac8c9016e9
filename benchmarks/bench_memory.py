"""Peak memory of the CLI process: flat however many inputs (goal: 100 images within 10 % of 16; 16 x
2048 px at concurrency 8 under 500 MB).

Run: `python benchmarks/bench_memory.py [--counts 16,100] [--size 2048] [--concurrency 8] [--repo PATH]`.
Starts the emulator as its own process (T = 0.5 s, JPEG results, so it keeps up), writes `max(counts)`
different portraits of `--size` px as JPEG files, then runs `python -m beauty_api retouch` from `--repo`
(default this checkout; an export of main gives the "before") on the first N of them, with default
settings and a fresh state folder each time. The CLI runs under a small wrapper that prints the process's
own peak resident set size (ru_maxrss) when it ends, so the emulator is never counted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_user_path import HERE, SAMPLE, EmulatorProcess, cli_env, run_retouch

GOAL_MB = 500
FLAT_RATIO = 1.10
WRAPPER = """
import resource, sys
sys.argv = ["beauty_api", *sys.argv[1:]]
from beauty_api.cli import main
code = main(sys.argv[1:])
print(f"PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
sys.exit(code)
"""


class JpegEmulator(EmulatorProcess):
    @staticmethod
    def options(processing: float) -> list[str]:
        return [*EmulatorProcess.options(processing), "--result-format", "JPEG"]


def write_inputs(folder: Path, count: int, size: int) -> list[Path]:
    with Image.open(SAMPLE) as image:
        base = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        rgb = base.copy()
        rgb[:16, :16] = ((number * 53) % 256, (number * 101) % 256, (number // 256) * 40)
        path = folder / f"portrait_{number:04d}.jpg"
        Image.fromarray(rgb).save(path, quality=92)
        paths.append(path)
    return paths


def peak_mb(
    repo: Path, env: dict[str, str], inputs: Sequence[Path], output: Path, concurrency: int
) -> tuple[float, float]:
    stderr, wall = run_retouch(
        repo, env, [*map(str, inputs), "-o", str(output), "--concurrency", str(concurrency)], ("-c", WRAPPER)
    )
    line = next(text for text in stderr.splitlines() if text.startswith("PEAK_RSS_KB="))
    return int(line.split("=", 1)[1]) / 1024, wall


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="16,100")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repo", type=Path, default=HERE)
    args = parser.parse_args(argv)
    counts = [int(text) for text in args.counts.split(",")]
    print(
        f"peak RSS of the CLI from {args.repo}: {args.size} px JPEG inputs, --concurrency {args.concurrency}"
    )
    emulator = JpegEmulator(0.5)
    peaks = {}
    try:
        with tempfile.TemporaryDirectory(prefix="face-beauty-memory-") as folder:
            root = Path(folder)
            inputs = write_inputs(root / "in", max(counts), args.size)
            for count in counts:
                state = root / f"state-{count}"
                env = cli_env(emulator.base_url, state)
                peak, wall = peak_mb(args.repo, env, inputs[:count], root / f"out-{count}", args.concurrency)
                peaks[count] = peak
                print(f"  {count:>4} images: peak {peak:7.1f} MB, {wall:6.1f} s", flush=True)
    finally:
        emulator.stop()
    smallest, largest = min(counts), max(counts)
    if 16 in peaks and args.size == 2048 and args.concurrency == 8:
        print(f"  16 x 2048 px at c=8 under {GOAL_MB} MB: {'met' if peaks[16] < GOAL_MB else 'MISSED'}")
    if largest != smallest:
        ratio = peaks[largest] / peaks[smallest]
        print(
            f"  {largest} vs {smallest} images: x{ratio:.2f} (goal within {FLAT_RATIO:g}: {'met' if ratio <= FLAT_RATIO else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
