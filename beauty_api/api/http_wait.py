"""An HTTP request the caller can walk away from when Cancel is pressed.

`requests` cannot interrupt a call that waits for an answer, so a cancellable request runs in a
helper thread while the caller waits in short slices, checking the cancel hook each time. On
Cancel the caller raises at once (within CANCEL_SLICE_SECONDS); the helper thread finishes
in the background and closes whatever answer still arrives, returning its connection.

Only requests that are free and safe to abandon go this way (task queries, result downloads).
A submit is never abandoned: its answer names the paid task, so it is always read to the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import requests
from requests import exceptions as rex

from ..clock import CancelCheck
from ..clock import check_cancel as raise_if_cancelled

CANCEL_SLICE_SECONDS = 0.05


def send_cancellably(
    send: Callable[[], requests.Response], check_cancel: CancelCheck | None
) -> tuple[requests.Response | None, rex.RequestException | None]:
    """`send()`'s response, or the requests exception it raised (returned, not raised, so the caller
    can build its own error outside any `except` block). Whatever the cancel hook raises propagates
    within CANCEL_SLICE_SECONDS; a truthy answer raises RetouchCancelled."""
    if check_cancel is None:
        try:
            return send(), None
        except rex.RequestException as exc:
            return None, exc
    call = _BackgroundCall(send)
    while not call.done.wait(CANCEL_SLICE_SECONDS):
        try:
            raise_if_cancelled(check_cancel)
        except BaseException:
            call.abandon()
            raise
    return call.result()


class _BackgroundCall:
    """One `send()` on a daemon thread; an abandoned call closes its late response."""

    def __init__(self, send: Callable[[], requests.Response]) -> None:
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._abandoned = False
        self._response: requests.Response | None = None
        self._failure: rex.RequestException | None = None
        self._error: BaseException | None = None
        thread = threading.Thread(target=self._run, args=(send,), name="face-beauty-http", daemon=True)
        thread.start()

    def _run(self, send: Callable[[], requests.Response]) -> None:
        response: requests.Response | None = None
        try:
            response = send()
        except rex.RequestException as exc:
            self._failure = exc
        except BaseException as error:  # a bug: re-raised in the caller
            self._error = error
        with self._lock:
            self._response = response
            abandoned = self._abandoned
            self.done.set()
        if abandoned and response is not None:
            response.close()

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            response = self._response if self.done.is_set() else None
        if response is not None:
            response.close()

    def result(self) -> tuple[requests.Response | None, rex.RequestException | None]:
        if self._error is not None:
            raise self._error
        return self._response, self._failure
