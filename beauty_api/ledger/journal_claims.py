"""Claims on an image being submitted: who owns one, when it is stale, and the answer `claim()` gives.

A claim is taken over only when its owner is provably dead (a process on this host that no
longer runs) or when it has not been kept alive for `CLAIM_TIMEOUT` seconds. A live submitter
keeps it alive (`TaskJournal.heartbeat`) every `HEARTBEAT_SECONDS` while its submit retries,
however long the API's Retry-After waits make it, so one image is never paid for twice.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field

CLAIM_TIMEOUT = 180.0
HEARTBEAT_SECONDS = CLAIM_TIMEOUT / 6  # several heartbeats fit in one timeout, even on a busy machine

SUBMIT = "submit"
RESUME = "resume"
WAIT = "wait"


@dataclass(frozen=True)
class Claim:
    """What the caller of `claim()` must do now.

    action: "submit" (you own the claim: submit, then `record_submitted`, or `release` if the
    submit failed before a task existed), "resume" (poll `task_id`, or download `result_url`
    when set: already paid), or "wait" (another live owner is submitting: claim again shortly).
    """

    action: str
    task_id: str | None = None
    result_url: str | None = field(default=None, repr=False)  # may carry a signed token
    submitted_at: float | None = None


def new_owner() -> str:
    """A claim owner for this process: `host:pid:nonce`, so a dead owner on this host can be detected."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_is_dead(owner: str) -> bool:
    """True only when `owner` names a process on this host that no longer runs.

    Another host, an unparsable owner or a platform without a cheap liveness check count as
    alive: a live owner is only ever taken over after `claim_timeout`, never on a guess.
    """
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid_text, _ = parts
    if host != socket.gethostname():
        return False
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid <= 0 or pid == os.getpid():
        return False
    return not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows; rely on claim_timeout
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, it is just not ours
    return True


def claim_is_stale(claimed_at: float, owner: str, now: float, claim_timeout: float) -> bool:
    """True when a 'submitting' claim may be taken over: not kept alive for `claim_timeout`, or its owner is dead."""
    age = now - claimed_at
    # A clock set back by more than the timeout must not freeze a claim forever.
    if age > claim_timeout or age < -claim_timeout:
        return True
    return owner_is_dead(owner)
