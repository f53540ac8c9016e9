"""A farm under load: N workers share one PostgreSQL ledger, are killed at random, restart, and pay once.

Run: `python benchmarks/bench_farm.py [--workers 4] [--node-workers 1] [--images 200] [--shared 0.25]
[--kills 8] [--seed 1] [--processing 0.5] [--concurrency 3] [--size 96] [--no-baseline]`.

It starts its own PostgreSQL (tests/postgres_server.py, fsync on) and one emulator process
(`--processing` seconds per task), then `--workers` worker processes (benchmarks/farm_worker.py:
the CLI's `retouch`, and `--node-workers` of them the ComfyUI node in-process), each over
`--images` images of which a `--shared` fraction is the same for every worker (a shared folder of
photos) and the rest its own. A killer sends SIGKILL to a random running worker `--kills` times at
random moments (seeded); a killed worker is restarted with the same list until it finishes.

Printed: paid submits (the emulator's task count; must equal the distinct images), images per
second (all workers' images / wall time) against the same images on SQLite by one CLI worker
without kills, the ledger's share of the time per image (journal + cache calls / image time, from
runs that finished), and PostgreSQL's client connections (peak and mean, sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE / "benchmarks"), str(HERE / "tests")]

from bench_user_path import EmulatorProcess, cli_env, write_inputs  # noqa: E402
from postgres_server import PostgresServer  # noqa: E402

WORKER = HERE / "benchmarks" / "farm_worker.py"


@dataclass
class Worker:
    """One worker's list and its process, restarted after each kill until it exits 0."""

    name: str
    kind: str
    inputs: list[Path]
    root: Path
    env: dict[str, str]
    concurrency: int
    process: subprocess.Popen | None = None
    kills: int = 0
    failures: list[str] = field(default_factory=list)
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        listing = self.root / f"{self.name}.list"
        listing.write_text("\n".join(map(str, self.inputs)) + "\n")
        command = [sys.executable, str(WORKER), self.kind, "--list", str(listing), "--out",
                   str(self.root / "out" / self.name), "--stats", str(self.root / "stats.jsonl"),
                   "--concurrency", str(self.concurrency)]  # fmt: skip
        while True:
            with self.lock:
                self.process = subprocess.Popen(
                    command,
                    cwd=HERE,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            _, stderr = self.process.communicate()
            code = self.process.returncode
            if code == 0:
                break
            if code == -signal.SIGKILL:
                continue  # killed by the killer: restart with the same list
            # Finished, but some images failed (e.g. "outcome unknown": a request that a killed
            # run had on the wire is not sent again until a person decides): a re-run would not change it.
            errors = [line for line in stderr.splitlines() if "error" in line.lower()]
            self.failures.append(f"exit {code}: {errors[-1] if errors else stderr.strip()[-300:]}")
            break
        with self.lock:
            self.done = True
            self.process = None

    def kill(self) -> bool:
        with self.lock:
            if self.process is None or self.done or self.process.poll() is not None:
                return False
            os.kill(self.process.pid, signal.SIGKILL)
            self.kills += 1
            return True


def killer(workers: list[Worker], kills: int, rng: random.Random, stop: threading.Event) -> None:
    sent = 0
    while sent < kills and not stop.wait(rng.uniform(0.5, 3.0)):
        alive = [worker for worker in workers if not worker.done]
        if not alive:
            return
        if rng.choice(alive).kill():
            sent += 1


def sample_connections(server: PostgresServer, samples: list[int], stop: threading.Event) -> None:
    while not stop.wait(0.2):
        try:
            samples.append(server.connection_count("farm"))
        except Exception:  # the server is busy; a missed sample is fine
            continue


def ledger_rows(url: str) -> list[tuple[str, str]]:
    """(task id, state) of every journal row of the farm."""
    import psycopg

    with psycopg.connect(url) as conn:
        return [(row[0], row[1]) for row in conn.execute("SELECT task_id, state FROM face_beauty_tasks")]


def make_lists(root: Path, workers: int, images: int, shared: float, size: int) -> list[list[Path]]:
    common = round(images * shared)
    lists = []
    for number in range(workers):
        folder = root / "in" / f"w{number}"
        own = write_inputs(folder, 100_000 * (number + 1), images - common, size)
        lists.append(write_inputs(folder, 0, common, size) + own)  # shared pixels, each worker's own copy
    return lists


def farm_run(args: argparse.Namespace, root: Path, lists: list[list[Path]]) -> dict[str, float]:
    server = PostgresServer.start(durable=True)
    emulator = EmulatorProcess(args.processing)
    try:
        url = server.create_database("farm")
        workers = []
        for number, inputs in enumerate(lists):
            env = cli_env(emulator.base_url, root / f"state-w{number}")
            env["FACE_BEAUTY_LEDGER_URL"] = url
            kind = "node" if number < args.node_workers else "cli"
            workers.append(Worker(f"w{number}", kind, inputs, root, env, args.concurrency))
        stop = threading.Event()
        samples: list[int] = []
        threads = [threading.Thread(target=worker.run) for worker in workers]
        helpers = [
            threading.Thread(target=killer, args=(workers, args.kills, random.Random(args.seed), stop)),
            threading.Thread(target=sample_connections, args=(server, samples, stop)),
        ]
        start = time.perf_counter()
        for thread in threads + helpers:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        stop.set()
        for thread in helpers:
            thread.join()
        failures = [f"{worker.name}: {failure}" for worker in workers for failure in worker.failures]
        paid_ids = {task["task_id"] for task in emulator.timeline() if not task["failed"]}
        rows = ledger_rows(url)
        stats = [json.loads(line) for line in (root / "stats.jsonl").read_text().splitlines() if line]
        return {
            "wall": wall,
            "paid": len(paid_ids),
            "states": {state: sum(1 for _, s in rows if s == state) for state in {s for _, s in rows}},  # type: ignore[dict-item]
            "unrecorded": len(paid_ids - {task_id for task_id, _ in rows}),
            "kills": sum(worker.kills for worker in workers),
            "failures": failures,  # type: ignore[dict-item]
            "ledger_s": sum(s["ledger_s"] for s in stats),
            "image_s": sum(s["image_s"] for s in stats),
            "images_timed": sum(s["images"] for s in stats),
            "conn_peak": max(samples, default=0),
            "conn_mean": sum(samples) / len(samples) if samples else 0.0,
        }
    finally:
        emulator.stop()
        server.stop()


def sqlite_run(args: argparse.Namespace, root: Path, lists: list[list[Path]]) -> dict[str, float]:
    """The same lists on the embedded SQLite ledger, by one CLI worker, one list after the other."""
    emulator = EmulatorProcess(args.processing)
    try:
        env = cli_env(emulator.base_url, root / "state-sqlite")
        (root / "sqlite").mkdir()
        failures: list[str] = []
        start = time.perf_counter()
        for number, inputs in enumerate(lists):
            worker = Worker(f"list{number}", "cli", inputs, root / "sqlite", env, args.concurrency)
            worker.run()
            failures += worker.failures
        wall = time.perf_counter() - start
        stats = [
            json.loads(line) for line in (root / "sqlite" / "stats.jsonl").read_text().splitlines() if line
        ]
        return {
            "wall": wall,
            "paid": len(emulator.timeline()),
            "ledger_s": sum(s["ledger_s"] for s in stats),
            "image_s": sum(s["image_s"] for s in stats),
            "images_timed": sum(s["images"] for s in stats),
            "failures": failures,  # type: ignore[dict-item]
        }
    finally:
        emulator.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--node-workers", type=int, default=1)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--shared", type=float, default=0.25)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processing", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--no-baseline", action="store_true", help="skip the SQLite one-worker run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="face-beauty-farm-") as folder:
        root = Path(folder)
        lists = make_lists(root, args.workers, args.images, args.shared, args.size)
        total = sum(len(inputs) for inputs in lists)
        distinct = round(args.images * args.shared) + args.workers * (
            args.images - round(args.images * args.shared)
        )
        farm = farm_run(args, root, lists)
        states = farm["states"]
        done, unknown, unrecorded = states.get("done", 0), states.get("unknown", 0), farm["unrecorded"]
        # Every image ends done or "outcome unknown" (a killed worker's request was on the wire: a
        # person decides), and no image is paid twice: each paid task is a done image's recorded task
        # or the one request of an unknown image.
        ended = done + unknown == distinct
        never_twice = unrecorded <= unknown and farm["paid"] == done + unrecorded
        verdict = "OK" if ended and never_twice else "MISMATCH"
        print(
            f"farm: {args.workers} workers ({args.node_workers} node) x {args.images} images, "
            f"{args.shared:.0%} shared, seed {args.seed}, {farm['kills']} SIGKILLs"
        )
        print(
            f"  paid submits {farm['paid']} for {distinct} distinct images: {done} done, paid once each; "
            f"{unknown} outcome unknown (a kill while the request was on the wire), {unrecorded} of them paid; "
            f"none paid twice: {verdict}"
        )
        print(f"  journal rows by state {states}")
        for failure in farm["failures"]:  # type: ignore[attr-defined]
            print(f"  worker ended with failed images: {failure}")
        print(f"  {total} images in {farm['wall']:.1f} s: {total / farm['wall']:.2f} images/s")
        share = farm["ledger_s"] / farm["image_s"] if farm["image_s"] else 0.0
        per_image = 1000 * farm["ledger_s"] / max(1, farm["images_timed"])
        print(f"  ledger: {per_image:.1f} ms per image, {share:.1%} of the time per image (finished runs)")
        print(f"  PostgreSQL client connections: peak {farm['conn_peak']}, mean {farm['conn_mean']:.1f}")
        if not args.no_baseline:
            base = sqlite_run(args, root, lists)
            share = base["ledger_s"] / base["image_s"] if base["image_s"] else 0.0
            per_image = 1000 * base["ledger_s"] / max(1, base["images_timed"])
            print(
                f"sqlite, 1 CLI worker, no kills: {total} images in {base['wall']:.1f} s: "
                f"{total / base['wall']:.2f} images/s (the farm: x{base['wall'] / farm['wall']:.2f}); "
                f"paid {base['paid']}; ledger {per_image:.1f} ms per image, {share:.1%} of the time per image"
            )
            for failure in base["failures"]:  # type: ignore[attr-defined]
                print(f"  worker failed: {failure}")
        return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
