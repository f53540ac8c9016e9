"""AdaptiveLimiter: the bound holds under threads, rate limits halve once per burst, growth is slow.

Cool-down timing runs on a FakeClock; the few real waits (threads blocking on a slot) are a
few hundredths of a second.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import pytest

from beauty_api.clock import FakeClock
from beauty_api.errors import InvalidParameterError, RetouchCancelled
from beauty_api.run.concurrency import AdaptiveLimiter


def test_in_flight_never_exceeds_the_limit_under_threads() -> None:
    limiter = AdaptiveLimiter(3)
    lock = threading.Lock()
    current = peak = 0

    def work() -> None:
        nonlocal current, peak
        for _ in range(5):
            with limiter.slot():
                with lock:
                    current += 1
                    peak = max(peak, current)
                time.sleep(0.002)
                with lock:
                    current -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3
    assert limiter.in_flight == 0


def test_a_burst_of_rate_limits_halves_once_per_cooldown() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(8, clock=clock, cooldown=1.0)
    for _ in range(8):  # eight workers see the same 429 burst
        limiter.on_rate_limited()
    assert limiter.limit == 4
    clock.advance(0.5)
    limiter.on_rate_limited()
    assert limiter.limit == 4  # still the same burst
    clock.advance(0.6)
    limiter.on_rate_limited()
    assert limiter.limit == 2
    clock.advance(1.0)
    limiter.on_rate_limited()
    clock.advance(1.0)
    limiter.on_rate_limited()
    assert limiter.limit == 1  # never below one
    assert limiter.history() == [8, 4, 2, 1]


def test_concurrent_rate_limit_reports_halve_once() -> None:
    limiter = AdaptiveLimiter(16, clock=FakeClock())
    barrier = threading.Barrier(16)

    def hit() -> None:
        barrier.wait()
        limiter.on_rate_limited()

    threads = [threading.Thread(target=hit) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert limiter.history() == [16, 8]


def test_the_limit_grows_back_slowly_and_never_above_maximum() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(3, grow_after=4, clock=clock)
    limiter.on_rate_limited()
    assert limiter.limit == 1
    for _ in range(3):
        limiter.on_success()
    assert limiter.limit == 1
    limiter.on_success()
    assert limiter.limit == 2
    for _ in range(3):
        limiter.on_success()
    clock.advance(5)
    limiter.on_rate_limited()  # a rate limit resets the streak of successes
    assert limiter.limit == 1
    limiter.on_success()
    assert limiter.limit == 1
    for _ in range(100):
        limiter.on_success()
    assert limiter.limit == limiter.maximum == 3
    assert limiter.history() == [3, 1, 2, 1, 2, 3]


def test_a_lowered_limit_holds_back_new_slots_until_enough_finish() -> None:
    limiter = AdaptiveLimiter(4, clock=FakeClock())
    acquired = threading.Event()
    with ExitStack() as held:
        slots = [ExitStack() for _ in range(4)]
        for stack in slots:
            stack.enter_context(limiter.slot())
            held.push(stack)
        limiter.on_rate_limited()
        assert (limiter.limit, limiter.in_flight) == (2, 4)

        def take() -> None:
            with limiter.slot():
                acquired.set()

        waiter = threading.Thread(target=take)
        waiter.start()
        slots[0].close()
        slots[1].close()
        assert not acquired.wait(0.05)  # 2 in flight, limit 2: still full
        slots[2].close()
        assert acquired.wait(1.0)
        waiter.join()


def test_growth_wakes_a_waiting_worker() -> None:
    limiter = AdaptiveLimiter(2, grow_after=1, clock=FakeClock())
    limiter.on_rate_limited()
    acquired = threading.Event()
    with limiter.slot():

        def take() -> None:
            with limiter.slot():
                acquired.set()

        waiter = threading.Thread(target=take)
        waiter.start()
        assert not acquired.wait(0.03)
        limiter.on_success()
        assert acquired.wait(1.0)
        waiter.join()


def test_cancel_while_blocked_raises_quickly() -> None:
    limiter = AdaptiveLimiter(1)
    cancel = threading.Event()
    outcome: list[BaseException] = []
    with limiter.slot():

        def blocked() -> None:
            try:
                with limiter.slot(cancel.is_set):
                    pass
            except BaseException as error:
                outcome.append(error)

        waiter = threading.Thread(target=blocked)
        waiter.start()
        time.sleep(0.02)
        started = time.monotonic()
        cancel.set()
        waiter.join(2.0)
        elapsed = time.monotonic() - started
    assert len(outcome) == 1 and isinstance(outcome[0], RetouchCancelled)
    assert elapsed < 0.6  # woken at least every 0.25 s (plus scheduling slack)
    assert limiter.in_flight == 0


def test_a_cancel_hook_that_raises_propagates_unchanged_and_holds_nothing() -> None:
    class Interrupted(Exception):
        pass

    def hook() -> None:
        raise Interrupted

    limiter = AdaptiveLimiter(1)
    with pytest.raises(Interrupted), limiter.slot(hook):
        pass
    assert limiter.in_flight == 0


def test_a_slot_is_given_back_when_the_body_fails() -> None:
    limiter = AdaptiveLimiter(1)
    with pytest.raises(KeyError), limiter.slot():
        raise KeyError("boom")
    assert limiter.in_flight == 0
    with limiter.slot():
        assert limiter.in_flight == 1


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "3"])
def test_a_bad_maximum_is_refused_with_a_clear_message(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="maximum") as info:
        AdaptiveLimiter(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_a_bad_grow_after_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="grow_after"):
        AdaptiveLimiter(2, grow_after=0)
