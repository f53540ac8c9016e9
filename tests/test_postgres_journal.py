"""PostgresJournal against a real PostgreSQL (the session's, tests/postgres_server.py).

The same flow as the SQLite journal (claim, record, resume, stale claims, expiry), the
'unknown' outcome that blocks re-submits until a person forgets it, many processes racing for
one image, and failing closed: an unreachable server is waited for within the wait, then one
secret-free line, never a "submit".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import claim_race_worker
import postgres_server as pg
import pytest
from ledger_helpers import FP, HOST, WallClock, dead_pid, me

from beauty_api.clock import FakeClock
from beauty_api.errors import DeadlineExceeded
from beauty_api.ledger.journal_claims import FORGET_AFTER, Claim
from beauty_api.ledger.postgres_journal import CACHED, UNKNOWN, PostgresJournal
from beauty_api.ledger.postgres_store import PostgresStore, SharedLedgerUnavailable

SECRET = "pw-Never-Shown-42"


def elsewhere(nonce: str = "a") -> str:
    return f"another-host:4242:{nonce}"  # liveness unknowable from here: only time takes it over


@pytest.fixture
def store(postgres_url: str, wall: WallClock) -> Iterator[PostgresStore]:
    store = PostgresStore(postgres_url, time_source=wall)
    yield store
    store.close()


@pytest.fixture
def journal(store: PostgresStore) -> PostgresJournal:
    return PostgresJournal(store, claim_timeout=180.0)


# -- the flow ----------------------------------------------------------------------------------


def test_first_claim_submits_and_a_recorded_task_is_resumed(
    journal: PostgresJournal, wall: WallClock
) -> None:
    assert journal.claim(FP, me()) == Claim("submit")
    assert journal.claim(FP, me("other")) == Claim("wait", owner=me())
    wall.now += 2
    assert journal.record_submitted(FP, "task-1", request_id="req-1")
    entry = journal.get(FP)
    assert (entry.state, entry.task_id, entry.request_id, entry.submitted_at) == (
        "submitted",
        "task-1",
        "req-1",
        wall.now,
    )
    assert journal.claim(FP, me("rerun")) == Claim("resume", task_id="task-1", submitted_at=wall.now)

    journal.record_result_url(FP, "https://cdn.example/r.jpg?sig=abc")
    claim = journal.claim(FP, me("rerun"))
    assert (claim.action, claim.task_id, claim.result_url) == (
        "resume",
        "task-1",
        "https://cdn.example/r.jpg?sig=abc",
    )
    journal.record_done(FP)
    assert journal.get(FP).state == "done"
    assert journal.claim(FP, me("later")).action == "resume"
    assert [e.fingerprint for e in journal.entries()] == [FP]


def test_release_forget_and_forget_matching(journal: PostgresJournal) -> None:
    journal.claim(FP, me("one"))
    assert not journal.release(FP, me("two"))  # only the owner may release
    assert journal.release(FP, me("one"))
    assert journal.claim(FP, me("two")).action == "submit"
    journal.record_submitted(FP, "task-1")
    assert not journal.release(FP, me("two"))  # a recorded task is never released
    assert not journal.forget(FP, task_id="task-other")
    assert journal.forget(FP, task_id="task-1")
    assert journal.get(FP) is None

    for n in range(3):
        fp = f"{n:x}" * 64
        journal.claim(fp, me())
        journal.record_submitted(fp, f"task-{n}")
    assert journal.forget_matching("task-0") == 1
    assert journal.forget_matching("1111111") == 0  # under 8 characters: task ids only
    assert journal.forget_matching("11111111") == 1
    assert journal.forget_matching(None) == 1
    assert journal.entries() == []


# -- leases ------------------------------------------------------------------------------------


def test_a_live_claim_is_kept_by_heartbeats_and_taken_over_only_after_the_timeout(
    journal: PostgresJournal, wall: WallClock
) -> None:
    assert journal.claim(FP, elsewhere()).action == "submit"
    for _ in range(5):  # a submit far longer than the timeout, renewed all along
        wall.now += 170
        assert journal.heartbeat(FP, elsewhere())
        assert journal.claim(FP, me()).action == "wait"
    wall.now += 181  # not renewed for longer than the timeout: taken over
    assert journal.claim(FP, me()).action == "submit"
    assert not journal.heartbeat(FP, elsewhere())  # the old owner learns it lost the claim
    assert journal.get(FP).owner == me()


def test_waiting_for_a_live_claim_ends_at_the_deadline(journal: PostgresJournal) -> None:
    journal.claim(FP, elsewhere())
    clock = FakeClock(start=0.0)
    with pytest.raises(DeadlineExceeded, match="Re-run in a moment"):
        journal.wait_for_claim(FP, me(), timeout=3.0, clock=clock)
    assert 3.0 <= clock.monotonic() < 3.5


def test_a_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(journal: PostgresJournal) -> None:
    assert journal.claim(FP, f"{HOST}:{dead_pid()}:x").action == "submit"
    assert journal.claim(FP, me()).action == "submit"


def test_times_come_from_the_servers_clock_without_a_time_source(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    try:
        journal = PostgresJournal(store)
        journal.claim(FP, me())
        assert abs(journal.get(FP).claimed_at - time.time()) < 60
    finally:
        store.close()


def test_a_rows_age_decides_nothing_and_only_far_older_rows_are_purged(
    store: PostgresStore, wall: WallClock
) -> None:
    journal = PostgresJournal(store)
    journal.claim(FP, me())
    journal.record_submitted(FP, "task-1")
    wall.now += 2 * 24 * 3600  # past the day the API keeps a task, by this clock
    assert journal.get(FP) is not None and len(journal.entries()) == 1
    assert journal.purge_expired() == 0
    assert journal.claim(FP, me()).action == "resume"  # the API says whether it is gone
    wall.now += FORGET_AFTER
    assert journal.purge_expired() == 1
    assert journal.claim(FP, me()).action == "submit"


# -- outcome unknown ---------------------------------------------------------------------------


def test_an_unknown_outcome_blocks_every_resubmit_until_forgotten(
    store: PostgresStore, wall: WallClock
) -> None:
    journal = PostgresJournal(store)
    journal.claim(FP, me("one"))
    assert not journal.record_unknown(FP, me("two"))  # only the claim's owner says so
    assert journal.record_unknown(FP, me("one"), note="read timeout after the upload")
    assert journal.claim(FP, me("one")).action == UNKNOWN
    assert journal.claim(FP, elsewhere()).action == UNKNOWN
    wall.now += FORGET_AFTER + 1  # as in the SQLite journal: housekeeping keeps an unknown outcome
    assert journal.purge_expired() == 0
    assert journal.claim(FP, me()).action == UNKNOWN
    assert [e.state for e in journal.entries()] == ["unknown"]
    assert journal.forget_matching(FP[:12]) == 1  # `journal forget` is the person's decision
    assert journal.claim(FP, me()).action == "submit"


def test_a_sender_that_died_with_its_request_on_the_wire_leaves_an_unknown_outcome(
    journal: PostgresJournal,
) -> None:
    dead = f"{HOST}:{dead_pid()}:x"
    assert journal.claim(FP, dead).action == "submit"
    journal.mark_sending(FP, dead)  # then it was killed before the answer came
    assert journal.claim(FP, me()) == Claim(UNKNOWN, submitted_at=journal.get(FP).claimed_at, owner=dead)
    assert journal.get(FP).state == "unknown"  # never taken over: the request may have been paid

    other = "f" * 63 + "0"
    assert journal.claim(other, dead).action == "submit"  # claimed, never sent: taken over freely
    assert journal.claim(other, me()).action == "submit"


def test_a_claim_taken_over_cannot_be_sent_by_its_old_owner(
    journal: PostgresJournal, wall: WallClock
) -> None:
    journal.claim(FP, elsewhere())
    wall.now += 181
    assert journal.claim(FP, me()).action == "submit"
    with pytest.raises(SharedLedgerUnavailable, match="no longer ours"):
        journal.mark_sending(FP, elsewhere())
    journal.mark_sending(FP, me())
    assert journal.get(FP).state == "sending"
    assert journal.claim(FP, elsewhere()).action == "wait"


def test_an_answered_sync_request_is_read_from_the_cache(journal: PostgresJournal) -> None:
    journal.claim(FP, me())
    journal.mark_sending(FP, me())
    assert journal.record_answered(FP)
    assert journal.claim(FP, me("rerun")).action == CACHED


def test_a_row_under_an_older_fingerprint_is_found_and_moved(journal: PostgresJournal) -> None:
    old = "0" * 64
    journal.claim(old, me())
    journal.record_submitted(old, "task-old")
    claim = journal.claim(FP, me("rerun"), aliases=("e" * 64, old))
    assert (claim.action, claim.task_id) == ("resume", "task-old")
    assert journal.get(old) is None and journal.get(FP).task_id == "task-old"


# -- many processes ----------------------------------------------------------------------------


def test_many_processes_claiming_the_same_images_submit_each_exactly_once(
    postgres_url: str, tmp_path: Path
) -> None:
    count = 25
    results, workers = claim_race_worker.race(postgres_url, 3, count, tmp_path)
    assert len(results) == workers * count
    store = PostgresStore(postgres_url)
    recorded = {e.fingerprint: e.task_id for e in PostgresJournal(store).entries()}
    store.close()
    assert len(recorded) == count
    for index in range(count):
        rows = [row for row in results if row["fp"] == claim_race_worker.fingerprint(index)]
        assert sorted(row["first"] for row in rows) == ["submit"] + ["wait"] * (workers - 1)
        fp = claim_race_worker.fingerprint(index)
        assert [row["task_id"] for row in rows if row["first"] == "wait"] == [recorded[fp]] * (workers - 1)


# -- failing closed ----------------------------------------------------------------------------


def test_an_unreachable_server_is_waited_for_then_one_line_never_a_submit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPASSWORD", SECRET)
    clock = FakeClock(start=0.0)
    store = PostgresStore(f"postgresql://farm@127.0.0.1:{pg.free_port()}/ledger", clock=clock, wait=20.0)
    journal = PostgresJournal(store)
    with pytest.raises(SharedLedgerUnavailable) as caught:
        journal.claim(FP, me(), wait=20.0)
    assert 20.0 <= clock.monotonic() < 23.0  # it waited its whole wait, then gave up
    assert caught.value.transient  # worth waiting for: wait_for_claim asks again within the deadline
    text = str(caught.value)
    assert "\n" not in text and SECRET not in text
    assert "postgresql://farm@127.0.0.1" in text and "nothing was submitted" in text

    clock = FakeClock(start=0.0)
    store = PostgresStore(f"postgresql://farm@127.0.0.1:{pg.free_port()}/ledger", clock=clock, wait=600.0)
    with pytest.raises(SharedLedgerUnavailable):  # the image's deadline bounds the wait, not the store's
        PostgresJournal(store).wait_for_claim(FP, me(), timeout=5.0, clock=clock)
    assert clock.monotonic() < 11.0  # one claim waits at most CLAIM_WAIT past it


class RestartingClock(FakeClock):
    """A FakeClock whose first sleep brings the paused server back (a restart during the wait)."""

    def __init__(self, server: pg.PostgresServer) -> None:
        super().__init__(start=0.0)
        self.server: pg.PostgresServer | None = server

    def sleep(self, seconds: float) -> None:
        if self.server is not None:
            self.server.resume()
            self.server = None
        super().sleep(seconds)


def test_a_server_restart_is_waited_through_and_nothing_is_lost(postgres_server: Any) -> None:
    # A server of its own (the session's must stay up); `postgres_server` skips or fails as for all.
    server = pg.PostgresServer.start()
    try:
        url = server.create_database("restart")
        clock = RestartingClock(server)
        store = PostgresStore(url, clock=clock, wait=30.0)
        journal = PostgresJournal(store)
        assert journal.claim(FP, me()).action == "submit"
        journal.record_submitted(FP, "task-before")
        server.pause()  # the pooled connection is dead now
        assert journal.claim(FP, me("rerun")) == Claim(
            "resume", task_id="task-before", submitted_at=journal.get(FP).submitted_at
        )
        assert clock.server is None  # it did wait for the server (and no longer than needed)
        store.close()
    finally:
        server.stop()


def test_a_password_from_pgpassword_or_pgpass_works_and_a_wrong_one_is_never_shown(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = postgres_server.create_database("with_password", owner=pg.PASSWORD_ROLE)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    store = PostgresStore(url)
    assert PostgresJournal(store).claim(FP, me()).action == "submit"
    store.close()

    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{postgres_server.port}:*:{pg.PASSWORD_ROLE}:{postgres_server.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    store = PostgresStore(url)
    assert PostgresJournal(store).claim(FP, me("two")).action == "wait"
    store.close()

    monkeypatch.setenv("PGPASSWORD", SECRET)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    store = PostgresStore(url, wait=0.0)
    with pytest.raises(SharedLedgerUnavailable) as caught:
        PostgresJournal(store).claim(FP, me())
    assert "password authentication failed" in str(caught.value)
    assert SECRET not in str(caught.value) and "\n" not in str(caught.value)


def test_a_role_that_may_not_create_the_tables_gets_one_line_saying_so(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_server.create_database("not_yours")  # owned by the superuser; PASSWORD_ROLE may only connect
    url = postgres_server.url("not_yours", user=pg.PASSWORD_ROLE)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    store = PostgresStore(url, wait=0.0)
    with pytest.raises(SharedLedgerUnavailable, match="permission denied") as caught:
        PostgresJournal(store).claim(FP, me())
    assert "owner" in str(caught.value)


def test_many_threads_share_a_few_pooled_connections(postgres_url: str) -> None:
    import threading

    store = PostgresStore(postgres_url, pool_size=6)
    opened: list[int] = []
    connect = store._connect

    def counting_connect() -> Any:
        opened.append(1)
        return connect()

    store._connect = counting_connect  # type: ignore[method-assign]
    journal = PostgresJournal(store)

    def work(thread: int) -> None:
        for index in range(15):
            fp = f"{thread:02x}{index:062x}"
            assert journal.claim(fp, me(str(thread))).action == "submit"
            journal.record_submitted(fp, f"task-{thread}-{index}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(journal.entries()) == 90
    assert 1 <= len(opened) <= 6  # 180 calls: at most one connection per thread at work, kept for reuse
    store.close()
    assert store._idle == []


def test_a_record_that_cannot_be_written_says_the_task_is_paid(caplog: Any) -> None:
    store = PostgresStore(f"postgresql://farm@127.0.0.1:{pg.free_port()}/ledger", clock=FakeClock(), wait=1.0)
    with caplog.at_level(logging.ERROR):
        assert not PostgresJournal(store).record_submitted(FP, "T-7")
    assert "record paid task T-7; it is paid, and a re-run may pay for it again" in caplog.text
