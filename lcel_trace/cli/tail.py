"""`lcel-trace tail`: follow a live trace file like `tail -F`."""

from __future__ import annotations

import argparse
import os
import stat
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
    (rotation). A named pipe (FIFO) is read without blocking, all of it shown, and
    `--timeout` holds whether or not anyone writes to it. A bad line is reported on
    stderr and skipped; a file that is not a trace file ends the command."""
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
                    handle = _open(path)
                except FileNotFoundError:
                    if not waited:
                        note(f"waiting for {path}")
                        waited = True
                    time.sleep(0.05)  # polling for the file to appear
                    continue
                stat = os.fstat(handle.fileno())
                identity = (stat.st_dev, stat.st_ino)
                lines.reset()
                quiet = quiet and not waited and not isinstance(handle, _Pipe)
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
            if isinstance(handle, _Pipe):
                pass  # a pipe has no size: nothing to compare
            elif current.st_size < handle.tell():
                note(f"{path} was truncated; reading it from the start")
                handle.seek(0)
                lines.reset()
                continue
            time.sleep(0.05)  # polling: nothing new in the file yet
    finally:
        if handle is not None:
            handle.close()
    return 0


def _open(path: Path) -> Any:
    """The file to follow, opened without blocking: opening a FIFO that no writer has
    opened yet would otherwise wait forever, past `--timeout`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            return _Pipe(fd)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _Pipe:
    """A FIFO read without blocking: `readline` gives what has arrived (possibly part of
    a line, which `LineBuffer` joins), or b"" when nothing has, so the polling loop keeps
    its deadline whether a writer is idle or absent."""

    CHUNK = 1 << 16

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def fileno(self) -> int:
        return self._fd

    def readline(self, limit: int = -1) -> bytes:
        if not self._buffer:
            try:
                self._buffer = os.read(self._fd, self.CHUNK)
            except BlockingIOError:  # a writer is connected but has sent nothing new
                return b""
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if limit >= 0:
            end = min(end, limit)
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        return line

    def close(self) -> None:
        os.close(self._fd)
