"""The money path under random schedules and faults with worker OS processes (issue 16, item 7).

The same invariants as test_money_path_simulation.py, with 2-3 real processes (the CLI's and the
ComfyUI node's entry into the package) on one per-user ledger, the real emulator over HTTP
counting paid submits, and real SIGKILLs (proc_harness.py). CI runs
FACE_BEAUTY_SIM_PROC_SCHEDULES schedules (default 50) from FACE_BEAUTY_SIM_SEED (default 0); a
failure prints its seed, and `FACE_BEAUTY_SIM_SEED=<seed> FACE_BEAUTY_SIM_PROC_SCHEDULES=1`
replays it exactly. The soak is the same test with more schedules (docs/development.md).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from proc_harness import Coordinator
from sim_harness import Outcome

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
    started = time.monotonic()
    failures, faults, steps, paid = [], Counter(), 0, 0
    for seed in range(FIRST_SEED, FIRST_SEED + SCHEDULES):
        outcome = run(coordinator, seed)
        steps, paid = steps + outcome.steps, paid + outcome.paid
        faults.update(fault.split("@")[0] for fault in outcome.faults)
        failures += [f"seed {seed}: {v.invariant}: {v.detail}" for v in outcome.violations]
    print(
        f"\nprocess simulation: {SCHEDULES} schedules from seed {FIRST_SEED} in {time.monotonic() - started:.1f} s, "
        f"{steps} steps, {paid} paid requests, {coordinator.spawned} worker processes, "
        f"faults {dict(sorted(faults.items()))}"
    )
    assert not failures, (
        "replay with FACE_BEAUTY_SIM_SEED=<seed> FACE_BEAUTY_SIM_PROC_SCHEDULES=1:\n"
        + "\n".join(failures[:20])
    )
    assert paid > 0 and steps > 0


def test_a_process_schedule_replays_exactly_from_its_seed(coordinator: Coordinator) -> None:
    first, again = run(coordinator, 15), run(coordinator, 15)  # seed 15: kills at a step and in flight
    assert "kill@in-flight" in first.faults
    assert (first.faults, first.steps, first.paid) == (again.faults, again.steps, again.paid)


def test_the_process_simulation_sees_a_second_payment(coordinator: Coordinator) -> None:
    """The invariant can fail: workers without a ledger (journal and cache off) pay twice, as the emulator counts."""
    with tempfile.TemporaryDirectory(prefix="fbp-psim-") as folder:
        outcome = coordinator.run(3, Path(folder), without_ledger=True)
    assert any(v.invariant.startswith("at most one paid submit") for v in outcome.violations)
