"""The offline engine's speed goals (issue 19, item 7), this tree beside another checkout, in one run.

Run: `python benchmarks/bench_engine_speed.py [--baseline PATH] [--rounds 3] [--repeat 10] [--threads 2]`.
`--baseline` is another checkout of the pack (e.g. `git worktree add /tmp/before <commit>`): each
round runs every tree once in a fresh process, the trees alternating, so both see the same machine.
Prints the median over rounds of each case's median wall time, and its CPU time (all threads).

Cases (bench_local_engine's settings: every slider at 50 and the look Sakura; models loaded beforehand):
- analyze: faces and landmarks of the 512x600 portrait (one face; goal <= 20 ms per face);
- 512x512: one image retouched, face analysis included (goal <= 40 ms);
- group: the 1536x864 picture of six faces 150 to 40 px wide (goal <= 400 ms; faces found shown);
- video: 16 frames of 512x512 moving 2 px per frame, tracked (goal <= 0.5 s).
Inputs are made once by this script and handed to every tree, so the trees see the same pixels and
settings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"analyze": 0.020, "512x512": 0.040, "group": 0.400, "video": 0.500}


def make_inputs(path: Path) -> None:
    """The four cases' pixels, from this tree's helpers, saved for every tree's child process."""
    sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]
    from bench_local_engine import PARAMS, moving_frames, portrait
    from local_helpers import group_picture

    from beauty_api.local.retouch.engine import LocalEngine  # noqa: F401 (this tree must import)
    from beauty_api.params import SLIDER_NAMES

    grace = ROOT / "tests" / "data" / "mediapipe_reference" / "portrait_grace_hopper_512x600.jpg"
    from PIL import Image

    np.savez(
        path,
        analyze=np.asarray(Image.open(grace).convert("RGB")),
        single=portrait(512),
        group=np.array(group_picture()[0]),
        frames=np.stack(moving_frames(portrait(512), 16)),
        # bench_local_engine's settings, as keywords every tree's BeautyParams takes
        settings=np.array(
            json.dumps({name: getattr(PARAMS, name) for name in (*SLIDER_NAMES, "filter_type")})
        ),
    )


def child(inputs: Path, repeat: int, threads: int) -> None:
    """Runs in the measured tree (its folder first on sys.path): prints one JSON line of timings."""
    import torch

    torch.set_num_threads(threads)
    try:
        from beauty_api.local.retouch.engine import LocalEngine
    except ImportError:  # a checkout from before the packages moved
        from beauty_api.local.engine import LocalEngine  # type: ignore[no-redef]
    from beauty_api.params import BeautyParams

    data = np.load(inputs)
    params = BeautyParams(**json.loads(str(data["settings"])))
    engine = LocalEngine()
    analyzer = engine.analyzer
    grace = torch.from_numpy(np.array(data["analyze"], dtype=np.float32) / 255.0)
    frames = [np.ascontiguousarray(frame) for frame in data["frames"]]

    def video() -> None:
        try:
            from beauty_api.codec import SourceImage
            from beauty_api.local.retouch.backend import LocalBackend
        except ImportError:  # before one video path: the engine's own
            engine.retouch_frames(frames, params, track=True)
            return
        sources = [SourceImage(frame) for frame in frames]
        backend = LocalBackend(engine, video=sources)
        for index, source in enumerate(sources):
            backend.retouch(source, params, index=index)

    faces = {"analyze": len(analyzer.analyze(grace)), "group": engine.retouch(data["group"], params).faces}
    cases: dict[str, Callable[[], object]] = {
        "analyze": lambda: analyzer.analyze(grace),
        "512x512": lambda: engine.retouch(data["single"], params),
        "group": lambda: engine.retouch(data["group"], params),
        "video": video,
    }
    out = {}
    for name, call in cases.items():
        call()  # warm-up
        walls, cpus = [], []
        for _ in range(repeat if name != "video" else max(3, repeat // 3)):
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        out[name] = (statistics.median(walls), statistics.median(cpus))
    print(json.dumps({"times": out, "faces": faces}))


def run_tree(tree: Path, inputs: Path, repeat: int, threads: int) -> dict:
    code = (
        f"import sys; sys.path.insert(0, {str(tree)!r}); sys.path.insert(1, {str(ROOT / 'benchmarks')!r});"
        f" import bench_engine_speed as b; b.child(__import__('pathlib').Path({str(inputs)!r}), {repeat}, {threads})"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: the benchmark failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another checkout to measure beside this one"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    trees = {"this tree": ROOT}
    if args.baseline is not None:
        trees = {"baseline": args.baseline.resolve(), **trees}
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "inputs.npz"
        make_inputs(inputs)
        results: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                results[name].append(run_tree(tree, inputs, args.repeat, args.threads))
    print(
        f"{args.threads} torch threads, {args.rounds} rounds (a fresh process per tree and round), load {os.getloadavg()[0]:.1f}"
    )
    header = f"{'case':<10} {'goal':>8}" + "".join(f" {name + ' (wall / cpu)':>28}" for name in trees)
    print(header)
    for case, goal in GOALS.items():
        line = f"{case:<10} {goal * 1000:>6.0f}ms"
        for name in trees:
            wall = statistics.median(r["times"][case][0] for r in results[name])
            cpu = statistics.median(r["times"][case][1] for r in results[name])
            verdict = "PASS" if wall <= goal else "MISS"
            line += f" {wall * 1000:>9.1f} / {cpu * 1000:>7.1f} ms {verdict}"
        print(line)
    for name in trees:
        print(f"faces found by {name}: {results[name][0]['faces']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
