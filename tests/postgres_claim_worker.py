"""One process of the many-process shared-journal test (run under multiprocessing's "spawn").

Not a test module. Like journal_claim_worker.py, but against PostgreSQL: every worker thread of
every process claims the same image at once (a barrier releases them together); the winner
records its task only after every other worker made its first claim, so every loser must have
been told to wait, and then resumes exactly the recorded task.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from beauty_api.ledger.journal_claims import SUBMIT
from beauty_api.ledger.postgres_journal import PostgresJournal
from beauty_api.ledger.postgres_store import PostgresStore

THREADS_PER_PROCESS = 3


def fingerprint(index: int) -> str:
    return f"{index:064x}"


def run_process(url: str, out: str, count: int, barrier: Any) -> None:
    """`THREADS_PER_PROCESS` workers over `count` rounds; one JSON line per claim into `out`."""
    store = PostgresStore(url, pool_size=THREADS_PER_PROCESS)
    journal = PostgresJournal(store)
    lines: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        owner = f"{socket.gethostname()}:{os.getpid()}:t{thread}"
        try:
            for index in range(count):
                fp = fingerprint(index)
                barrier.wait()
                first = journal.claim(fp, owner)
                barrier.wait()
                if first.action == SUBMIT:
                    journal.record_submitted(fp, f"task-{os.getpid()}-{thread}-{index}")
                barrier.wait()
                second = journal.claim(fp, owner) if first.action != SUBMIT else first
                with lock:
                    lines.append(json.dumps({"fp": fp, "first": first.action, "second": second.action,
                                             "task_id": second.task_id}))  # fmt: skip
        except BaseException as error:
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS_PER_PROCESS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if errors:
        raise errors[0]
