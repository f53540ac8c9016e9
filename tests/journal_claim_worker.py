"""One process of the two-process journal test (run under multiprocessing's "spawn").

Not a test module (no `test_` prefix). Each round, every worker of every process claims the
same image at once (a barrier releases them together), so the race between processes is real
but the outcome is not left to the scheduler: the winner records its task only after every
other worker has made its first claim, so every loser must have been told to wait, and then
resumes exactly the recorded task.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from beauty_api.ledger.journal import SUBMIT, TaskJournal

THREADS_PER_PROCESS = 2


def fingerprint(index: int) -> str:
    return f"{index:064x}"


def run_process(path: str, out: str, count: int, barrier: Any) -> None:
    """Run `THREADS_PER_PROCESS` workers over `count` rounds; write one JSON line per claim to `out`."""
    journal = TaskJournal(Path(path))
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
                with lock:
                    lines.append(
                        json.dumps(
                            {
                                "fp": fp,
                                "pid": os.getpid(),
                                "first": first.action,
                                "second": second.action,
                                "task_id": second.task_id,
                            }
                        )
                    )
        except BaseException as error:  # a broken barrier in the others says which worker failed
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS_PER_PROCESS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if errors:
        raise errors[0]
