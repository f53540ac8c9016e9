"""Shared by the pipeline tests and the worker subprocess: a backend aimed at an emulator, test images.

Not a test module (no `test_` prefix); imported by test_backend.py, test_fault_injection.py and
run as a script by the kill/two-process scenarios.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from beauty_api.api.client import ClientSettings, FaceBeautyClient
from beauty_api.api.retry_policy import RetrySettings
from beauty_api.clock import Clock
from beauty_api.codec import SourceImage
from beauty_api.ledger.ledger_choice import open_ledger
from beauty_api.run.api_backend import ApiBackend

EMULATOR_KEY = "emulator-key"

# Fast polling and retries so scenarios take milliseconds against a zero-latency emulator.
FAST = ClientSettings(
    timeout=20.0,
    poll_initial=0.02,
    poll_max=0.05,
    retry=RetrySettings(max_attempts=6, base_delay=0.01, max_delay=0.05),
)


def make_backend(
    base_url: str,
    state: Path,
    *,
    settings: ClientSettings = FAST,
    cache: bool = True,
    clock: Clock | None = None,
) -> ApiBackend:
    """The production backend (journal + cache under `state`, or the shared ledger that
    FACE_BEAUTY_LEDGER_URL names: the `both_ledgers` fixture) pointed at an emulator."""
    client = FaceBeautyClient(EMULATOR_KEY, base_url, settings=settings, clock=clock)
    ledger = open_ledger(state, use_cache=cache)
    return ApiBackend(client, journal=ledger.journal, cache=ledger.cache)


def portraits(base: np.ndarray, count: int) -> list[SourceImage]:
    """`count` different images (so each is its own paid request) made from one portrait."""
    images = []
    for index in range(count):
        rgb = np.ascontiguousarray(np.roll(base, shift=7 * index, axis=1))
        images.append(SourceImage(rgb))
    return images


def sample_portrait() -> np.ndarray:
    from PIL import Image

    path = Path(__file__).resolve().parents[1] / "beauty_api" / "data" / "sample_portrait.png"
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").reduce(4), dtype=np.uint8)


def _worker(argv: list[str]) -> int:
    """Retouch `count` sample images and print one JSON line per outcome (used by subprocess tests)."""
    from beauty_api.params import BeautyParams
    from beauty_api.run.batch import retouch_batch

    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=3)
    args = parser.parse_args(argv)
    backend = make_backend(args.base_url, args.state)
    print("ready", flush=True)
    result = retouch_batch(
        backend,
        portraits(sample_portrait(), args.count),
        BeautyParams(smoothing=80),
        concurrency=args.concurrency,
    )
    for index, outcome in enumerate(result.outcomes):
        print(
            json.dumps(
                {"index": index, "origin": outcome and outcome.origin, "task_id": outcome and outcome.task_id}
            )
        )
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
