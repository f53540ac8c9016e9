"""The claim rule both ledgers share (ledger/journal_claims.decide_claim), row by row."""

from __future__ import annotations

import socket

import pytest

from beauty_api.ledger.journal_claims import (
    CACHED,
    RESUME,
    SUBMIT,
    UNKNOWN,
    WAIT,
    decide_claim,
    marks_unknown,
)
from beauty_api.ledger.journal_rows import JournalEntry

TIMEOUT = 180.0
ELSEWHERE = "another-host:4242:1:abcd"  # not on this host: alive until its lease runs out


def entry(
    state: str,
    *,
    owner: str = ELSEWHERE,
    claimed_at: float = 1000.0,
    task_id: str | None = None,
    result_url: str | None = None,
) -> JournalEntry:
    return JournalEntry(
        fingerprint="f" * 64,
        state=state,
        task_id=task_id,
        owner=owner,
        claimed_at=claimed_at,
        submitted_at=claimed_at if task_id else None,
        result_url=result_url,
        request_id="",
        updated_at=claimed_at,
    )


def test_no_row_means_submit() -> None:
    assert decide_claim(None, 1000.0, TIMEOUT).action == SUBMIT


@pytest.mark.parametrize("state", ["submitting", "sending"])
def test_a_live_sender_is_waited_for(state: str) -> None:
    row = entry(state)
    claim = decide_claim(row, 1000.0 + 50.0, TIMEOUT)
    assert (claim.action, claim.owner) == (WAIT, ELSEWHERE)
    assert not marks_unknown(row, claim)


def test_a_stale_submitting_claim_is_taken_over() -> None:
    assert decide_claim(entry("submitting"), 1000.0 + TIMEOUT + 1, TIMEOUT).action == SUBMIT


def test_a_stale_sending_claim_becomes_unknown_and_is_marked() -> None:
    row = entry("sending")
    claim = decide_claim(row, 1000.0 + TIMEOUT + 1, TIMEOUT)
    assert claim.action == UNKNOWN and claim.submitted_at == 1000.0
    assert marks_unknown(row, claim)


def test_a_dead_local_owner_is_stale_at_once() -> None:
    dead = f"{socket.gethostname()}:999999999:1:abcd"  # no such pid
    assert decide_claim(entry("sending", owner=dead), 1001.0, TIMEOUT).action == UNKNOWN


def test_a_clock_set_far_back_does_not_freeze_a_claim() -> None:
    assert decide_claim(entry("submitting"), 1000.0 - TIMEOUT - 1, TIMEOUT).action == SUBMIT


def test_unknown_stays_unknown_and_is_not_marked_again() -> None:
    row = entry("unknown")
    claim = decide_claim(row, 5000.0, TIMEOUT)
    assert claim.action == UNKNOWN and not marks_unknown(row, claim)


@pytest.mark.parametrize("later", [2000.0, 1000.0 + 86400.0, 1000.0 + 40 * 86400.0, 1000.0 - 7200.0])
def test_a_recorded_task_resumes_whatever_the_clock_says(later: float) -> None:
    """The age of a row decides nothing: the clock may have jumped since the API started the task
    (soak seeds 114271 and 146628 paid twice when a row 'expired' by this clock while the API still
    kept its result). Resuming asks the API, and only a task it no longer knows is sent again."""
    row = entry("submitted", task_id="T1", result_url="https://cdn/x?token=s")
    claim = decide_claim(row, later, TIMEOUT)
    assert (claim.action, claim.task_id, claim.result_url) == (RESUME, "T1", "https://cdn/x?token=s")


def test_an_unknown_outcome_does_not_lapse_with_time() -> None:
    assert decide_claim(entry("unknown"), 1000.0 + 40 * 86400.0, TIMEOUT).action == UNKNOWN
    dead_sender = entry("sending", claimed_at=1000.0)
    assert decide_claim(dead_sender, 1000.0 + 40 * 86400.0, TIMEOUT).action == UNKNOWN  # not "absent"


def test_a_sync_answer_reads_the_cache_and_anything_else_submits() -> None:
    assert decide_claim(entry("done"), 2000.0, TIMEOUT).action == CACHED
    assert decide_claim(entry("done"), 1000.0 + 40 * 86400.0, TIMEOUT).action == CACHED
    assert decide_claim(entry("failed"), 2000.0, TIMEOUT).action == SUBMIT
