"""TaskJournal: the claim/record/resume flow, stale claims, expiry, recovery, and real concurrency.

The multi-process test runs two separate Python processes against one journal file: exactly
one claim per fingerprint may answer "submit", which is what keeps two ComfyUI instances (or a
CLI beside ComfyUI) from paying twice for the same image.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from collections import Counter
from pathlib import Path

import claim_race_worker
import pytest
from ledger_helpers import FP, HOST, WallClock, dead_pid, me

from beauty_api.clock import FakeClock
from beauty_api.errors import DeadlineExceeded, InvalidParameterError, LedgerUnavailable, RetouchCancelled
from beauty_api.ledger.journal import Claim, TaskJournal, new_owner, owner_is_dead
from beauty_api.ledger.journal_claims import FORGET_AFTER

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def journal(tmp_path: Path, wall: WallClock) -> TaskJournal:
    return TaskJournal(tmp_path / "state" / "journal.sqlite3", time_source=wall)


# -- the flow ----------------------------------------------------------------------------------


def test_first_claim_submits_and_a_recorded_task_is_resumed(journal: TaskJournal, wall: WallClock) -> None:
    assert journal.claim(FP, me()) == Claim("submit")
    assert journal.get(FP).state == "submitting"

    wall.now += 2
    assert journal.record_submitted(FP, "task-1", request_id="req-1")
    entry = journal.get(FP)
    assert (entry.state, entry.task_id, entry.request_id, entry.submitted_at) == (
        "submitted",
        "task-1",
        "req-1",
        wall.now,
    )

    # A crash here: the next run (another owner) resumes the paid task instead of paying again.
    claim = journal.claim(FP, me("rerun"))
    assert claim == Claim("resume", task_id="task-1", submitted_at=wall.now)

    journal.record_result_url(FP, "https://cdn.example/r.jpg?sig=abc")
    claim = journal.claim(FP, me("rerun"))
    assert (claim.action, claim.task_id, claim.result_url) == (
        "resume",
        "task-1",
        "https://cdn.example/r.jpg?sig=abc",
    )
    assert "sig=abc" not in repr(claim)  # a signed URL stays out of logs

    journal.record_done(FP)
    assert journal.get(FP).state == "done"
    # Done rows stay resumable: a cache miss re-downloads without paying.
    assert journal.claim(FP, me("later")).action == "resume"
    assert [e.fingerprint for e in journal.entries()] == [FP]


def test_a_second_owner_waits_while_the_first_is_submitting(journal: TaskJournal) -> None:
    assert journal.claim(FP, me("one")).action == "submit"
    assert journal.claim(FP, me("two")).action == "wait"
    # The same owner (another thread of the same backend) waits too: only one submit per image.
    assert journal.claim(FP, me("one")).action == "wait"


def test_release_lets_a_rerun_submit_but_only_the_owner_may_release(journal: TaskJournal) -> None:
    journal.claim(FP, me("one"))
    assert not journal.release(FP, me("two"))
    assert journal.claim(FP, me("two")).action == "wait"
    assert journal.release(FP, me("one"))
    assert journal.get(FP) is None
    assert journal.claim(FP, me("two")).action == "submit"


def test_release_never_drops_a_recorded_task(journal: TaskJournal) -> None:
    journal.claim(FP, me())
    journal.record_submitted(FP, "task-1")
    assert not journal.release(FP, me())
    assert journal.get(FP).task_id == "task-1"


def test_forget_makes_the_next_claim_submit(journal: TaskJournal) -> None:
    journal.claim(FP, me())
    journal.record_submitted(FP, "task-1")
    assert not journal.forget(FP, task_id="task-other")  # someone else's newer task is kept
    assert journal.get(FP) is not None
    assert journal.forget(FP, task_id="task-1")
    assert journal.claim(FP, me()).action == "submit"
    journal.record_submitted(FP, "task-2")
    assert journal.forget(FP)
    assert journal.get(FP) is None


# -- stale claims and expiry -------------------------------------------------------------------


def test_a_claim_of_a_dead_process_is_taken_over_at_once(journal: TaskJournal) -> None:
    dead_owner = f"{HOST}:{dead_pid()}:gone"
    assert owner_is_dead(dead_owner)
    assert journal.claim(FP, dead_owner).action == "submit"
    claim = journal.claim(FP, me("alive"))
    assert claim.action == "submit"
    assert journal.get(FP).owner == me("alive")


def test_liveness_is_only_judged_on_this_host() -> None:
    assert not owner_is_dead(f"{HOST}:{os.getpid()}:x")
    assert not owner_is_dead(new_owner())
    assert not owner_is_dead(f"other-host-{HOST}:{dead_pid()}:x")  # cannot tell: assume alive
    assert not owner_is_dead("garbage")
    assert not owner_is_dead(f"{HOST}:notapid:x")


def remote(nonce: str = "a") -> str:
    return f"other-host-{HOST}:4242:1:{nonce}"


def test_a_claim_from_another_host_is_taken_over_after_claim_timeout(
    journal: TaskJournal, wall: WallClock
) -> None:
    journal.claim(FP, remote("slow"))
    wall.now += journal.claim_timeout - 1
    assert journal.claim(FP, me("other")).action == "wait"
    wall.now += 2
    assert journal.claim(FP, me("other")).action == "submit"
    assert journal.get(FP).owner == me("other")


def test_a_live_local_claim_is_never_taken_over_however_long_its_attempt(
    journal: TaskJournal, wall: WallClock
) -> None:
    # Defect 4: one submit attempt longer than the claim timeout (a slow upload, a laptop
    # suspended mid-upload) let another process take over and pay. A live owner keeps it.
    journal.claim(FP, new_owner())
    wall.now += 10 * journal.claim_timeout
    assert journal.claim(FP, me("other")).action == "wait"


def test_a_rows_age_decides_nothing_old_tasks_are_resumed(tmp_path: Path, wall: WallClock) -> None:
    """The clock may jump between the API starting a task and now: an old task is resumed (the API
    says whether it is gone), never sent again on this clock's word."""
    journal = TaskJournal(tmp_path / "j.sqlite3", time_source=wall)
    journal.claim(FP, me())
    journal.record_submitted(FP, "task-old")
    wall.now += 2 * 24 * 3600  # past the day the API keeps a task, by this clock
    assert journal.claim(FP, me()).action == "resume"
    assert journal.get(FP) is not None and [e.fingerprint for e in journal.entries()] == [FP]
    wall.now -= 3 * 3600  # set back: still the same task
    assert journal.claim(FP, me()).task_id == "task-old"


def test_only_rows_far_older_than_any_task_are_purged_when_the_journal_is_opened(
    tmp_path: Path, wall: WallClock
) -> None:
    path = tmp_path / "j.sqlite3"
    journal = TaskJournal(path, time_source=wall)
    for fp, task in ((FP, "task-1"), ("a" * 64, "task-a")):
        journal.claim(fp, me())
        journal.record_submitted(fp, task)
    journal.claim("b" * 64, me())
    journal.record_unknown("b" * 64)
    wall.now += 2 * 24 * 3600
    TaskJournal(path, time_source=wall)  # past the day the API keeps a task: kept
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 3
    wall.now += FORGET_AFTER
    TaskJournal(path, time_source=wall)
    with sqlite3.connect(path) as conn:
        states = [row[0] for row in conn.execute("SELECT state FROM tasks")]
    assert states == ["unknown"]  # housekeeping far past anything the API keeps; unknown waits for the user


# -- waiting for another submitter -------------------------------------------------------------


def test_wait_for_claim_returns_resume_once_the_other_owner_records_its_task(journal: TaskJournal) -> None:
    clock = FakeClock()
    journal.claim(FP, me("other"))
    calls = {"n": 0}

    def check_cancel() -> bool:
        calls["n"] += 1
        if calls["n"] == 3:  # the other process records its task meanwhile
            journal.record_submitted(FP, "task-9")
        return False

    claim = journal.wait_for_claim(FP, me("me"), clock=clock, check_cancel=check_cancel, timeout=60)
    assert (claim.action, claim.task_id) == ("resume", "task-9")
    assert clock.sleeps and max(clock.sleeps) <= 0.25


def test_wait_for_claim_takes_over_when_the_claim_goes_stale(tmp_path: Path) -> None:
    clock = FakeClock()
    base = 1_700_000_000.0
    journal = TaskJournal(
        tmp_path / "j.sqlite3", time_source=lambda: base + clock.monotonic(), claim_timeout=5.0
    )
    journal.claim(FP, remote("stuck"))
    claim = journal.wait_for_claim(FP, me("me"), clock=clock, timeout=60, poll_interval=1.0)
    assert claim.action == "submit"
    assert 5.0 <= sum(clock.sleeps) <= 7.0


def test_wait_for_claim_gives_up_at_its_timeout(journal: TaskJournal) -> None:
    clock = FakeClock()
    journal.claim(FP, me("other"))
    with pytest.raises(DeadlineExceeded, match="Re-run in a moment"):
        journal.wait_for_claim(FP, me("me"), clock=clock, timeout=3.0)
    assert sum(clock.sleeps) == pytest.approx(3.0)


def test_wait_for_claim_honours_cancel(journal: TaskJournal) -> None:
    journal.claim(FP, me("other"))
    with pytest.raises(RetouchCancelled):
        journal.wait_for_claim(FP, me("me"), clock=FakeClock(), check_cancel=lambda: True, timeout=60)


# -- concurrency -------------------------------------------------------------------------------


def test_two_processes_claiming_the_same_images_submit_each_exactly_once(tmp_path: Path) -> None:
    # Two real processes (two threads each) claim the same images at the same moment, round after
    # round; see claim_race_worker.py for the barriers that make every round a real race with
    # a deterministic outcome.
    path = tmp_path / "shared" / "journal.sqlite3"
    TaskJournal(path)  # create it once, as a real state dir would have it
    count = 40
    results, workers = claim_race_worker.race(str(path), 2, count, tmp_path)
    assert len(results) == workers * count  # every worker got an answer for every image
    recorded = {e.fingerprint: e.task_id for e in TaskJournal(path).entries()}
    assert len(recorded) == count
    for index in range(count):
        fp = claim_race_worker.fingerprint(index)
        rows = [row for row in results if row["fp"] == fp]
        # Exactly one claim submits; every other claim, in either process, waited for it ...
        assert sorted(row["first"] for row in rows) == ["submit"] + ["wait"] * (workers - 1)
        # ... and then resumed exactly the task the winner recorded.
        assert [row["task_id"] for row in rows if row["first"] == "wait"] == [recorded[fp]] * (workers - 1)
        assert all(row["second"] == "resume" for row in rows if row["first"] == "wait")
    # Both processes took part in every round (the barrier spans them): each saw every image.
    assert sorted(Counter(row["pid"] for row in results).values()) == [2 * count, 2 * count]


def test_threads_claiming_the_same_image_submit_it_once(journal: TaskJournal) -> None:
    barrier = threading.Barrier(8)
    actions: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        barrier.wait()
        for i in range(10):
            claim = journal.claim(f"{i:064x}", me(f"t{n}"))
            with lock:
                actions.append(claim.action)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(actions) == {"submit": 10, "wait": 70}


# -- robustness --------------------------------------------------------------------------------


def test_a_corrupt_file_fails_closed_until_journal_reset(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"this is not a database at all" * 100)
    journal = TaskJournal(path)
    with pytest.raises(LedgerUnavailable) as caught:
        journal.claim(FP, me())
    message = str(caught.value)
    assert str(path) in message and "journal reset" in message and "\n" not in message
    assert path.read_bytes().startswith(b"this is not")  # left as it was: it may know paid tasks
    moved = journal.reset()
    assert moved is not None and moved.read_bytes().startswith(b"this is not")
    assert TaskJournal(path).claim(FP, me()).action == "submit"


def test_a_file_damaged_while_in_use_fails_closed(journal: TaskJournal) -> None:
    journal.claim(FP, me())
    journal.record_submitted(FP, "task-1")
    for suffix in ("", "-wal", "-shm"):
        Path(str(journal.path) + suffix).unlink(missing_ok=True)
    journal.path.write_bytes(b"\0garbage" * 512)
    with pytest.raises(LedgerUnavailable, match="journal reset"):
        journal.claim(FP, me())


def test_an_unusable_folder_fails_closed_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    journal = TaskJournal(blocker / "journal.sqlite3")
    with pytest.raises(LedgerUnavailable) as caught:
        journal.claim(FP, me())
    assert "FACE_BEAUTY_STATE_DIR" in str(caught.value) and "nothing was sent" in str(caught.value)
    assert journal.get(FP) is None
    with caplog.at_level(logging.ERROR, logger="beauty_api"):
        caplog.clear()
        assert journal.record_submitted(FP, "task-77", request_id="req-77") is False
    # Losing a paid task id is loud, and names the task so it can be found again.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "task-77" in errors[0].getMessage()


def test_a_journal_from_a_newer_version_is_left_alone_and_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute("PRAGMA user_version=99")
    journal = TaskJournal(path)
    with pytest.raises(LedgerUnavailable, match="newer version"):
        journal.claim(FP, me())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 99
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("future",)]


def test_a_locked_journal_never_answers_submit_for_a_recorded_task(tmp_path: Path) -> None:
    # Defect 3: "database is locked" after the busy timeout used to answer SUBMIT while the
    # row still said submitted TASK-PAID-1.
    path = tmp_path / "j.sqlite3"
    journal = TaskJournal(path, busy_timeout=0.05)
    journal.claim(FP, me())
    journal.record_submitted(FP, "TASK-PAID-1")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LedgerUnavailable) as caught:
            journal.wait_for_claim(FP, me("b"), clock=FakeClock(), timeout=2.0)
        assert "locked" in str(caught.value) and str(path) in str(caught.value)
        # WAL: reading a recorded task still works while another connection writes.
        assert journal.get(FP).task_id == "TASK-PAID-1"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert journal.claim(FP, me("b")).task_id == "TASK-PAID-1"


def test_a_schema_1_journal_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE tasks (fingerprint TEXT PRIMARY KEY, state TEXT NOT NULL CHECK (state IN "
            "('submitting', 'submitted', 'result', 'done')), task_id TEXT, owner TEXT NOT NULL DEFAULT '', "
            "claimed_at REAL NOT NULL, submitted_at REAL, result_url TEXT, request_id TEXT NOT NULL DEFAULT '', "
            "updated_at REAL NOT NULL)"
        )
        now = __import__("time").time()
        conn.execute(
            "INSERT INTO tasks VALUES (?, 'submitted', 'task-old', '', ?, ?, NULL, '', ?)",
            (FP, now, now, now),
        )
        conn.execute("PRAGMA user_version=1")
    journal = TaskJournal(path)
    assert journal.claim(FP, me()).task_id == "task-old"
    journal.claim("e" * 64, me())
    assert journal.record_unknown("e" * 64, me())
    assert journal.claim("e" * 64, me("b")).action == "unknown"


def test_schema_is_versioned_and_the_database_uses_wal(journal: TaskJournal) -> None:
    journal.claim(FP, me())
    with sqlite3.connect(journal.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_files_are_private(tmp_path: Path) -> None:
    journal = TaskJournal(tmp_path / "new-state" / "journal.sqlite3")
    journal.claim(FP, me())
    assert stat.S_IMODE(journal.path.parent.stat().st_mode) & 0o077 == 0
    for path in journal.path.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_an_existing_world_readable_journal_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    TaskJournal(path)
    os.chmod(path, 0o644)
    TaskJournal(path).claim(FP, me())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_api_takes_no_secret() -> None:
    # Nothing in the journal's public API accepts a key: the only strings are ids and URLs.
    import inspect

    for name in ("claim", "record_submitted", "record_result_url", "record_done", "release", "forget"):
        params = inspect.signature(getattr(TaskJournal, name)).parameters
        assert not any("key" in p or "secret" in p or "token" in p for p in params), name


def test_bad_arguments_are_refused(journal: TaskJournal, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError):
        journal.claim("", me())
    with pytest.raises(InvalidParameterError):
        journal.record_submitted(FP, "")
    with pytest.raises(InvalidParameterError):
        TaskJournal(tmp_path / "x.sqlite3", claim_timeout=0)


def test_a_new_owner_names_this_host_and_process() -> None:
    host, pid, _start, nonce = new_owner().split(":")
    assert (host, int(pid)) == (HOST, os.getpid()) and nonce
    assert not owner_is_dead(new_owner())
    assert new_owner() != new_owner()
