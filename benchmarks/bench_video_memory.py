"""Peak memory of the video path (issue 19): frames are streamed, so it must not grow with the clip.

Run: `python benchmarks/bench_video_memory.py [--frames 10 40]`. Each count runs in a fresh process:
the models are loaded, then N frames of 1280x720 (the bundled portrait, moving 1 px per frame) go
through LocalBackend's one video path; it prints the growth of the peak RSS after loading.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "beauty_api" / "data" / "sample_portrait.png"


def child(count: int) -> None:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch
    from PIL import Image

    from beauty_api.codec import SourceImage
    from beauty_api.local.retouch.backend import LocalBackend
    from beauty_api.local.retouch.engine import LocalEngine
    from beauty_api.params import BeautyParams

    torch.set_num_threads(2)
    face = np.asarray(Image.open(SAMPLE).convert("RGB").resize((720, 720)))
    frame = np.pad(face, ((0, 0), (280, 280), (0, 0)), mode="edge")  # 1280 x 720

    class Clip:  # a lazy clip: a frame exists only while it is being used
        def __len__(self) -> int:
            return count

        def __getitem__(self, index: int) -> SourceImage:
            return SourceImage(np.roll(frame, index, axis=1))

    engine = LocalEngine()
    engine.analyzer  # noqa: B018 (load the models)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    backend = LocalBackend(engine, video=Clip())
    params = BeautyParams(
        whitening=0, smoothing=50, thinface=0, shrink_face=0, enlarge_eye=0, remove_eyebrow=0
    )
    for index in range(count):
        backend.retouch(Clip()[index], params, index=index)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    for count in args.frames:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(count)], capture_output=True, text=True
        )
        figure = done.stdout.strip() or f"failed (exit {done.returncode})"
        print(f"{count:>4} frames of 1280x720, tracked and retouched: peak RSS growth {figure} MB")


if __name__ == "__main__":
    main()
