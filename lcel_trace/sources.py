"""Where trace lines come from: files, directories, globs, `.jsonl.gz` and rotated sets.

Every command and `lcel_trace.table` take the same arguments: a file, a directory (its
trace files, recursively), or a glob; any of them gzipped. `JsonlExporter(max_bytes=...)`
rotates `runs.jsonl` into `runs.jsonl.1`, `runs.jsonl.2`, ... (optionally `.gz`); naming
the live file, or matching any part of the set, reads the whole set, oldest file first,
as one stream, so a trace whose lines straddle a rotation is read whole. Files are read
line by line (never whole), so memory stays bounded whatever their size.
"""

from __future__ import annotations

import errno
import glob
import gzip
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

__all__ = [
    "TraceSet",
    "expand",
    "open_trace_file",
    "rotated_name",
    "wrap_trace_file",
]

GZIP_MAGIC = b"\x1f\x8b"
# runs.jsonl, runs.jsonl.gz, runs.jsonl.3, runs.jsonl.3.gz
_TRACE_FILE = re.compile(r"(?P<base>.+\.jsonl)(?:\.(?P<index>[1-9][0-9]*))?(?P<gz>\.gz)?")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True, slots=True)
class TraceSet:
    """Files read as one stream, oldest first: a rotated set, or one file on its own."""

    files: tuple[Path, ...]

    @property
    def name(self) -> Path:
        """The file the set is known by (the live file of a rotated set)."""
        return self.files[-1]


def rotated_name(path: str | os.PathLike[str], index: int, *, compress: bool) -> Path:
    """The name of the `index`-th backup of `path` (1 is the newest), as rotation writes it."""
    name = f"{os.fspath(path)}.{index}"
    return Path(name + ".gz" if compress else name)


def expand(paths: Iterable[str | os.PathLike[str]]) -> list[TraceSet]:
    """The trace sets that `paths` name, in the order given, each file once.

    A directory gives the trace files under it (`*.jsonl`, `*.jsonl.gz`, rotated
    backups), sorted; a glob the files it matches. Any file that belongs to a rotated
    set brings the set. A name that matches nothing is a mistake: `FileNotFoundError`.
    """
    sets: list[TraceSet] = []
    seen: set[Path] = set()
    for given in paths:
        for member in _members(os.fspath(given)):
            if member in seen:
                continue
            files = _rotation_set(member)
            seen.update(files)
            sets.append(TraceSet(tuple(files)))
    return sets


def _members(given: str) -> list[Path]:
    path = Path(given)
    if path.is_dir():
        found = _dir_files(path)
        if not found:
            raise FileNotFoundError(f"{given}: no trace files (*.jsonl, *.jsonl.gz) in it")
        return found
    if path.exists():
        return [path]
    if _GLOB_CHARS.search(given):
        matches = sorted(Path(m) for m in glob.glob(given, recursive=True))
        files = [f for m in matches for f in (_dir_files(m) if m.is_dir() else [m])]
        if not files:
            raise FileNotFoundError(f"{given}: no file matches")
        return files
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), given)


def _dir_files(folder: Path) -> list[Path]:
    """The trace files under `folder`, sorted by name."""
    return sorted(
        p for p in folder.rglob("*.jsonl*") if p.is_file() and _TRACE_FILE.fullmatch(p.name)
    )


def _rotation_set(path: Path) -> list[Path]:
    """`path` with the other files of its rotated set, oldest first."""
    match = _TRACE_FILE.fullmatch(path.name)
    if match is None:
        return [path]
    if match["index"] is None and match["gz"]:
        return [path]  # runs.jsonl.gz: a file of its own, not a backup
    base = path.with_name(match["base"])
    backups: list[tuple[int, Path]] = []
    for candidate in base.parent.glob(glob.escape(base.name) + ".*"):
        found = _TRACE_FILE.fullmatch(candidate.name)
        if found is None or found["base"] != base.name or found["index"] is None:
            continue
        if candidate.is_file():
            backups.append((int(found["index"]), candidate))
    if not backups:
        return [path]
    zipped = {index for index, p in backups if p.name.endswith(".gz")}
    # runs.jsonl.1 beside runs.jsonl.1.gz: a rotation stopped after compressing it
    backups = [(i, p) for i, p in backups if p.name.endswith(".gz") or i not in zipped]
    backups.sort(key=lambda pair: (-pair[0], pair[1].name.endswith(".gz")))
    files = [p for _, p in backups]
    if base.is_file():
        files.append(base)
    return files


def open_trace_file(path: str | os.PathLike[str]) -> IO[bytes]:
    """A binary reader for a trace file, gunzipped when it starts with gzip's magic
    (whatever its name): `readline(limit)` stays bounded either way."""
    return wrap_trace_file(open(path, "rb"))


def wrap_trace_file(handle: IO[bytes]) -> IO[bytes]:
    """`handle` itself, or a gunzipping reader over it (which closes it when closed)."""
    try:
        magic = handle.read(2)
        handle.seek(0)
    except OSError:
        handle.close()
        raise
    if magic != GZIP_MAGIC:
        return handle
    return cast("IO[bytes]", _GzipLines(handle))


class DamagedArchiveError(OSError):
    """A cut-off or corrupt `.gz` trace file (an `OSError` naming the file, which every
    command reports as one line; the reader reports it as `file:line: reason`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class _GzipLines(gzip.GzipFile):
    """A gzip reader whose damage raises `DamagedArchiveError`."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw
        self._path = getattr(raw, "name", "?")

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return super().readline(-1 if size is None else size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DamagedArchiveError(os.fspath(self._path), f"damaged gzip file ({exc})") from None

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def iter_files(sets: Iterable[TraceSet]) -> Iterator[Path]:
    """Every file of the sets, in reading order."""
    for trace_set in sets:
        yield from trace_set.files
