"""A trace file that rotates by size, like `logging.handlers.RotatingFileHandler`, safely
shared by several processes appending to it.

`runs.jsonl` grows to `max_bytes`, then becomes `runs.jsonl.1` (`.1.gz` with
`compress`), the older backups move up one (`.2`, `.3`, ...) and the oldest beyond
`backup_count` is deleted. `lcel_trace.sources` reads the set back oldest first.

What holds with several processes (and exporters) writing the same path:

- Every write (whole lines only) and every rotation happen under one exclusive
  `fcntl.flock` on `runs.jsonl.lock`, so a rotation never happens in the middle of
  another process's write, and exactly one process rotates a full file.
- Before writing, a process checks under the lock that its open file is still the one
  at `path` (another process may have rotated it away) and reopens it if not, so no
  line is ever appended to a file that was already rotated out.
- Lines are never split across files; a file exceeds `max_bytes` only when a single
  line is larger than `max_bytes` (it then goes alone into a fresh file).
- The lines of one process keep their order across the set; a trace whose lines
  straddle a rotation is read whole because the reader reads the set as one stream.
- A crash mid-rotation loses nothing: the live file is renamed first (atomic), and a
  compressed backup appears under its name only once complete.

POSIX only (`fcntl`). A reader that takes a shared `flock` on the lock file sees the
names hold still (`lcel-trace tail` does, while it looks for backups rotated since it
last read). Reading a whole set takes no lock: a rotation while it is read may shift a
file under the reader, so read rotated sets when writers are quiet, or tail them.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RotatingFile"]


class RotatingFile:
    """Appends whole lines to `path`, rotating it at `max_bytes` (see the module doc)."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        backup_count: int,
        compress: bool = False,
        fsync: bool = False,
    ) -> None:
        try:
            import fcntl  # noqa: F401 - checked here, used under _locked
        except ImportError:  # pragma: no cover - Windows
            raise OSError("rotating a trace file needs POSIX file locks (fcntl)") from None
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if backup_count < 1:
            raise ValueError(
                f"backup_count must be at least 1 to rotate, got {backup_count} "
                "(without max_bytes the file is never rotated)"
            )
        self.path = path
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.compress = compress
        self.fsync = fsync
        self.rotations = 0
        self._lock_path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """Append `lines` (each ending in a newline), rotating before a file would pass
        `max_bytes`; each file gets whole lines only."""
        with self._locked():
            fd = self._current_fd()
            size = os.fstat(fd).st_size
            pending: list[bytes] = []
            pending_size = 0
            for line in lines:
                if size + pending_size + len(line) > self.max_bytes and size + pending_size > 0:
                    self._append(fd, pending)
                    pending, pending_size = [], 0
                    fd = self._rotate()
                    size = 0
                pending.append(line)
                pending_size += len(line)
            self._append(fd, pending)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)  # closing releases the lock

    def _current_fd(self) -> int:
        """Our descriptor, reopened when another process rotated the file away."""
        fd = self._fd
        if fd is not None:
            try:
                here = os.stat(self.path)
                ours = os.fstat(fd)
                if (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            self.close()
        fd = self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return fd

    def _append(self, fd: int, lines: list[bytes]) -> None:
        if not lines:
            return
        view = memoryview(b"".join(lines))
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(fd)

    def _rotate(self) -> int:
        """Shift the backups up one, make the live file backup 1, open a fresh one."""
        self.close()
        for index in range(self.backup_count, 0, -1):
            plain, zipped = self._names(index)
            if plain.exists() and zipped.exists():
                plain.unlink()  # a crash after compressing it: the .gz is whole
            for name in (plain, zipped):
                if not name.exists():
                    continue
                if index == self.backup_count:
                    name.unlink()
                else:
                    name.rename(self._names(index + 1)[name.suffix == ".gz"])
        first_plain, first_gz = self._names(1)
        if self.path.exists():
            os.rename(self.path, first_plain)  # atomic: from here the lines are in .1
            if self.compress:
                partial = first_gz.with_name(first_gz.name + ".partial")
                with open(first_plain, "rb") as source, gzip.open(partial, "wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
                os.rename(partial, first_gz)
                first_plain.unlink()
        self.rotations += 1
        return self._current_fd()

    def _names(self, index: int) -> tuple[Path, Path]:
        """Backup `index`, plain and gzipped (either may exist: `compress` can change)."""
        plain = self.path.with_name(f"{self.path.name}.{index}")
        return plain, plain.with_name(plain.name + ".gz")
