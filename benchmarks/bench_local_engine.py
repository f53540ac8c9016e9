"""Local engine timings and memory (issue: the offline retouch engine), model loading excluded.

Run: `python benchmarks/bench_local_engine.py [--repeat N] [--device cpu|cuda] [--threads T]`.
Prints a table with the goals and PASS/MISS (no pass/fail exit status; figures on a shared machine
are noisy: run it on an idle one to quote them).

Rows (all six sliders at 50 and the look "Sakura", on the bundled 512x512 portrait, upscaled bicubic
for the larger sizes; the face then fills the same share of the frame):
- 512x512 and 1024x1024: one image, face analysis included (goals 60 ms and 150 ms);
- 16 frames of 512x512 moving 2 px per frame, tracked (goal 1.2 s for the 16);
- 4096x4096: one image (goal 1.5 s) and the peak resident memory of a fresh process that loads the
  models and retouches it (goal 1.5 GB; measured in a child process so nothing else counts);
- with `--device cuda`: 1920x1080 frames per second (tracked frames).
Each time is the median of `--repeat` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beauty_api.codec import SourceImage  # noqa: E402
from beauty_api.local.retouch.backend import LocalBackend  # noqa: E402
from beauty_api.local.retouch.engine import LocalEngine  # noqa: E402
from beauty_api.params import BeautyParams  # noqa: E402

SAMPLE = ROOT / "beauty_api" / "data" / "sample_portrait.png"
PARAMS = BeautyParams(
    whitening=50,
    smoothing=50,
    thinface=50,
    shrink_face=50,
    enlarge_eye=50,
    remove_eyebrow=50,
    filter_type="Sakura",
)


def portrait(size: int | tuple[int, int]) -> np.ndarray:
    width, height = (size, size) if isinstance(size, int) else size
    image = Image.open(SAMPLE).convert("RGB")
    if (width, height) != image.size:
        scale = max(width / image.width, height / image.height)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC
        )
        left, top = (image.width - width) // 2, (image.height - height) // 2
        image = image.crop((left, top, left + width, top + height))
    return np.asarray(image).copy()


def moving_frames(base: np.ndarray, count: int, step: int = 2) -> list[np.ndarray]:
    padded = np.pad(base, ((0, 0), (step * count, 0), (0, 0)), mode="edge")
    width = base.shape[1]
    return [
        np.ascontiguousarray(padded[:, step * (count - k) : step * (count - k) + width]) for k in range(count)
    ]


def retouch_video(engine: LocalEngine, frames: list[np.ndarray]) -> None:
    """The frames as one video, the way the Local node and `retouch --video` run them."""
    sources = [SourceImage(np.ascontiguousarray(frame)) for frame in frames]
    backend = LocalBackend(engine, video=sources)
    for index, source in enumerate(sources):
        backend.retouch(source, PARAMS, index=index)


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall-clock and median CPU seconds (this process, all threads) of `call`, after a warm-up.

    On a busy shared machine the wall clock mostly measures the other jobs; the CPU time does not,
    and on an idle machine the wall clock is at most the CPU time (the work is spread over threads).
    """
    call()  # warm-up: first-use caches (LUT filters, kernels)
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def peak_rss_child(size: int, device: str, threads: int) -> tuple[float, float]:
    """(seconds, peak RSS in GiB) of a fresh process that loads the models and retouches one image."""
    command = [sys.executable, __file__, "--child", str(size), "--device", device, "--threads", str(threads)]
    seconds, kib = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return float(seconds), int(kib) / 1024 / 1024


def child(size: int, device: str) -> None:
    """The measured process: load, retouch one `size` x `size` image, print seconds and peak RSS (KiB)."""
    image = portrait(size)
    engine = LocalEngine(device=device)
    engine.analyzer  # noqa: B018 (load the models)
    start = time.perf_counter()
    engine.retouch(image, PARAMS)
    print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def row(name: str, value: float | tuple[float, float], goal: float, unit: str) -> str:
    """One line: the figure, the goal, PASS/MISS (on the wall clock), and the CPU time when measured."""
    wall, cpu = value if isinstance(value, tuple) else (value, None)
    verdict = "PASS" if wall <= goal else "MISS"
    line = f"{name:<44} {wall:>9.3f} {unit:<4} goal <= {goal:g} {unit:<4} {verdict}"
    return line if cpu is None else f"{line}   (cpu {cpu:.3f} s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (default 2, the issue's machine)"
    )
    parser.add_argument("--skip-4k", action="store_true", help="leave out the 4096x4096 rows")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child is not None:
        child(args.child, args.device)
        return 0
    engine = LocalEngine(device=args.device)
    start = time.perf_counter()
    engine.analyzer  # noqa: B018 (model loading, reported but excluded from the rows)
    load = time.perf_counter() - start
    print(
        f"local engine benchmark: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads, device {args.device}; model loading {load:.2f} s (excluded)"
    )
    print("settings: every slider 50, look Sakura; median of", args.repeat, "runs after a warm-up")
    lines = []
    for size, goal in ((512, 0.060), (1024, 0.150)):
        image = portrait(size)
        seconds = timed(lambda image=image: engine.retouch(image, PARAMS), args.repeat)
        lines.append(row(f"{size}x{size}, one image", seconds, goal, "s"))
    frames = moving_frames(portrait(512), 16)
    seconds = timed(lambda: retouch_video(engine, frames), max(1, args.repeat // 2))
    lines.append(row("16 frames 512x512, tracked", seconds, 1.2, "s"))
    if args.device.startswith("cuda"):
        hd = moving_frames(portrait((1920, 1080)), 16)

        def run_hd() -> None:
            retouch_video(engine, hd)
            torch.cuda.synchronize()

        seconds, _ = timed(run_hd, max(1, args.repeat // 2))
        print(f"1920x1080 tracked frames on {args.device}: {16 / seconds:.1f} frames/s")
    if not args.skip_4k:
        image = portrait(4096)
        seconds = timed(lambda: engine.retouch(image, PARAMS), max(1, args.repeat // 2))
        lines.append(row("4096x4096, one image", seconds, 1.5, "s"))
        del image
        child_seconds, peak = peak_rss_child(4096, args.device, args.threads)
        lines.append(row("4096x4096, peak RSS of a fresh process", peak, 1.5, "GiB"))
        lines.append(f"{'   (its first retouch, cold caches)':<44} {child_seconds:>9.3f} s")
    print("\n".join(lines))
    print("cpu: CPU seconds of this process (all threads); with 2 threads on an idle machine, wall <= cpu.")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"(this process's own peak RSS: {own:.2f} GiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
