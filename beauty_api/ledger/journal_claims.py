"""Claims on an image being submitted: who owns one, whether it is still alive, and what `claim()` answers.

A claim names its owner `host:pid:start:nonce` (start: the process's start time where the OS
tells it, so a reused pid is not taken for the owner). On this host a claim lives exactly as
long as its owner process does: it is never taken over while that process runs, however long
its submit takes (a slow upload, a laptop suspended mid-upload), and at once when it died. An
owner on another host (a shared folder) keeps its claim alive with a heartbeat thread during
the attempt (`HEARTBEAT_SECONDS`); its claim is taken over only after `CLAIM_TIMEOUT` without one.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .journal_rows import JournalEntry

log = logging.getLogger(__name__)

CLAIM_TIMEOUT = 180.0
# Rows older than this (by this machine's clock) are deleted when a journal opens, 'unknown' ones
# excepted: far longer than any task lives at the API, so a clock set forward by less than this
# never makes the journal forget a task whose result the API still keeps.
FORGET_AFTER = 30 * 24 * 3600.0
HEARTBEAT_SECONDS = CLAIM_TIMEOUT / 6  # several heartbeats fit in one timeout, even on a busy machine

SUBMIT = "submit"
RESUME = "resume"
WAIT = "wait"
CACHED = "cached"  # a sync request was answered: its result went to the result cache
UNKNOWN = "unknown"  # a request was sent and its answer never came: not sent again until forgotten


@dataclass(frozen=True)
class Claim:
    """What the caller of `claim()` must do now.

    action: "submit" (you own the claim: send, then record the outcome), "resume" (poll
    `task_id`, or download `result_url` when set: already paid), "wait" (another live owner is
    sending: claim again shortly), "cached" (answered earlier: take it from the result cache,
    or `forget` and claim again when the cache no longer has it), or "unknown" (sent earlier,
    answer not received: refuse until the user forgets it).
    """

    action: str
    task_id: str | None = None
    result_url: str | None = field(default=None, repr=False)  # may carry a signed token
    submitted_at: float | None = None
    owner: str = ""


def process_start(pid: int) -> str:
    """The start time of process `pid` as the OS reports it ('' where it cannot be told)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return ""
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""  # field 22 of stat(5), counted after the name


def new_owner() -> str:
    """A claim owner for this process: `host:pid:start:nonce`, so a dead owner on this host is detected."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}:{secrets.token_hex(4)}"


def _parse(owner: str) -> tuple[str, int, str | None] | None:
    parts = owner.split(":")
    if len(parts) == 3:  # host:pid:nonce, written before the start time was part of it
        host, pid_text, start = parts[0], parts[1], None
    elif len(parts) == 4:
        host, pid_text, start = parts[0], parts[1], parts[2]
    else:
        return None
    try:
        return host, int(pid_text), start
    except ValueError:
        return None


def owner_is_local(owner: str) -> bool:
    """True when `owner` names a process on this host (whose liveness can be checked)."""
    parsed = _parse(owner)
    return parsed is not None and parsed[0] == socket.gethostname() and parsed[1] > 0 and os.name == "posix"


def owner_is_dead(owner: str) -> bool:
    """True only when `owner` names a process on this host that no longer runs (or a reused pid).

    Another host, an unparsable owner or a platform without a cheap liveness check count as
    alive: such a claim is only taken over after `claim_timeout`, never on a guess.
    """
    parsed = _parse(owner)
    if parsed is None or not owner_is_local(owner):
        return False
    _, pid, start = parsed
    if pid == os.getpid():
        return bool(start) and start != process_start(pid)
    if not _pid_alive(pid):
        return True
    return bool(start) and process_start(pid) not in ("", start)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, it is just not ours
    return True


def claim_is_stale(claimed_at: float, owner: str, now: float, claim_timeout: float) -> bool:
    """True when a 'submitting' claim may be taken over: its owner is dead, or (owner elsewhere)
    it was not kept alive for `claim_timeout`. A live local owner is never taken over."""
    if owner_is_local(owner):
        return owner_is_dead(owner)
    age = now - claimed_at
    # A clock set back by more than the timeout must not freeze a claim forever.
    return age > claim_timeout or age < -claim_timeout


def decide_claim(entry: JournalEntry | None, now: float, claim_timeout: float) -> Claim:
    """The claim rule, one for every ledger: what the row already there says the caller must do.

    The backend reads the row and writes what the answer needs, inside one transaction: its own
    claim for SUBMIT, and state 'unknown' when `marks_unknown` says the row's sender died with its
    request maybe on the wire. The row's age decides nothing: this machine's clock may have been
    set back or forward since the API started the task, and the API keeps its results by its own
    clock. An old task is resumed (the API says whether it is gone, and only then is the image
    sent again); an outcome unknown stays so until the user forgets it.
    """
    if entry is None:
        return Claim(SUBMIT)
    if entry.state in ("submitting", "sending"):
        if not claim_is_stale(entry.claimed_at, entry.owner, now, claim_timeout):
            return Claim(WAIT, owner=entry.owner)
        if entry.state == "sending":
            return Claim(UNKNOWN, submitted_at=entry.claimed_at, owner=entry.owner)
        log.info(
            "Taking over the claim on image %s of %s (gone, or not renewed for %.0f s).",
            entry.fingerprint[:12],
            entry.owner,
            now - entry.claimed_at,
        )
        return Claim(SUBMIT)
    if entry.state == UNKNOWN:
        return Claim(UNKNOWN, submitted_at=entry.claimed_at, owner=entry.owner)
    if entry.task_id or entry.result_url:
        return Claim(
            RESUME, task_id=entry.task_id, result_url=entry.result_url, submitted_at=entry.submitted_at
        )
    if entry.state == "done":
        return Claim(CACHED, submitted_at=entry.submitted_at)
    return Claim(SUBMIT)


def marks_unknown(entry: JournalEntry | None, claim: Claim) -> bool:
    """True when `claim` found a sender that died mid-request: its row must now say 'unknown'."""
    return entry is not None and claim.action == UNKNOWN and entry.state == "sending"


def warn_if_replacing(fingerprint: str, recorded: str | None, state: str | None, task_id: str) -> None:
    """Log that a row's earlier task is being replaced by another paid one (both were billed)."""
    if recorded and recorded != task_id and state != "submitting":
        log.warning(
            "Image %s already had task %s recorded; replacing it with task %s (both were paid).",
            fingerprint[:12],
            recorded,
            task_id,
        )
