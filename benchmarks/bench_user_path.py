"""What a user waits for: the CLI, run as a user runs it, against the emulator running as its own process.

Run: `python benchmarks/bench_user_path.py [--t 1,2,5] [--runs 5] [--batch 16] [--concurrency 8]
[--repo PATH]`. For each processing time T it starts `python -m beauty_api.emulator
--processing-seconds T` (from this checkout), then runs `python -m beauty_api retouch` from `--repo`
(default: this checkout; pass an export of main for the "before" figures) with default settings
and a fresh state folder per T:

- `--runs` single-image runs one after the other (a new image each time, so a new paid task):
  the first run has nothing learned yet, the second has seen one task; both are reported on
  their own, runs 3 and later ("after a few tasks") together;
- then one batch of `--batch` images at `--concurrency`.

Per task, from the emulator's timeline (`GET /_emulator/tasks`, the emulator's clock): the queries
it answered, the time from "done" to the download start, and from the submit's answer to the end of
the download (goal: T + 0.3 s). The batch goal is 1.10 x waves x T plus one wave's encode/upload
(taken as the time from the first upload in to the last submit of the first wave answered),
measured from the first upload in to the last download sent. Process wall times include Python's
start-up and reading the inputs. Timings are noisy on a loaded machine: rerun before concluding.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parents[1]
SAMPLE = HERE / "beauty_api" / "data" / "sample_portrait.png"
KEY = "emulator-key"
SINGLE_SLACK = 0.3
BATCH_RATIO = 1.10
MAX_QUERIES = 6


class EmulatorProcess:
    """`python -m beauty_api.emulator` in the background; its base URL read from what it prints."""

    def __init__(self, processing: float) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "beauty_api.emulator",
                "--port",
                "0",
                "--quiet",
                *self.options(processing),
            ],
            cwd=HERE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = ""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("export AILAB_API_BASE_URL="):
                self.base_url = line.split("=", 1)[1].strip()
                break
        if not self.base_url:
            raise RuntimeError("the emulator did not start")

    @staticmethod
    def options(processing: float) -> list[str]:
        return ["--processing-seconds", f"{processing:g}", "--api-key", KEY]

    def timeline(self) -> list[dict]:
        with urllib.request.urlopen(self.base_url + "/_emulator/tasks", timeout=10) as answer:
            return json.load(answer)["tasks"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def write_inputs(folder: Path, first: int, count: int, size: int) -> list[Path]:
    """`count` variants of the sample portrait (one pixel differs: each is a new paid request)."""
    with Image.open(SAMPLE) as image:
        base = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(first, first + count):
        rgb = base.copy()
        rgb[0, 0] = (number & 255, (number >> 8) & 255, 99)
        path = folder / f"portrait_{number:04d}.png"
        Image.fromarray(rgb).save(path)
        paths.append(path)
    return paths


def cli_env(base_url: str, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AILAB_", "FACE_BEAUTY_"))}
    config = state.parent / "empty_config.ini"
    config.write_text("")
    config.chmod(0o600)
    env.update(
        AILAB_API_BASE_URL=base_url,
        AILAB_API_KEY=KEY,
        AILAB_CONFIG_FILE=str(config),
        FACE_BEAUTY_STATE_DIR=str(state),
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def run_cli(repo: Path, env: dict[str, str], *args: str) -> float:
    """`retouch ARGS` in its own process, as a user runs it; its wall time in seconds."""
    return run_retouch(repo, env, args)[1]


def run_retouch(
    repo: Path, env: dict[str, str], args: Sequence[str], launcher: Sequence[str] = ("-m", "beauty_api")
) -> tuple[str, float]:
    """`python LAUNCHER retouch ARGS`: its stderr and wall time; a failure raises with the CLI's words."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *launcher, "retouch", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the CLI failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stderr, wall


def new_tasks(emulator: EmulatorProcess, seen: set[str]) -> list[dict]:
    tasks = [task for task in emulator.timeline() if task["task_id"] not in seen]
    seen.update(task["task_id"] for task in tasks)
    return tasks


def describe(tasks: Sequence[dict], processing: float) -> dict[str, float]:
    late = [task["download_started_at"] - task["done_at"] for task in tasks]
    total = [task["download_sent_at"] - task["answered_at"] for task in tasks]
    return {
        "queries": statistics.mean(task["queries"] for task in tasks),
        "late_mean": statistics.mean(late),
        "late_max": max(late),
        "total_max": max(total),
        "over_t_max": max(total) - processing,
    }


def bench_t(repo: Path, processing: float, runs: int, batch: int, concurrency: int, size: int) -> list[str]:
    lines = []
    emulator = EmulatorProcess(processing)
    seen: set[str] = set()
    try:
        with tempfile.TemporaryDirectory(prefix="face-beauty-user-path-") as folder:
            root = Path(folder)
            env = cli_env(emulator.base_url, root / "state")
            singles = []
            for number, path in enumerate(write_inputs(root / "in", 0, runs, size)):
                wall = run_cli(repo, env, str(path), "-o", str(root / "out" / f"{number}.png"))
                (task,) = new_tasks(emulator, seen)
                singles.append((wall, task))
            groups = (("first run", singles[:1]), ("run 2", singles[1:2]), (f"runs 3-{runs}", singles[2:]))
            for label, chosen in groups:
                if not chosen:
                    continue
                figures = describe([task for _, task in chosen], processing)
                wall = statistics.mean(wall for wall, _ in chosen)
                judged = label.startswith("runs")  # the goals are for "after a few tasks"
                verdict = ("met" if figures["over_t_max"] <= SINGLE_SLACK else "MISSED") if judged else "info"
                queries_ok = ""
                if judged:
                    queries_ok = " (<= 6: met)" if figures["queries"] <= MAX_QUERIES else " (> 6: MISSED)"
                lines.append(
                    f"  1 image, {label:<9}: process {wall:5.2f} s; submit answer -> download end <= "
                    f"T + {figures['over_t_max']:.2f} s (goal T + {SINGLE_SLACK:g}: {verdict}); done -> download "
                    f"start {figures['late_mean']:.2f} s mean, {figures['late_max']:.2f} s max; "
                    f"{figures['queries']:.1f} queries/task{queries_ok}"
                )
            if batch:
                inputs = write_inputs(root / "in", runs, batch, size)
                wall = run_cli(
                    repo, env, *map(str, inputs), "-o", str(root / "batch"), "--concurrency", str(concurrency)
                )
                tasks = new_tasks(emulator, seen)
                figures = describe(tasks, processing)
                first_in = min(task["received_at"] for task in tasks)
                span = max(task["download_sent_at"] for task in tasks) - first_in
                wave = (
                    sorted(task["answered_at"] for task in tasks)[: min(concurrency, len(tasks))][-1]
                    - first_in
                )
                waves = math.ceil(batch / concurrency)
                goal = BATCH_RATIO * waves * processing + wave
                lines.append(
                    f"  {batch} images, c={concurrency}: first upload in -> last download {span:5.2f} s "
                    f"(goal {BATCH_RATIO:g} x {waves} x T + wave upload {wave:.2f} s = {goal:.2f} s: "
                    f"{'met' if span <= goal else 'MISSED'}); process {wall:.2f} s; done -> download start "
                    f"{figures['late_mean']:.2f} s mean, {figures['late_max']:.2f} s max; "
                    f"{figures['queries']:.1f} queries/task"
                )
    finally:
        emulator.stop()
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--t", default="1,2,5", help="processing times to run, seconds (e.g. 1,2,5,20)")
    parser.add_argument(
        "--runs", type=int, default=5, help="single-image runs per T (the first is reported alone)"
    )
    parser.add_argument("--batch", type=int, default=16, help="images in the batch run (0: none)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--size", type=int, default=512, help="portrait side in px")
    parser.add_argument("--repo", type=Path, default=HERE, help="the checkout whose CLI is run")
    args = parser.parse_args(argv)
    print(
        f"user-path benchmark: CLI from {args.repo}, emulator as a separate process, "
        f"{args.size} px PNG portraits, default CLI settings, {os.cpu_count()} cores"
    )
    for processing in (float(text) for text in args.t.split(",") if text.strip()):
        print(f"T = {processing:g} s")
        for line in bench_t(args.repo, processing, args.runs, args.batch, args.concurrency, args.size):
            print(line, flush=True)


if __name__ == "__main__":
    main()
