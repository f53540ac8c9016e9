"""The money path under random schedules and faults (issue 16): the invariants hold for every seed.

CI runs FACE_BEAUTY_SIM_SCHEDULES schedules (default 2000) from FACE_BEAUTY_SIM_SEED (default 0);
a failure prints its seed, and `FACE_BEAUTY_SIM_SEED=<seed> FACE_BEAUTY_SIM_SCHEDULES=1` replays
it exactly. The soak is the same test with more schedules (docs/development.md).
"""

from __future__ import annotations

import os
from typing import Any

from sim_harness import Outcome, run_schedule
from sim_tally import run_seeds

SCHEDULES = int(os.environ.get("FACE_BEAUTY_SIM_SCHEDULES", "2000"))
FIRST_SEED = int(os.environ.get("FACE_BEAUTY_SIM_SEED", "0"))


def test_every_schedule_keeps_the_invariants() -> None:
    tally = run_seeds(range(FIRST_SEED, FIRST_SEED + SCHEDULES), run_schedule)
    print("\n" + tally.summary(f"simulation: {SCHEDULES} schedules from seed {FIRST_SEED}"))
    assert not tally.failures, (
        "replay with FACE_BEAUTY_SIM_SEED=<seed> FACE_BEAUTY_SIM_SCHEDULES=1:\n"
        + "\n".join(tally.failures[:20])
    )


def test_a_schedule_replays_exactly_from_its_seed() -> None:
    first, again = run_schedule(12345), run_schedule(12345)
    assert (first.faults, first.steps, first.paid) == (again.faults, again.steps, again.paid)


# -- the same schedules on the shared PostgreSQL ledger (issue 18) ------------------------------

PG_SCHEDULES = int(os.environ.get("FACE_BEAUTY_SIM_PG_SCHEDULES", "300"))


def test_every_schedule_keeps_the_invariants_on_postgresql(postgres_url: str, tmp_path: Any) -> None:
    from sim_postgres import run_schedule_postgres

    def run(seed: int) -> Outcome:
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        return run_schedule_postgres(seed, postgres_url, folder)

    tally = run_seeds(range(FIRST_SEED, FIRST_SEED + PG_SCHEDULES), run)
    print("\n" + tally.summary(f"simulation on PostgreSQL: {PG_SCHEDULES} schedules from seed {FIRST_SEED}"))
    assert not tally.failures, (
        "replay with FACE_BEAUTY_SIM_SEED=<seed> FACE_BEAUTY_SIM_PG_SCHEDULES=1:\n"
        + "\n".join(tally.failures[:20])
    )
