"""`journal list` / `journal forget`: the recorded tasks that a re-run resumes, and forgetting one.

A task recorded in the journal is resumed by every re-run of the same image (it is paid for).
When the address that made it is gone for good (an emulator that was restarted, an account
switched), `journal forget TASK_ID` drops it so the next run submits the image again.
"""

from __future__ import annotations

import argparse
import time

from .output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err, out


def add_journal_command(commands: argparse._SubParsersAction, verbose: argparse.ArgumentParser) -> None:
    """Register `journal list|forget` (called by parser.build_parser)."""
    journal = commands.add_parser(
        "journal",
        parents=[verbose],
        help="list or forget the paid tasks a re-run resumes",
        description="The task journal records every paid task before waiting for it, so a re-run "
        "resumes it instead of paying again. Forget a task whose address is gone for good.",
    )
    actions = journal.add_subparsers(dest="journal_action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[verbose], help="every recorded task, newest first").set_defaults(
        handler=cmd_journal_list
    )
    forget = actions.add_parser(
        "forget",
        parents=[verbose],
        help="forget a task (by task id or fingerprint prefix), or --all; the next run submits anew",
    )
    forget.add_argument(
        "target", nargs="?", metavar="TASK_ID|FINGERPRINT", help="a task id, or 8+ hex of a fingerprint"
    )
    forget.add_argument("--all", action="store_true", help="forget every recorded task")
    forget.set_defaults(handler=cmd_journal_forget)
    actions.add_parser(
        "reset",
        parents=[verbose],
        help="move a damaged (or newer) journal aside and start a new one; its tasks may then be paid again",
    ).set_defaults(handler=cmd_journal_reset)


def _open_journal():
    """The journal this user's runs use: the local SQLite file, or the farm's (FACE_BEAUTY_LEDGER_URL)."""
    from ..ledger.ledger_choice import open_ledger
    from ..ledger.storage_paths import state_dir

    return open_ledger(state_dir(), use_cache=False).journal


def cmd_journal_reset(args: argparse.Namespace) -> int:
    journal = _open_journal()
    moved = journal.reset()
    if moved is None:
        out(f"journal: nothing to reset at {journal.path}")
    else:
        out(f"journal: {journal.path} moved to {moved}; a new one starts with the next run")
    return EXIT_OK


def cmd_journal_list(args: argparse.Namespace) -> int:
    from ..errors import LedgerUnavailable

    journal = _open_journal()
    try:
        entries = journal.entries()
    except LedgerUnavailable as error:
        err(f"error: {error}")
        return EXIT_FAILED
    out(f"journal: {journal.path} ({len(entries)} task(s))")
    now = time.time()
    for entry in entries:
        age = now - (entry.submitted_at if entry.submitted_at is not None else entry.claimed_at)
        out(
            f"{entry.fingerprint[:16]}  {entry.state:<10}  task {entry.task_id or '-'}  {age / 60:.0f} min ago"
        )
    return EXIT_OK


def cmd_journal_forget(args: argparse.Namespace) -> int:
    if args.all == bool(args.target):
        err("error: journal forget: give a TASK_ID or FINGERPRINT, or --all (not both)")
        return EXIT_USAGE
    journal = _open_journal()
    removed = journal.forget_matching(None if args.all else args.target.strip())
    if removed == 0 and not args.all:
        err(f"error: no recorded task matches {args.target!r}; see `journal list`")
        return EXIT_FAILED
    out(f"forgot {removed} task(s); the next run of those images submits them again (15 credits each)")
    return EXIT_OK
