"""`lcel-trace tail`: follow a live trace file like `tail -F`."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from lcel_trace.cli.common import FILE_HELP
from lcel_trace.cli.render import print_tree
from lcel_trace.terminal import visible


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = commands.add_parser("tail", help="follow a file and show traces as they finish")
    tail.add_argument("file", type=Path, help=FILE_HELP)
    tail.add_argument("--from-start", action="store_true", help="show traces already in it")
    tail.add_argument("--exit-after", type=int, metavar="N", help="stop after N traces")
    tail.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    tail.set_defaults(handler=_tail)


def _tail(args: argparse.Namespace) -> int:
    """Follow the file like `tail -F` and print each trace when its `trace_end` arrives.

    Reads with the same reader as every other command (`lcel_trace.reader`): same line
    limit, same validation. The file as it stands is read first, quietly, so a trace that
    began before `tail` started is still shown whole when it ends (`--from-start` shows
    the finished ones too); then `following FILE` goes to stderr. Waits for a file that
    does not exist yet, starts over on a truncated file and reopens a replaced one
    (rotation). A bad line is reported on stderr and skipped; a file that is not a trace
    file ends the command."""
    from rich.console import Console

    from lcel_trace.reader import LineBuffer, TraceFileError, TraceReader

    console = Console(highlight=False)
    path: Path = args.file
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    reader = TraceReader(path)
    lines = LineBuffer()
    shown = 0
    quiet = not args.from_start  # the traces already finished when tail starts
    handle: Any = None
    identity: tuple[int, int] | None = None

    def note(message: str) -> None:
        print(f"lcel-trace: {message}", file=sys.stderr, flush=True)

    def read_available() -> bool:
        nonlocal shown
        progressed = False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for number, raw in lines.read_from(handle):
                progressed = True
                try:
                    finished = reader.feed(number, raw)
                except TraceFileError as exc:
                    if exc.reason.startswith("not an lcel-trace file"):
                        raise
                    note(f"error: {visible(exc)} (line skipped)")
                    continue
                finally:
                    for warning in caught:
                        note(f"warning: {visible(warning.message)}")
                    caught.clear()
                if finished is not None and not quiet:
                    print_tree(console, finished)
                    sys.stdout.flush()
                    shown += 1
                    if args.exit_after is not None and shown >= args.exit_after:
                        break
        return progressed

    try:
        waited = False  # for the file to appear (or reappear): then all of it is new
        while args.exit_after is None or shown < args.exit_after:
            if deadline is not None and time.monotonic() > deadline:
                note(f"tail: --timeout {args.timeout:g} s reached, {shown} traces shown")
                break
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - kept open across iterations
                except FileNotFoundError:
                    if not waited:
                        note(f"waiting for {path}")
                        waited = True
                    time.sleep(0.05)  # polling for the file to appear
                    continue
                stat = os.fstat(handle.fileno())
                identity = (stat.st_dev, stat.st_ino)
                lines.reset()
                quiet = quiet and not waited
                read_available()
                quiet = False
                note(f"following {path}")
                continue
            if read_available():
                continue
            current: os.stat_result | None
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is None or (current.st_dev, current.st_ino) != identity:
                handle.close()
                handle = None
                note(f"{path} was replaced or removed; following the new file")
                waited = True
                continue
            if current.st_size < handle.tell():
                note(f"{path} was truncated; reading it from the start")
                handle.seek(0)
                lines.reset()
                continue
            time.sleep(0.05)  # polling: nothing new in the file yet
    finally:
        if handle is not None:
            handle.close()
    return 0
