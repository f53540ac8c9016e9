"""Runs a simulation's schedules seed by seed and adds up what they did, for the simulation tests.

Not a test module (no `test_` prefix). The thread, PostgreSQL and process simulations differ only
in how one seed's schedule runs; the tally of steps, paid requests, faults and violations, and the
summary line each test prints, are the same, so they live here once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sim_harness import Outcome


@dataclass
class Tally:
    """What a run of schedules added up to; `failures` names each violation with its seed, for replay."""

    seconds: float = 0.0
    steps: int = 0
    paid: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def summary(self, head: str, extra: str = "") -> str:
        """`head` (what ran), then the time, steps, paid requests, `extra` and the faults by kind."""
        return (
            f"{head} in {self.seconds:.1f} s, {self.steps} steps, {self.paid} paid requests, "
            f"{extra}faults {dict(sorted(self.faults.items()))}"
        )


def run_seeds(seeds: Iterable[int], run: Callable[[int], Outcome]) -> Tally:
    """`run(seed)` for each seed in order; the sums, and every violation as "seed N: invariant: detail"."""
    started = time.monotonic()
    tally = Tally()
    for seed in seeds:
        outcome = run(seed)
        tally.steps, tally.paid = tally.steps + outcome.steps, tally.paid + outcome.paid
        tally.faults.update(fault.split("@")[0] for fault in outcome.faults)
        tally.failures += [f"seed {seed}: {v.invariant}: {v.detail}" for v in outcome.violations]
    tally.seconds = time.monotonic() - started
    return tally
