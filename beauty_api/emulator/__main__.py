"""`python -m beauty_api.emulator`: run the emulator in the foreground and print how to point the client at it."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .effect import warm_up_local_engine
from .server import Emulator

ANY_KEY_HINT = "any-non-empty-key"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m beauty_api.emulator",
        description="Serve a loopback emulator of the Face Beauty Pro API (no key, no network, no credits).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="API port; 0 picks a free one (default 8765)")
    parser.add_argument("--cdn-port", type=int, default=0, help="result server port (default: a free one)")
    parser.add_argument("--api-key", default="emulator-key", help="the key to accept (default emulator-key)")
    parser.add_argument("--any-key", action="store_true", help="accept any non-empty key")
    parser.add_argument("--queued-seconds", type=float, default=0.0, help="time a task stays queued")
    parser.add_argument("--processing-seconds", type=float, default=2.0, help="time a task is processing")
    parser.add_argument("--credits", type=int, default=None, help="starting balance (default unlimited)")
    parser.add_argument("--result-format", default="PNG", choices=["PNG", "JPEG", "WEBP"])
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    parser.add_argument(
        "--fail-tasks",
        type=int,
        default=0,
        metavar="N",
        help="the first N tasks fail when processing ends (not billed), as a broken API would",
    )
    parser.add_argument(
        "--fail-code",
        default="PROCESSING_FAILURE",
        help="the error code of --fail-tasks (default %(default)s)",
    )
    parser.add_argument(
        "--effect",
        choices=["auto", "local", "stand-in"],
        default="auto",
        help="local: the offline engine's real retouching (needs torch); stand-in: a fast fake; "
        "auto (default): local when torch is installed",
    )
    return parser


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses: the only hosts the emulator should listen on."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def build_emulator(args: argparse.Namespace) -> Emulator:
    """The emulator the command line asks for, faults armed, not started yet."""
    emulator = Emulator(
        host=args.host,
        port=args.port,
        cdn_port=args.cdn_port,
        api_key=None if args.any_key else args.api_key,
        queued_seconds=args.queued_seconds,
        processing_seconds=args.processing_seconds,
        credits=args.credits,
        result_format=args.result_format,
        log=None if args.quiet else _log,
        effect=args.effect,
    )
    if args.fail_tasks:
        emulator.faults.fail_tasks(args.fail_tasks, code=args.fail_code)
    return emulator


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not is_loopback(args.host):
        _log(
            f"warning: listening on {args.host}, not loopback: anyone who can reach it can use the emulator."
        )
    emulator = build_emulator(args)
    if emulator.effect == "local":  # before listening: a client never meets a cold first render
        warm_up_local_engine()
    emulator.start()
    key = ANY_KEY_HINT if args.any_key else args.api_key
    print(f"Face Beauty Pro emulator: {emulator.base_url} (results on {emulator.cdn_base_url})")
    print("Point the client at it (paste into the shell that runs it):")
    print(f"export AILAB_API_BASE_URL={emulator.base_url}")
    print(f"export AILAB_API_KEY={key}")
    if emulator.effect == "local":
        print("Effect: the local engine's real retouching (our own looks, not the API's).")
    else:
        print("Effect: a deterministic stand-in, NOT real retouching (install torch for the local engine).")
    if args.fail_tasks:
        print(f"Faults: the first {args.fail_tasks} task(s) fail with {args.fail_code}.")
    print("Press Ctrl-C to stop.", flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        _log("emulator stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
