"""Time from Cancel to return, for a batch of 12 large images (issue 7 item 8: goal under 0.5 s).

Run: `python benchmarks/bench_cancel.py [--runs N] [--size PX]`. Prints one row per case with the
median and worst time over N runs (default 5) and PASS/MISS against the 0.5 s goal; no exit status.

Setup: the emulator runs in this process on loopback and takes 60 s per task, so every task is
still running when Cancel comes. Inputs: 12 different 1024x1024 portraits (the bundled sample
scaled up, with noise so each is its own request and needs a real JPEG encode). Concurrency 3.

Cases:
- batch, while polling: retouch_batch (what the ComfyUI node runs in its worker thread) with a
  cancel hook; Cancel 0.3 s after the third task was created. The node itself returns as soon as
  any worker has seen the interrupt; this measures the slower part, every worker stopping.
- batch, query answers held: the same, but the emulator holds every task query for 10 s, so
  Cancel comes while HTTP calls are waiting for an answer (they are abandoned, not awaited).
- batch, Cancel already pressed: the hook is set before the batch starts (nothing is encoded).
- CLI, Ctrl-C: `python -m beauty_api retouch` in a subprocess, SIGINT 0.3 s after the third task
  was created; time until the process has exited (including interpreter shutdown).
Figures on a shared or busy machine are noisy; run it alone for numbers to quote.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from beauty_api.api.client import ClientSettings, FaceBeautyClient
from beauty_api.codec import SourceImage
from beauty_api.emulator import Emulator
from beauty_api.errors import RetouchCancelled
from beauty_api.ledger.storage_paths import open_journal, open_result_cache
from beauty_api.params import BeautyParams
from beauty_api.run.api_backend import ApiBackend
from beauty_api.run.batch import retouch_batch

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "beauty_api" / "data" / "sample_portrait.png"
KEY = "emulator-key"
GOAL = 0.5
IMAGES = 12
CONCURRENCY = 3
PARAMS = BeautyParams(smoothing=70)
SETTINGS = ClientSettings(timeout=300.0, poll_initial=0.2, poll_max=0.5)


def large_portraits(size: int) -> list[np.ndarray]:
    with Image.open(SAMPLE) as image:
        base = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS), dtype=np.int16)
    rng = np.random.default_rng(1)
    return [np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8) for _ in range(IMAGES)]


def backend_for(emulator: Emulator, state: Path) -> ApiBackend:
    client = FaceBeautyClient(KEY, emulator.base_url, settings=SETTINGS)
    return ApiBackend(client, journal=open_journal(state), cache=open_result_cache(state, enabled=False))


def press_when_in_flight(emulator: Emulator, press: Callable[[], None], pressed: list[float]) -> None:
    """Press Cancel 0.3 s after the third task exists (the batch is then busy with all its slots)."""
    deadline = time.monotonic() + 60
    while emulator.stats.tasks_created < CONCURRENCY and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    pressed.append(time.monotonic())
    press()


def batch_case(images: list[np.ndarray], *, hold_queries: bool, early: bool) -> tuple[float, int]:
    """Seconds from Cancel to retouch_batch returning, and how many images were encoded."""
    with Emulator(processing_seconds=60.0) as emulator, tempfile.TemporaryDirectory() as state:
        if hold_queries:
            emulator.faults.slow("query", 10_000, seconds=10.0)
        cancel = threading.Event()
        pressed: list[float] = []
        encodes: list[int] = []
        if early:
            cancel.set()
            pressed.append(time.monotonic())
        else:
            threading.Thread(
                target=press_when_in_flight, args=(emulator, cancel.set, pressed), daemon=True
            ).start()
        with contextlib.suppress(RetouchCancelled):
            retouch_batch(
                backend_for(emulator, Path(state)),
                [SourceImage(rgb) for rgb in images],
                PARAMS,
                concurrency=CONCURRENCY,
                on_progress=lambda p: encodes.append(p.index) if p.stage == "encoding" else None,
                check_cancel=cancel.is_set,
            )
        returned = time.monotonic()
        return returned - pressed[0], len(encodes)


def cli_case(folder: Path) -> float:
    """Seconds from SIGINT to the CLI process having exited."""
    inputs = sorted(str(path) for path in folder.glob("*.png"))
    with Emulator(processing_seconds=60.0) as emulator, tempfile.TemporaryDirectory() as state:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AILAB_", "FACE_BEAUTY_"))}
        env.update(
            AILAB_API_KEY=KEY,
            AILAB_API_BASE_URL=emulator.base_url,
            FACE_BEAUTY_STATE_DIR=state,
            FACE_BEAUTY_CACHE="0",
            AILAB_CONFIG_FILE=str(Path(state) / "none.ini"),
        )
        (Path(state) / "none.ini").write_text("")
        out = Path(state) / "out"
        command = [sys.executable, "-m", "beauty_api", "retouch", "--poll", "0.2", *inputs, "-o", str(out)]
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        pressed: list[float] = []
        press_when_in_flight(emulator, lambda: proc.send_signal(signal.SIGINT), pressed)
        proc.wait(timeout=60)
        exited = time.monotonic()
        if proc.returncode != 130:
            print(f"  (CLI exit status {proc.returncode}: {proc.stderr.read().decode()[-300:]})")
        return exited - pressed[0]


def row(case: str, seconds: Sequence[float], extra: str = "") -> str:
    worst = max(seconds)
    verdict = "PASS" if worst < GOAL else "MISS"
    return (
        f"{case:<34} median {statistics.median(seconds) * 1000:6.0f} ms   worst {worst * 1000:6.0f} ms"
        f"   {verdict} (< {GOAL * 1000:.0f} ms){extra}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024, metavar="PX")
    args = parser.parse_args(argv)
    images = large_portraits(args.size)
    print(
        f"{IMAGES} images of {args.size} px, concurrency {CONCURRENCY}, {args.runs} runs each; {os.cpu_count()} CPUs"
    )
    polling = [batch_case(images, hold_queries=False, early=False)[0] for _ in range(args.runs)]
    print(row("batch, Cancel while polling", polling))
    held = [batch_case(images, hold_queries=True, early=False)[0] for _ in range(args.runs)]
    print(row("batch, Cancel while queries wait", held))
    early = [batch_case(images, hold_queries=False, early=True) for _ in range(args.runs)]
    encoded = max(count for _, count in early)
    print(row("batch, Cancel already pressed", [s for s, _ in early], f"   images encoded: {encoded}"))
    with tempfile.TemporaryDirectory() as folder:
        for index, rgb in enumerate(images):
            Image.fromarray(rgb).save(Path(folder) / f"p{index:02d}.png", compress_level=1)
        cli = [cli_case(Path(folder)) for _ in range(args.runs)]
    print(row("CLI, Ctrl-C (until the process exited)", cli))


if __name__ == "__main__":
    main()
