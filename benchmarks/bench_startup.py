"""Start-up time of the command line: `python -m beauty_api --help` and `filters` (goal under 0.12 s).

Run: `python benchmarks/bench_startup.py [--runs 15] [--repo PATH]`. Each command runs in a fresh
interpreter `--runs` times; the median and the fastest are printed, next to a bare `python -c pass`
(what no code of ours can go below). `--repo` times another checkout (e.g. an export of main, for a
before/after). Timings are wall-clock and noisy on a loaded machine: compare medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

GOAL = 0.12
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "--help": ["-m", "beauty_api", "--help"],
    "filters": ["-m", "beauty_api", "filters"],
}


def run_times(args: Sequence[str], repo: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=repo, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    print(f"start-up of the CLI in {args.repo} ({args.runs} runs each, Python {sys.version.split()[0]})")
    for label, command in COMMANDS.items():
        times = run_times(command, args.repo, args.runs)
        median = statistics.median(times)
        goal = (
            ""
            if label.startswith("python")
            else f"  goal < {GOAL:g} s: {'met' if median < GOAL else 'MISSED'}"
        )
        print(f"  {label:<15} median {median:.3f} s, fastest {min(times):.3f} s{goal}")


if __name__ == "__main__":
    main()
