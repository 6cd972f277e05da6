"""`lcel-trace tail`: follow live trace files like `tail -F`."""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
import warnings
from collections.abc import Callable
from gzip import GzipFile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcel_trace.cli.render import print_tree
from lcel_trace.sources import open_trace_file, rotated_name, wrap_trace_file
from lcel_trace.terminal import visible

if TYPE_CHECKING:
    from lcel_trace.span import Trace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = commands.add_parser("tail", help="follow files and show traces as they finish")
    tail.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="trace files to follow (a folder or glob: the live files in it; .gz: read once)",
    )
    tail.add_argument("--from-start", action="store_true", help="show traces already in it")
    tail.add_argument("--exit-after", type=int, metavar="N", help="stop after N traces")
    tail.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    tail.set_defaults(handler=_tail)


def _tail(args: argparse.Namespace) -> int:
    """Follow the files like `tail -F` and print each trace when its `trace_end` arrives.

    Reads with the same reader as every other command (`lcel_trace.reader`): same line
    limit, same validation. A file as it stands is read first, quietly, so a trace that
    began before `tail` started is still shown whole when it ends (`--from-start` shows
    the finished ones too); then `following FILE` goes to stderr. Waits for a file that
    does not exist yet, starts over on a truncated file and reopens a replaced one
    (rotation), after reading what the old one still held, so a trace cut by a rotation
    is shown whole. A named pipe (FIFO) is read without blocking, all of it shown, and
    `--timeout` holds whether or not anyone writes to it. A bad line is reported on
    stderr and skipped; a file that is not a trace file ends the command. Several files
    are followed in turn; a folder or glob names the live files in it."""
    from rich.console import Console

    console = Console(highlight=False)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    shown = 0

    def show(trace: Trace) -> bool:
        """Print a finished trace; False once `--exit-after` is reached."""
        nonlocal shown
        print_tree(console, trace)
        sys.stdout.flush()
        shown += 1
        return args.exit_after is None or shown < args.exit_after

    followers = [_Follower(path, args.from_start, show) for path in _paths(args.files)]
    try:
        while args.exit_after is None or shown < args.exit_after:
            if deadline is not None and time.monotonic() > deadline:
                _note(f"tail: --timeout {args.timeout:g} s reached, {shown} traces shown")
                break
            progressed = False
            for follower in followers:
                progressed = follower.poll() or progressed
                if args.exit_after is not None and shown >= args.exit_after:
                    break
            if not progressed:
                time.sleep(0.05)  # polling: nothing new in any file yet
    finally:
        for follower in followers:
            follower.close()
    return 0


def _note(message: str) -> None:
    print(f"lcel-trace: {message}", file=sys.stderr, flush=True)


def _paths(given: list[Path]) -> list[Path]:
    """The files to follow: each name as given (it may not exist yet), a folder's or a
    glob's live files (one per rotated set)."""
    from lcel_trace.sources import expand

    paths: list[Path] = []
    for path in given:
        if path.is_dir() or (not path.exists() and any(c in str(path) for c in "*?[")):
            paths.extend(trace_set.name for trace_set in expand([path]))
        else:
            paths.append(path)
    return list(dict.fromkeys(paths))


class _Follower:
    """One followed file: its reader (kept across reopenings, so a trace whose lines
    straddle a rotation completes), its line buffer and its open handle."""

    def __init__(self, path: Path, from_start: bool, show: Callable[[Trace], bool]) -> None:
        from lcel_trace.reader import LineBuffer, TraceReader

        self.path = path
        self.show = show
        self.reader = TraceReader(path)
        self.lines = LineBuffer()
        self.quiet = not from_start  # the traces already finished when tail starts
        self.handle: Any = None
        self.identity: tuple[int, int] | None = None
        self.waited = False  # for the file to appear (or reappear): then all of it is new
        self.stopped = False
        self.first_line: bytes | None = None  # of the open file: finds it once rotated
        self.opened = False
        self.old_backups = self._identities()  # not new: not shown

    def poll(self) -> bool:
        """Read what is new; True when anything was."""
        if self.stopped:
            return False
        if self.handle is None:
            return self._open()
        if self._read_available():
            return True
        current: os.stat_result | None
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        if current is None or (current.st_dev, current.st_ino) != self.identity:
            self._read_available()  # what the old file got before it was replaced
            self.close()
            self._catch_up()
            _note(f"{self.path} was replaced or removed; following the new file")
            self.waited = True
            return True
        if not isinstance(self.handle, _Pipe | GzipFile) and current.st_size < self.handle.tell():
            _note(f"{self.path} was truncated; reading it from the start")
            self.handle.seek(0)
            self.lines.reset()
            return True
        return False

    def _catch_up(self) -> None:
        """After a rotation: read the backups written since the file we followed was
        rotated away (several rotations can happen between two polls). Ours is the
        backup that starts with the line ours started with; the newer ones come before
        it in the numbering."""
        if self.first_line is None:
            return
        newer: list[Path] = []
        for backup in self._backups():
            with open_trace_file(backup) as handle:
                if handle.readline(len(self.first_line)) == self.first_line:
                    break
            newer.append(backup)
        else:
            return  # ours is not among the backups: nothing known to catch up
        self._read_backups(newer)

    def _backups(self) -> list[Path]:
        """The backups of the followed file, newest first (`.1`, `.2`, ...)."""
        found: list[Path] = []
        for index in range(1, 100_000):
            zipped = rotated_name(self.path, index, compress=True)
            backup = zipped if zipped.exists() else rotated_name(self.path, index, compress=False)
            if not backup.exists():
                break
            found.append(backup)
        return found

    def _identities(self) -> set[tuple[int, int] | None]:
        return {_identity(backup) for backup in self._backups()}

    def _read_backups(self, newest_first: list[Path]) -> None:
        from lcel_trace.reader import LineBuffer

        self.first_line = None
        for backup in reversed(newest_first):
            self.handle, self.lines = open_trace_file(backup), LineBuffer()
            try:
                self._read_available()
            finally:
                self.close()
            if self.stopped:
                return

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.close()

    def _open(self) -> bool:
        try:
            self.handle = _open(self.path)
        except FileNotFoundError:
            if not self.waited:
                _note(f"waiting for {self.path}")
                self.waited = True
            return False
        self.quiet = self.quiet and not self.waited and not isinstance(self.handle, _Pipe)
        if self.waited and not self.opened:
            # it appeared while we waited, and may have rotated already: read the
            # backups that were not there when we started, oldest first
            handle, self.handle = self.handle, None
            fresh = [b for b in self._backups() if _identity(b) not in self.old_backups]
            self._read_backups(fresh)
            self.handle = handle
        self.opened = True
        status = os.fstat(self.handle.fileno())
        self.identity = (status.st_dev, status.st_ino)
        self.lines.reset()
        self._read_available()
        self.quiet = False
        _note(f"following {self.path}")
        return True

    def _read_available(self) -> bool:
        from lcel_trace.reader import TraceFileError

        progressed = False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for number, raw in self.lines.read_from(self.handle):
                progressed = True
                if number == 1:
                    self.first_line = raw
                try:
                    finished = self.reader.feed(number, raw)
                except TraceFileError as exc:
                    if exc.reason.startswith("not an lcel-trace file"):
                        raise
                    _note(f"error: {visible(exc)} (line skipped)")
                    continue
                finally:
                    for warning in caught:
                        _note(f"warning: {visible(warning.message)}")
                    caught.clear()
                if finished is not None and not self.quiet and not self.show(finished):
                    self.stopped = True
                    break
        return progressed


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def _open(path: Path) -> Any:
    """The file to follow, opened without blocking: opening a FIFO that no writer has
    opened yet would otherwise wait forever, past `--timeout`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            return _Pipe(fd)
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return wrap_trace_file(handle)  # a .gz backup is read once, whole


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
