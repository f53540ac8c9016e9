"""The money path under random schedules and faults (issue 16): the invariants hold for every seed.

CI runs FACE_BEAUTY_SIM_SCHEDULES schedules (default 2000) from FACE_BEAUTY_SIM_SEED (default 0);
a failure prints its seed, and `FACE_BEAUTY_SIM_SEED=<seed> FACE_BEAUTY_SIM_SCHEDULES=1` replays
it exactly. The soak is the same test with more schedules (docs/development.md).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from sim_harness import run_schedule

SCHEDULES = int(os.environ.get("FACE_BEAUTY_SIM_SCHEDULES", "2000"))
FIRST_SEED = int(os.environ.get("FACE_BEAUTY_SIM_SEED", "0"))


def test_every_schedule_keeps_the_invariants() -> None:
    started = time.monotonic()
    failures, faults, steps, paid = [], Counter(), 0, 0
    for seed in range(FIRST_SEED, FIRST_SEED + SCHEDULES):
        outcome = run_schedule(seed)
        steps, paid = steps + outcome.steps, paid + outcome.paid
        faults.update(fault.split("@")[0] for fault in outcome.faults)
        failures += [f"seed {seed}: {v.invariant}: {v.detail}" for v in outcome.violations]
    print(
        f"\nsimulation: {SCHEDULES} schedules from seed {FIRST_SEED} in {time.monotonic() - started:.1f} s, "
        f"{steps} steps, {paid} paid requests, faults {dict(sorted(faults.items()))}"
    )
    assert not failures, "replay with FACE_BEAUTY_SIM_SEED=<seed> FACE_BEAUTY_SIM_SCHEDULES=1:\n" + "\n".join(
        failures[:20]
    )


def test_a_schedule_replays_exactly_from_its_seed() -> None:
    first, again = run_schedule(12345), run_schedule(12345)
    assert (first.faults, first.steps, first.paid) == (again.faults, again.steps, again.paid)


# -- the same schedules on the shared PostgreSQL ledger (issue 18) ------------------------------

PG_SCHEDULES = int(os.environ.get("FACE_BEAUTY_SIM_PG_SCHEDULES", "300"))


def test_every_schedule_keeps_the_invariants_on_postgresql(postgres_url: str, tmp_path: Any) -> None:
    from sim_postgres import run_schedule_postgres

    started = time.monotonic()
    failures, faults, steps, paid = [], Counter(), 0, 0
    for seed in range(FIRST_SEED, FIRST_SEED + PG_SCHEDULES):
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        outcome = run_schedule_postgres(seed, postgres_url, folder)
        steps, paid = steps + outcome.steps, paid + outcome.paid
        faults.update(fault.split("@")[0] for fault in outcome.faults)
        failures += [f"seed {seed}: {v.invariant}: {v.detail}" for v in outcome.violations]
    print(
        f"\nsimulation on PostgreSQL: {PG_SCHEDULES} schedules from seed {FIRST_SEED} in "
        f"{time.monotonic() - started:.1f} s, {steps} steps, {paid} paid requests, faults {dict(sorted(faults.items()))}"
    )
    assert not failures, (
        "replay with FACE_BEAUTY_SIM_SEED=<seed> FACE_BEAUTY_SIM_PG_SCHEDULES=1:\n" + "\n".join(failures[:20])
    )
