"""How many tasks may be in flight: halved when the API says "slow down", grown back slowly.

A burst of rate-limit answers seen by N concurrent workers is one signal, not N: the limit is
halved at most once per cool-down window. Growth is additive (+1 after `grow_after`
consecutive successes), so the limit settles just under what the account allows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .. import clock as _clock
from ..clock import CANCEL_CHECK_INTERVAL, DEFAULT_CLOCK, CancelCheck, Clock
from ..errors import InvalidParameterError
from .local_work import LocalWorkGate

DEFAULT_COOLDOWN = 1.0
DEFAULT_CONCURRENCY = 3  # images in flight in a batch, unless the caller says otherwise
MAX_CONCURRENCY = 16


def check_concurrency(concurrency: object) -> int:
    """The one range check of the concurrency setting (batch, CLI --concurrency, Options node)."""
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise InvalidParameterError(
            f"concurrency: {concurrency!r} is out of range; allowed 1..{MAX_CONCURRENCY} images in flight."
        )
    return concurrency


_HISTORY_CAP = 1000


class LimiterClosed(Exception):
    """No new task may start: a task failed with an error every other task would get too.

    Raised by `slot()`; `args[0]` is that error. Not a BeautyError: the batch reports the
    images concerned as "not sent", not as failures of their own.
    """


class AdaptiveLimiter:
    """Bounds tasks in flight; thread-safe. Use `with limiter.slot(check_cancel): ...` around each task."""

    def __init__(
        self,
        maximum: int,
        *,
        grow_after: int = 4,
        clock: Clock | None = None,
        cooldown: float = DEFAULT_COOLDOWN,
        close_on: Callable[[BaseException], bool] | None = None,
        local_work: LocalWorkGate | None = None,
    ) -> None:
        if isinstance(maximum, bool) or not isinstance(maximum, int) or maximum < 1:
            raise InvalidParameterError(
                f"maximum: {maximum!r} is not valid; the number of tasks in flight must be a whole number >= 1."
            )
        if isinstance(grow_after, bool) or not isinstance(grow_after, int) or grow_after < 1:
            raise InvalidParameterError(
                f"grow_after: {grow_after!r} is not valid; expected a whole number of successes >= 1."
            )
        if cooldown < 0:
            raise InvalidParameterError(f"cooldown: {cooldown!r} is not valid; expected seconds >= 0.")
        self._maximum = maximum
        self._grow_after = grow_after
        self._cooldown = float(cooldown)
        self._clock = clock or DEFAULT_CLOCK
        self._cond = threading.Condition()
        self._limit = maximum
        self._in_flight = 0
        self._streak = 0
        self._last_cut: float | None = None
        self._close_on = close_on
        self._closed_by: BaseException | None = None
        self._history = [maximum]
        # Slow start (`submit_turn`): the first paid request goes alone until one was accepted.
        self._accepted = False
        self._probing = False
        # The batch's gate on image work (decode/encode/write), if any: see local_work.py.
        self.local_work = local_work

    @property
    def maximum(self) -> int:
        return self._maximum

    @property
    def limit(self) -> int:
        with self._cond:
            return self._limit

    @property
    def closed_by(self) -> BaseException | None:
        """The error that closed the limiter, or None while tasks may still start."""
        with self._cond:
            return self._closed_by

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    @contextmanager
    def slot(self, check_cancel: CancelCheck | None = None) -> Iterator[None]:
        """Hold one of `limit` places while the body runs; blocks until one is free.

        While blocked, the cancel hook is called at least every 0.25 s: whatever it raises
        propagates, a truthy answer raises RetouchCancelled. Nothing is held when it raises.
        A body that fails with an error `close_on` accepts closes the limiter before its slot
        is freed, so no waiting task starts after it: they all get LimiterClosed.
        A local-work permit of this thread is given back first: nobody waits for the API holding one.
        """
        if self.local_work is not None:
            self.local_work.release()
        while True:
            _clock.check_cancel(check_cancel)
            with self._cond:
                if self._closed_by is not None:
                    raise LimiterClosed(self._closed_by)
                if self._in_flight < self._limit:
                    self._in_flight += 1
                    break
                self._cond.wait(CANCEL_CHECK_INTERVAL)
        try:
            yield
        except BaseException as error:
            if self._close_on is not None and self._close_on(error):
                with self._cond:
                    if self._closed_by is None:
                        self._closed_by = error
            raise
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    @contextmanager
    def submit_turn(self, check_cancel: CancelCheck | None = None) -> Iterator[None]:
        """Slow start: the batch's first paid request goes alone; the others wait until one was accepted.

        A wrong key or an empty account then costs one refused request, whatever the batch size
        and concurrency: the refusal closes the limiter and the waiters get LimiterClosed. A first
        request that fails otherwise hands the turn to the next waiter.
        """
        while True:
            _clock.check_cancel(check_cancel)
            with self._cond:
                if self._closed_by is not None:
                    raise LimiterClosed(self._closed_by)
                if self._accepted:
                    probe = False
                    break
                if not self._probing:
                    self._probing = probe = True
                    break
                self._cond.wait(CANCEL_CHECK_INTERVAL)
        try:
            yield
        except BaseException as error:
            if probe:
                with self._cond:
                    self._probing = False
                    if self._close_on is not None and self._close_on(error) and self._closed_by is None:
                        self._closed_by = error
                    self._cond.notify_all()
            raise
        if probe:
            with self._cond:
                self._probing, self._accepted = False, True
                self._cond.notify_all()

    def on_rate_limited(self) -> None:
        """The API said "slow down": halve the limit (not below 1), once per cool-down window."""
        with self._cond:
            self._streak = 0
            now = self._clock.monotonic()
            if self._last_cut is not None and now - self._last_cut < self._cooldown:
                return  # the same burst, seen by another worker
            self._last_cut = now
            new = max(1, self._limit // 2)
            if new != self._limit:
                self._set(new)

    def on_success(self) -> None:
        """A task went through: after `grow_after` successes in a row, allow one more in flight."""
        with self._cond:
            self._streak += 1
            if self._streak < self._grow_after:
                return
            self._streak = 0
            if self._limit < self._maximum:
                self._set(self._limit + 1)
                self._cond.notify_all()

    def history(self) -> list[int]:
        """The limit at the start and after each change, in order."""
        with self._cond:
            return list(self._history)

    def _set(self, limit: int) -> None:
        self._limit = limit
        self._history.append(limit)
        if len(self._history) > _HISTORY_CAP:
            del self._history[1 : len(self._history) - _HISTORY_CAP + 1]
