"""`lcel-trace tail`: follow live trace files like `tail -F`."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import time
import warnings
from collections.abc import Callable, Iterator
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
    (rotation), after reading what the old one still held and then the backups rotated
    since (looked for under a shared lock on the rotating writer's lock file, so their
    names hold still), so a trace cut by a rotation is shown whole and none is lost.
    A named pipe (FIFO) is read without blocking, all of it shown, and `--timeout` holds
    whether or not anyone writes to it. A bad line is reported on stderr and skipped; a
    file that is not a trace file ends the command. Several files are followed in turn;
    a folder or glob names the live files in it."""
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
        self.catch_up_pending = False

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
            _note(f"{self.path} was replaced or removed; following the new file")
            self.waited = True
            self._open(catch_up=True)
            return True
        if not isinstance(self.handle, _Pipe | GzipFile) and current.st_size < self.handle.tell():
            _note(f"{self.path} was truncated; reading it from the start")
            self.handle.seek(0)
            self.lines.reset()
            return True
        return False

    def _rotated_since(self, live: Any) -> list[Path]:
        """After a rotation: the backups written since the file we followed was rotated
        away (several rotations can happen between two polls), newest first. Ours is the
        backup that starts with the line ours started with; the newer ones come before
        it in the numbering. The live file we already hold is skipped if it was rotated
        meanwhile (we read it from our handle), and so is a backup seen twice because a
        rotation shifted the names while we looked."""
        if self.first_line is None:
            return []
        skip: set[tuple[int, int] | None] = {_fd_identity(live)} if live is not None else set()
        live_first = _first_line(live)
        longest = max(len(self.first_line), len(live_first or b""))
        newer: list[Path] = []
        for backup in self._backups():
            identity = _identity(backup)
            if identity in skip:
                continue
            skip.add(identity)
            try:
                with open_trace_file(backup) as handle:
                    first = handle.readline(longest)
            except FileNotFoundError:
                continue  # rotated out of reach while we looked
            if first == self.first_line:
                return newer
            if live_first is not None and first == live_first:
                continue
            newer.append(backup)
        return []  # ours is not among the backups: nothing known to catch up

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

    def _read_backups(self, oldest_first: list[Any]) -> None:
        """Read open backups in order (each sets `first_line`: the newest one last)."""
        from lcel_trace.reader import LineBuffer

        for index, handle in enumerate(oldest_first):
            if self.stopped:
                for rest in oldest_first[index:]:
                    rest.close()
                return
            self.handle, self.lines = handle, LineBuffer()
            try:
                self._read_available()
            finally:
                self.close()

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.close()

    def _open(self, *, catch_up: bool = False) -> bool:
        """Open the file; first read the backups rotated since the file we followed
        (`catch_up`), or, when it appeared while we waited, those made meanwhile. The
        live file is opened before the backups are looked at, so a rotation during the
        look cannot slip between them."""
        backups: list[Path] = []
        with _rotation_paused(self.path):  # names do not shift while we look
            try:
                live = _open(self.path)
            except FileNotFoundError:
                live = None
            if catch_up or self.catch_up_pending:
                backups = self._rotated_since(live)
                # no live file yet (a writer not yet back): look again when there is one
                self.catch_up_pending = live is None
            elif live is not None and self.waited and not self.opened:
                # it appeared while we waited, and may have rotated already
                known = {*self.old_backups, _fd_identity(live)}
                live_first = _first_line(live)
                fresh = [b for b in self._backups() if _identity(b) not in known]
                backups = [b for b in fresh if _first_line_of(b) != live_first]
            handles = []
            for backup in reversed(backups):  # oldest first; open while the names hold
                with contextlib.suppress(FileNotFoundError):
                    handles.append(open_trace_file(backup))
        if live is not None:
            self.quiet = self.quiet and not self.waited and not isinstance(live, _Pipe)
        self._read_backups(handles)
        if live is None:
            if not self.waited:
                _note(f"waiting for {self.path}")
                self.waited = True
            return False
        self.handle = live
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


@contextlib.contextmanager
def _rotation_paused(path: Path) -> Iterator[None]:
    """Hold off a rotating `JsonlExporter` (a shared lock on the lock file under which
    it writes and rotates), so the backups' names hold still while we list them."""
    try:
        import fcntl

        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDONLY)
    except (ImportError, OSError):  # not a rotating writer's file (or not POSIX)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _fd_identity(handle: Any) -> tuple[int, int]:
    status = os.fstat(handle.fileno())
    return status.st_dev, status.st_ino


def _first_line(handle: Any) -> bytes | None:
    """The first line of an open plain file, read without moving it; None if it has
    no whole line yet (or is a pipe or gzip, which are never rotated backups)."""
    if isinstance(handle, _Pipe | GzipFile):
        return None
    head = os.pread(handle.fileno(), 1 << 20, 0)
    end = head.find(b"\n")
    return None if end < 0 else head[: end + 1]


def _first_line_of(path: Path) -> bytes | None:
    try:
        with open_trace_file(path) as handle:
            return handle.readline(1 << 20) or None
    except FileNotFoundError:
        return None


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
