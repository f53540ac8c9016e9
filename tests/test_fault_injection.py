"""Proof of "never pay twice, never lose a result", one fault at a time, against the emulator.

Each scenario asserts the number of paid submits the emulator counted (`tasks_created`), that
every paid result reached the output or the cache, a clear error where one is due, and a
bounded run time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from pipeline_helpers import EMULATOR_KEY, FAST, make_backend, portraits, sample_portrait

from beauty_api.api.client import ClientSettings, FaceBeautyClient
from beauty_api.clock import FakeClock
from beauty_api.errors import (
    ApiError,
    BatchFailed,
    DeadlineExceeded,
    ResultExpired,
    RetouchCancelled,
    SubmitOutcomeUnknown,
    TaskFailedError,
)
from beauty_api.ledger.journal import CLAIM_TIMEOUT, TaskJournal
from beauty_api.ledger.ledger_choice import open_ledger
from beauty_api.ledger.storage_paths import state_dir
from beauty_api.params import BeautyParams
from beauty_api.run.api_backend import ApiBackend
from beauty_api.run.backend import RetouchOptions
from beauty_api.run.batch import retouch_batch

# Every scenario on the local SQLite ledger and on a shared PostgreSQL one (issue 18).
pytestmark = pytest.mark.usefixtures("both_ledgers")

HELPERS = Path(__file__).resolve().parent / "pipeline_helpers.py"
REPO = HELPERS.parents[1]
PARAMS = BeautyParams(smoothing=80)


@pytest.fixture
def state() -> Path:
    return state_dir()


@pytest.fixture
def images():
    return portraits(sample_portrait(), 4)


@pytest.fixture(autouse=True)
def _bounded_time():
    started = time.monotonic()
    yield
    assert time.monotonic() - started < 20, "a fault scenario must end by itself, quickly"


def _cached(backend, images, params=PARAMS) -> int:
    """How many of `images` are answered from the cache (no API call) now."""
    return sum(backend.retouch(image, params).origin == "cached" for image in images)


@pytest.mark.parametrize("endpoint", ["submit", "query", "download"])
def test_transient_5xx_are_retried_and_paid_once(emulator, state, images, endpoint) -> None:
    emulator.faults.server_errors(endpoint, 2, status=502, code="AI_SERVICE_ERROR")
    backend = make_backend(emulator.base_url, state)
    assert backend.retouch(images[0], PARAMS).origin == "new"
    assert emulator.stats.tasks_created == 1
    assert _cached(backend, images[:1]) == 1


@pytest.mark.parametrize("endpoint", ["query", "download"])
def test_dropped_connections_while_polling_or_downloading_are_retried(
    emulator, state, images, endpoint
) -> None:
    emulator.faults.drop_connections(endpoint, 2)
    backend = make_backend(emulator.base_url, state)
    assert backend.retouch(images[0], PARAMS).origin == "new"
    assert emulator.stats.tasks_created == 1 and _cached(backend, images[:1]) == 1


@pytest.mark.parametrize("after_processing", [False, True])
def test_a_dropped_submit_is_never_blindly_resubmitted(emulator, state, images, after_processing) -> None:
    # The client cannot tell whether the API created (and will bill) a task: it must not send a second one.
    emulator.faults.drop_connections("submit", 1, after_processing=after_processing)
    backend = make_backend(emulator.base_url, state)
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        backend.retouch(images[0], PARAMS)
    assert "paid" in str(caught.value) and "twice" in str(caught.value)
    assert emulator.stats.submits_received == 1
    assert emulator.stats.tasks_created == int(after_processing)


def test_malformed_json_while_polling_is_retried(emulator, state, images) -> None:
    emulator.faults.malformed_json("query", 2)
    backend = make_backend(emulator.base_url, state)
    assert backend.retouch(images[0], PARAMS).origin == "new"
    assert emulator.stats.tasks_created == 1


def test_malformed_json_on_submit_is_an_unknown_outcome_not_a_second_task(emulator, state, images) -> None:
    emulator.faults.malformed_json("submit", 1)
    with pytest.raises(SubmitOutcomeUnknown):
        make_backend(emulator.base_url, state).retouch(images[0], PARAMS)
    assert emulator.stats.submits_received == 1


def test_a_storm_of_429s_lowers_concurrency_and_every_image_is_paid_once(emulator, state, images) -> None:
    storm = 12
    emulator.faults.rate_limit_submits(storm, retry_after=0.01)
    # Which image meets how many of the 429s is up to the scheduler; with more attempts than the
    # storm has answers, no schedule can make one image give up, so the outcome is always the same.
    settings = replace(FAST, retry=replace(FAST.retry, max_attempts=storm + 1))
    backend = make_backend(emulator.base_url, state, settings=settings)
    result = retouch_batch(backend, images, PARAMS, concurrency=4)
    assert result.failures == []
    assert emulator.stats.tasks_created == 4 and result.credits_spent == 60
    assert emulator.stats.submits_received == storm + 4 and emulator.faults.pending() == []
    assert min(result.limit_history) < 4
    assert _cached(backend, images) == 4


def test_a_submit_retrying_past_the_claim_timeout_keeps_its_claim_so_nobody_pays_twice(
    emulator, state
) -> None:
    # Two Retry-After: 100 answers keep the submit busy for 200 s, past the 180 s claim timeout. At
    # 181 s another process claims the same image: it must be told to wait, not to submit.
    clock = FakeClock(start=1_000_000.0)
    journal = TaskJournal(state / "journal.sqlite3", time_source=clock.monotonic)
    settings = ClientSettings(timeout=900, retry=replace(FAST.retry, max_attempts=4))
    client = FaceBeautyClient(EMULATOR_KEY, emulator.base_url, settings=settings, clock=clock)
    backend = ApiBackend(client, journal=journal)
    emulator.faults.rate_limit_submits(2, retry_after=100)
    started = clock.monotonic()
    other_process: list[str] = []

    def meanwhile() -> bool:
        if clock.monotonic() - started >= CLAIM_TIMEOUT + 1 and not other_process:
            (entry,) = journal.entries()
            assert entry.state == "sending"  # the request may be on the wire
            other_process.append(journal.claim(entry.fingerprint, "another-host:4242:x").action)
        return False

    outcome = backend.retouch(portraits(sample_portrait(), 1)[0], PARAMS, check_cancel=meanwhile)

    assert clock.monotonic() - started >= 200
    assert other_process == ["wait"]
    assert outcome.origin == "new" and emulator.stats.tasks_created == 1


def test_out_of_credits_is_not_retried_and_says_to_top_up(make_emulator, state, images) -> None:
    emulator = make_emulator(credits=0)
    result = retouch_batch(make_backend(emulator.base_url, state), images[:2], PARAMS, concurrency=2)
    refused = [f for f in result.failures if f.code == "ERROR_NOT_ENOUGH_CREDITS"]
    # Both may have been in flight together; whichever was not is reported "not sent".
    assert refused and len(refused) + len(result.not_sent) == 2
    assert "top up" in str(refused[0].error)
    assert emulator.stats.submits_received == len(refused)  # none retried


@pytest.mark.parametrize(
    ("emulator_options", "code"),
    [({"credits": 0}, "ERROR_NOT_ENOUGH_CREDITS"), ({"api_key": "another-key"}, "ERROR_USER_NOT_EXISTS")],
)
def test_an_account_error_stops_the_batch_at_once_and_is_said_once(
    make_emulator, state, emulator_options, code
) -> None:
    emulator = make_emulator(**emulator_options)
    images = portraits(sample_portrait(), 20)
    stages: list[tuple[int, str, str | None]] = []
    result = retouch_batch(
        make_backend(emulator.base_url, state),
        images,
        PARAMS,
        concurrency=3,
        on_progress=lambda p: stages.append((p.index, p.stage, p.reason)),
    )
    refused = [f for f in result.failures if f.code == code]
    # Only the images in flight together (at most `concurrency`) were sent; no image starts after it.
    assert 1 <= len(refused) <= 3 and emulator.stats.submits_received == len(refused)
    assert len(result.not_sent) == 20 - len(refused) and len(result.failures) == 20
    not_sent_stages = [(i, reason) for i, stage, reason in stages if stage == "not_sent"]
    assert sorted(i for i, _ in not_sent_stages) == result.not_sent
    assert all(code in reason and "nothing was paid" in reason for _, reason in not_sent_stages)
    with pytest.raises(BatchFailed) as caught:
        result.raise_for_failures()
    message = str(caught.value)
    assert message.count(code) == 1 + 1  # the API's refusal once, and the not-sent line naming it once
    assert message.count("not sent") == 1


@pytest.mark.parametrize("shape", ["status3", "http_error"])
def test_a_failed_task_is_a_clear_error_and_the_rest_of_the_batch_is_kept(
    emulator, state, images, shape
) -> None:
    emulator.faults.fail_tasks(1, code="PROCESSING_FAILURE", shape=shape)
    backend = make_backend(emulator.base_url, state)
    result = retouch_batch(backend, images[:3], PARAMS, concurrency=1)
    assert len(result.failures) == 1 and isinstance(result.failures[0].error, TaskFailedError)
    assert "PROCESSING_FAILURE" in str(result.failures[0].error)
    # The failure was not billed; the two successes are cached, so a re-run pays for one image only.
    rerun = retouch_batch(backend, images[:3], PARAMS, concurrency=1)
    assert rerun.failures == [] and rerun.credits_spent == 15
    assert emulator.stats.tasks_created == 4 and emulator.stats.credits_billed == 45


def test_an_expired_result_url_of_a_recorded_task_is_submitted_again(emulator, state, images) -> None:
    backend = make_backend(emulator.base_url, state, cache=False)
    backend.retouch(images[0], PARAMS)
    emulator.expire_all_results()
    again = backend.retouch(images[0], PARAMS)
    assert again.origin == "new" and emulator.stats.tasks_created == 2


def test_after_an_emulator_restart_a_recorded_task_is_retired_not_stuck(make_emulator, state, images) -> None:
    # The task's result URL was recorded; the restarted emulator (same API port) knows no task and
    # its result host moved. Re-runs used to "resume" the dead task forever.
    first = make_emulator()
    make_backend(first.base_url, state, cache=False).retouch(images[0], PARAMS)
    port = int(first.base_url.rsplit(":", 1)[1])
    first.stop()
    restarted = make_emulator(port=port)
    started = time.monotonic()
    again = make_backend(restarted.base_url, state, cache=False).retouch(images[0], PARAMS)
    assert (again.origin, restarted.stats.tasks_created) == ("new", 1)
    assert time.monotonic() - started < 5  # one quick look at the dead result host, not a retry loop
    third = make_backend(restarted.base_url, state, cache=False).retouch(images[0], PARAMS)
    assert third.origin == "resumed" and restarted.stats.tasks_created == 1


def test_an_unreachable_result_of_a_listed_task_says_so_and_names_the_forget_command(
    emulator, state, images
) -> None:
    from beauty_api.cli import main
    from beauty_api.errors import ResumeFailed

    backend = make_backend(emulator.base_url, state, cache=False)
    task_id = backend.retouch(images[0], PARAMS).task_id
    emulator.faults.drop_connections("download", 100)  # the API still lists it; its result host fails
    with pytest.raises(ResumeFailed) as caught:
        backend.retouch(images[0], PARAMS)
    message = str(caught.value)
    assert f"python -m beauty_api journal forget {task_id}" in message and "unknown" in message
    assert emulator.stats.tasks_created == 1  # not paid again on a guess
    assert main(["journal", "forget", task_id]) == 0
    emulator.faults.clear()
    assert backend.retouch(images[0], PARAMS).origin == "new" and emulator.stats.tasks_created == 2


def test_a_resume_lets_cancel_and_a_refused_key_through_unchanged(emulator, state, images) -> None:
    backend = make_backend(emulator.base_url, state, cache=False)
    backend.retouch(images[0], PARAMS)  # recorded in the journal
    emulator.faults.server_errors("query", 100, status=503)  # the API cannot answer about the task
    queries = emulator.stats.queries
    with pytest.raises(RetouchCancelled):
        backend.retouch(images[0], PARAMS, check_cancel=lambda: emulator.stats.queries > queries)
    emulator.faults.clear()
    emulator.api_key = "a-new-key"  # the key was revoked: that is about the account, not the task
    with pytest.raises(ApiError) as caught:
        backend.retouch(images[0], PARAMS)
    assert caught.value.category == "auth" and emulator.stats.tasks_created == 1


def test_a_result_that_expired_before_we_fetched_it_is_a_clear_error(make_emulator, state, images) -> None:
    emulator = make_emulator(result_ttl_seconds=0)
    with pytest.raises((ResultExpired, TaskFailedError), match="24 h") as caught:
        make_backend(emulator.base_url, state).retouch(images[0], PARAMS)
    assert getattr(caught.value, "category", "not_found") == "not_found"
    assert emulator.stats.tasks_created == 1


def test_a_timeout_on_our_side_then_a_rerun_resumes_without_paying(make_emulator, state, images) -> None:
    # One fake clock drives the client's deadline and the emulator's processing time: no real waiting.
    clock = FakeClock()
    emulator = make_emulator(processing_seconds=100, time_source=clock.monotonic)
    settings = ClientSettings(timeout=30, retry=FAST.retry)  # the default 1 s -> 5 s polling schedule
    backend = make_backend(emulator.base_url, state, settings=settings, clock=clock)
    with pytest.raises(DeadlineExceeded) as caught:
        backend.retouch(images[0], PARAMS)
    assert "resume" in str(caught.value).lower()
    clock.advance(100)
    again = make_backend(emulator.base_url, state, settings=settings, clock=clock).retouch(images[0], PARAMS)
    assert again.origin == "resumed" and emulator.stats.tasks_created == 1


def test_cancel_then_rerun_of_a_batch_pays_nothing_more(make_emulator, state, images) -> None:
    # Emulator time stands still until the cancel is over, so no task can finish (and be cached
    # instead of resumed) before Cancel, however slowly the four submits are scheduled.
    emulator_time = FakeClock()
    emulator = make_emulator(processing_seconds=100, time_source=emulator_time.monotonic)
    backend = make_backend(emulator.base_url, state)
    with pytest.raises(RetouchCancelled):
        retouch_batch(
            backend, images, PARAMS, concurrency=4, check_cancel=lambda: emulator.stats.tasks_created == 4
        )
    emulator_time.advance(100)
    rerun = retouch_batch(backend, images, PARAMS, concurrency=4)
    assert [o.origin for o in rerun.outcomes] == ["resumed"] * 4
    assert emulator.stats.tasks_created == 4 and rerun.credits_spent == 0


def test_sync_results_are_cached_too(emulator, state, images) -> None:
    backend = make_backend(emulator.base_url, state)
    sync = RetouchOptions(mode="sync")
    backend.retouch(images[0], PARAMS, options=sync)
    assert backend.retouch(images[0], PARAMS, options=sync).origin == "cached"
    assert emulator.stats.paid_submits == 1


def _worker(emulator, state: Path, count: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HELPERS.parent)])}
    return subprocess.Popen(
        [
            sys.executable,
            str(HELPERS),
            "--base-url",
            emulator.base_url,
            "--state",
            str(state),
            "--count",
            str(count),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_process_killed_while_polling_is_resumed_with_zero_new_submits(
    make_emulator, state, images
) -> None:
    emulator = make_emulator(processing_seconds=1.0)
    worker = _worker(emulator, state, 2)
    try:
        # "While polling": both tasks exist and the worker has recorded them in the journal.
        journal = open_ledger(state, use_cache=False).journal  # whichever ledger the worker uses
        _wait_for(lambda: sum(1 for entry in journal.entries() if entry.task_id) == 2)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=5)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL
    backend = make_backend(emulator.base_url, state)
    result = retouch_batch(backend, portraits(sample_portrait(), 2), PARAMS)
    assert [o.origin for o in result.outcomes] == ["resumed", "resumed"]
    assert emulator.stats.tasks_created == 2


def test_two_processes_retouching_the_same_batch_submit_each_image_once(make_emulator, state) -> None:
    emulator = make_emulator(processing_seconds=0.3)
    workers = [_worker(emulator, state, 3) for _ in range(2)]
    outputs = [worker.communicate(timeout=15) for worker in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    rows = [json.loads(line) for out, _ in outputs for line in out.splitlines() if line.startswith("{")]
    assert len(rows) == 6 and all(row["task_id"] for row in rows)
    assert emulator.stats.tasks_created == 3
    by_index: dict[int, set[str]] = {}
    for row in rows:
        by_index.setdefault(row["index"], set()).add(row["task_id"])
    assert all(len(task_ids) == 1 for task_ids in by_index.values())
