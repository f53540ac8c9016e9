"""When to ask whether a task is done: around the moment it is expected to finish.

Queries cost no credits but the API has a QPS limit, and a result seen late is time lost, so
the schedule spends its few queries where the end is likely: it learns how long tasks take
from the tasks this machine has finished (task_timings.py keeps them per API address), looks
finely around that moment, and backs off after it, up to the vendor's documented 5 s. Before
anything is known it looks at a fixed fraction of the time elapsed (lateness stays a fraction
of the task's own length, whatever it is).

Everything here is a pure function of its arguments: times are seconds after the submit was
sent (the API's clock starts once the upload is in), and `FaceBeautyClient.wait` turns them into sleeps (clipped to the deadline: a slow
or failed task keeps being polled, at most `max_interval` apart, until then).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

FINE_STEP = 0.2  # seconds between looks around the expected end
MIN_FIRST = 0.2  # never look sooner than this after the submit
MARGIN = 0.2  # start looking this much (plus the spread) before the expected end
MIN_SPREAD = 0.1  # what even identical tasks vary by (timer and network jitter)
MAX_WINDOW_QUERIES = 6  # a wide window is looked at more coarsely, not more often
SCOUT_FROM = 3.0  # a window starting this late gets one look halfway, in case tasks got faster
BACKOFF = 1.5  # after the window, each wait is this much longer ...
MAX_INTERVAL = 5.0  # ... up to the vendor's documented interval
PRIOR_FIRST = 0.5  # nothing learned yet: first look after 0.5 s,
PRIOR_GROWTH = 0.25  # then every quarter of the time elapsed (a task seen at most ~25 % late),
PRIOR_MIN_STEP = 0.25  # at least 0.25 s apart
RECENT = 3  # the expectation follows the last few tasks: one outlier does not move it


@dataclass(frozen=True)
class Observation:
    """What one finished task told us, in seconds after its submit was sent.

    It was last seen running at `before` (0 when the first look already found it done) and
    first seen done at `after`, so it finished somewhere in between.
    """

    before: float
    after: float

    @property
    def estimate(self) -> float:
        return (self.before + self.after) / 2


@dataclass(frozen=True)
class Expectation:
    """When the next task should be done (`seconds` after its submit was sent), give or take `spread`."""

    seconds: float
    spread: float


def expect(observations: Sequence[Observation]) -> Expectation | None:
    """The expectation from recent observations (newest first); None before any.

    While the newest tasks agree (their brackets overlap) the end lies in the overlap, which
    narrows with every task. When they disagree (the processing time changed, or varies), the
    median of the last `RECENT` is expected, give or take their spread: a change is followed
    within two or three tasks (a batch's next wave) while one odd task is outvoted.
    """
    recent = [o for o in observations[:RECENT] if o.after > 0 and o.after >= o.before >= 0]
    if not recent:
        return None
    for count in range(len(recent), 0, -1):
        low = max(o.before for o in recent[:count])
        high = min(o.after for o in recent[:count])
        if low < high and (count >= 2 or len(recent) == 1):
            return _expectation((low + high) / 2, (high - low) / 2)
    middles = [o.estimate for o in recent]
    seconds = statistics.median(middles)
    return _expectation(seconds, max(abs(value - seconds) for value in middles))


def _expectation(seconds: float, spread: float) -> Expectation:
    return Expectation(seconds, min(max(spread, MIN_SPREAD), seconds / 2))


def query_times(expectation: Expectation | None, *, max_interval: float = MAX_INTERVAL) -> Iterator[float]:
    """Endless, increasing times (seconds after the submit) at which to ask about a task."""
    if expectation is None:
        yield from _prior_times(max_interval)
        return
    seconds, spread = expectation.seconds, expectation.spread
    early = min(MARGIN + spread, seconds / 2)
    start = max(MIN_FIRST, seconds - early)
    end = seconds + early
    if start >= SCOUT_FROM:
        yield start / 2
    step = min(max(FINE_STEP, (end - start) / MAX_WINDOW_QUERIES), max_interval)
    moment = start
    while moment < end:
        yield moment
        moment += step
    yield from _backing_off(moment, step, max_interval)


def _prior_times(max_interval: float) -> Iterator[float]:
    moment = PRIOR_FIRST
    while True:
        yield moment
        moment += min(max(PRIOR_GROWTH * moment, PRIOR_MIN_STEP), max_interval)


def _backing_off(moment: float, step: float, max_interval: float, factor: float = BACKOFF) -> Iterator[float]:
    interval = step
    while True:
        yield moment
        interval = min(interval * factor, max_interval)
        moment += interval


def fixed_times(initial: float, factor: float, maximum: float) -> Iterator[float]:
    """The plain schedule (`--poll`, tests): after `initial`, each wait `factor` times longer, up to `maximum`."""
    return _backing_off(initial, initial, maximum, factor)


class TaskTimer:
    """Turns the states seen while polling one task into an Observation (None until it is done)."""

    def __init__(self) -> None:
        self.before = 0.0
        self.observation: Observation | None = None

    def saw(self, done: bool, elapsed: float) -> None:
        if self.observation is not None:
            return
        if done:
            self.observation = Observation(self.before, max(elapsed, self.before))
        else:
            self.before = elapsed
