"""One process of the many-process claim race, on either ledger (run under multiprocessing's "spawn").

Not a test module (no `test_` prefix). Each round, every worker thread of every process claims the
same image at once (a barrier releases them together), so the race between processes is real but
the outcome is not left to the scheduler: the winner records its task only after every other worker
has made its first claim, so every loser must have been told to wait, and then resumes exactly the
recorded task. `ledger` is a journal file's path (SQLite) or a postgresql:// URL.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from beauty_api.ledger.journal_claims import SUBMIT

SQLITE_THREADS = 2  # threads per process on the SQLite journal
POSTGRES_THREADS = 3  # and on PostgreSQL


def fingerprint(index: int) -> str:
    return f"{index:064x}"


def threads_for(ledger: str) -> int:
    return POSTGRES_THREADS if ledger.startswith("postgresql://") else SQLITE_THREADS


def _open(ledger: str) -> tuple[Any, Any]:
    """(journal, the thing to close afterwards or None)."""
    if ledger.startswith("postgresql://"):
        from beauty_api.ledger.postgres_journal import PostgresJournal
        from beauty_api.ledger.postgres_store import PostgresStore

        store = PostgresStore(ledger, pool_size=POSTGRES_THREADS)
        return PostgresJournal(store), store
    from beauty_api.ledger.journal import TaskJournal

    return TaskJournal(Path(ledger)), None


def run_process(ledger: str, out: str, count: int, barrier: Any) -> None:
    """`threads_for(ledger)` workers over `count` rounds; one JSON line per claim into `out`."""
    journal, closing = _open(ledger)
    lines: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        owner = f"{socket.gethostname()}:{os.getpid()}:t{thread}"
        try:
            for index in range(count):
                fp = fingerprint(index)
                barrier.wait()  # everyone is ready: the first claims below race for real
                first = journal.claim(fp, owner)
                barrier.wait()  # every first claim is made; nobody has recorded a task yet
                if first.action == SUBMIT:
                    journal.record_submitted(fp, f"task-{os.getpid()}-{thread}-{index}")
                barrier.wait()  # the winner's task is recorded
                second = journal.claim(fp, owner) if first.action != SUBMIT else first
                row = {"fp": fp, "pid": os.getpid(), "first": first.action, "second": second.action}
                with lock:
                    lines.append(json.dumps({**row, "task_id": second.task_id}))
        except BaseException as error:  # a broken barrier in the others says which worker failed
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_for(ledger))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if closing is not None:
        closing.close()
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if errors:
        raise errors[0]


def race(ledger: str, processes: int, count: int, folder: Path) -> tuple[list[dict[str, Any]], int]:
    """Run the race in `processes` spawned processes: (every claim's row, the number of workers)."""
    import multiprocessing

    workers = processes * threads_for(ledger)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers, timeout=60)
    outs = [folder / f"out{n}.jsonl" for n in range(processes)]
    procs = [context.Process(target=run_process, args=(ledger, str(out), count, barrier)) for out in outs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    rows = [json.loads(line) for out in outs for line in out.read_text().splitlines() if line]
    return rows, workers
