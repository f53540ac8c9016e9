"""The money path under random schedules and faults with worker OS processes (issue 16, item 7).

The same invariants as test_money_path_simulation.py, with 2-3 real processes (the CLI's and the
ComfyUI node's entry into the package) on one per-user ledger, the real emulator over HTTP
counting paid submits, and real SIGKILLs (proc_harness.py). CI runs
FACE_BEAUTY_SIM_PROC_SCHEDULES schedules (default 50) from FACE_BEAUTY_SIM_SEED (default 0); a
failure prints its seed, and `FACE_BEAUTY_SIM_SEED=<seed> FACE_BEAUTY_SIM_PROC_SCHEDULES=1`
replays it exactly. The soak is the same test with more schedules (docs/development.md).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from proc_harness import Coordinator
from sim_harness import Outcome
from sim_tally import run_seeds

SCHEDULES = int(os.environ.get("FACE_BEAUTY_SIM_PROC_SCHEDULES", "50"))
FIRST_SEED = int(os.environ.get("FACE_BEAUTY_SIM_SEED", "0"))


@pytest.fixture(scope="module")
def coordinator() -> Iterator[Coordinator]:
    made = Coordinator()
    try:
        yield made
    finally:
        made.close()


def run(coordinator: Coordinator, seed: int) -> Outcome:  # in memory where there is some
    memory = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="fbp-psim-", dir=memory if memory.is_dir() else None) as folder:
        return coordinator.run(seed, Path(folder))


def test_every_process_schedule_keeps_the_invariants(coordinator: Coordinator) -> None:
    tally = run_seeds(range(FIRST_SEED, FIRST_SEED + SCHEDULES), lambda seed: run(coordinator, seed))
    head = f"process simulation: {SCHEDULES} schedules from seed {FIRST_SEED}"
    print("\n" + tally.summary(head, extra=f"{coordinator.spawned} worker processes, "))
    assert not tally.failures, (
        "replay with FACE_BEAUTY_SIM_SEED=<seed> FACE_BEAUTY_SIM_PROC_SCHEDULES=1:\n"
        + "\n".join(tally.failures[:20])
    )
    assert tally.paid > 0 and tally.steps > 0
    assert "proc_worker" not in sys.modules  # it patches the process that imports it (the workers only)


# Seeds whose schedules take the faults most likely to depend on timing: 15 kills at a step and
# in flight; 56 kills in flight after a refused key and a dropped answer; 57 holds five uploads
# (heartbeats beat); 103 cancels, locks the journal, drops an answer; 158 cancels, kills, locks;
# 197 restarts an emulator, kills, Ctrl-C twice; 20 restarts, Ctrl-C twice, SQLite errors.
REPLAYED = (15, 56, 57, 103, 158, 197, 20)


def test_process_schedules_replay_exactly_from_their_seeds(coordinator: Coordinator) -> None:
    """Every event of a schedule (each worker's steps in order, faults, heartbeats, deaths, the
    results' statuses, each paid submit per request identity) is the same when the seed runs in
    processes that ran other schedules before, and again in new processes on new ports."""
    first = {seed: run(coordinator, seed) for seed in REPLAYED}
    fresh = Coordinator()
    try:
        again = {seed: run(fresh, seed) for seed in reversed(REPLAYED)}
    finally:
        fresh.close()
    events = [event for seed in REPLAYED for event in first[seed].trace]
    for needed in ("kill@in-flight", " held", " beat 1", "locked@", "api_restart@", "ctrl_c_twice@", "eof"):
        assert any(needed in event for event in events), needed  # the seeds still take these faults
    for seed in REPLAYED:
        one, two = first[seed].trace, again[seed].trace
        at = next(
            (i for i, (a, b) in enumerate(zip(one, two, strict=False)) if a != b), min(len(one), len(two))
        )
        assert one == two, (
            f"seed {seed} diverges at event {at}: {one[at - 3 : at + 2]} != {two[at - 3 : at + 2]}"
        )
        digest = hashlib.sha256("\n".join(one).encode()).hexdigest()[:16]
        print(f"seed {seed}: {len(one)} events, {first[seed].paid} paid, trace {digest}")


def test_the_process_simulation_sees_a_second_payment(coordinator: Coordinator) -> None:
    """The invariant can fail: workers without a ledger (journal and cache off) pay twice, as the emulator counts."""
    with tempfile.TemporaryDirectory(prefix="fbp-psim-") as folder:
        outcome = coordinator.run(3, Path(folder), without_ledger=True)
    assert any(v.invariant.startswith("at most one paid submit") for v in outcome.violations)
