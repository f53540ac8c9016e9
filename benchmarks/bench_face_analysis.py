"""Face analysis timings: model loading, detect + mesh (a second pass where needed) per face, tracked frames.

Run: `python benchmarks/bench_face_analysis.py [--device cuda] [--threads 2] [--repeat 30]`.
Prints medians and minimums (the minimum is the figure least disturbed by other processes on a shared
machine); no pass/fail exit status. Goals from issue 10 (2 CPU threads): load <= 0.3 s, analyze <= 40 ms
per face, tracked frame <= 25 ms per face. Uses the bundled portraits, so runs are comparable.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beauty_api.local.faces import analysis  # noqa: E402
from beauty_api.local.faces.analysis import FaceAnalyzer, load_analyzer  # noqa: E402
from beauty_api.local.faces.regions import region_mask  # noqa: E402

PORTRAIT = ROOT / "tests" / "data" / "mediapipe_reference" / "portrait_grace_hopper_512x600.jpg"


def timed(fn: Callable[[], object], repeat: int, device: torch.device) -> tuple[float, float]:
    """(median ms, min ms) of `fn` after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    image = torch.from_numpy(np.asarray(Image.open(PORTRAIT).convert("RGB"), dtype=np.float32) / 255).to(
        device
    )

    t0 = time.perf_counter()
    analyzer = load_analyzer(device)
    load_s = time.perf_counter() - t0
    frames = torch.stack([torch.roll(image, shifts=2 * i, dims=1) for i in range(9)])  # moving 2 px/frame

    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, image {tuple(image.shape)}"
    )
    print(f"model load (read + SHA-256 + build, both models, first in process): {load_s:.3f} s")
    with torch.inference_mode():
        x = analysis.to_nchw(image)
        one_pass = FaceAnalyzer(analyzer.detector, analyzer.mesh, second_pass=False)
        rows = [
            ("detector only (letterbox + model + NMS)", lambda: analyzer.detect(x)),
            ("detect + mesh (one pass)", lambda: one_pass.analyze(image)),
            ("analyze (detect + mesh, a second pass where needed)", lambda: analyzer.analyze(image)),
            (
                "2 faces: analyze (both in one mesh batch)",
                lambda: analyzer.analyze(torch.cat([image, image], 1)),
            ),
        ]
        for label, fn in rows:
            med, low = timed(fn, args.repeat, device)
            print(f"{label:<48} median {med:7.1f} ms   min {low:7.1f} ms")
        # A tracked frame = (clip of 9 frames - clip of 1 frame) / 8: the first frame's detection cancels out.
        clip_med, clip_low = timed(lambda: analyzer.track(frames), max(3, args.repeat // 4), device)
        one_med, one_low = timed(lambda: analyzer.track(frames[:1]), max(3, args.repeat // 4), device)
        print(
            f"{'tracked frame (mesh on the previous ROI + smoothing)':<48} median "
            f"{(clip_med - one_med) / 8:7.1f} ms   min {(clip_low - one_low) / 8:7.1f} ms"
        )
        faces = analyzer.analyze(image)
        h, w = image.shape[:2]
        for region in ("face", "skin", "eyes"):
            med, low = timed(lambda r=region: region_mask(faces, h, w, r, feather=6.0), args.repeat, device)
            print(
                f"{'region_mask ' + region + ' (feather 6 px)':<48} median {med:7.1f} ms   min {low:7.1f} ms"
            )


if __name__ == "__main__":
    main()
