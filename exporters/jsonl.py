"""`JsonlExporter`: traces as `lcel-trace/2` JSON lines in a file, each value once.

Each hand-off from a traced call is encoded on the exporter's own thread and written
to a file opened in append mode with one `write` (hand-offs that queued up meanwhile
share it, up to a megabyte of lines), so every write holds whole lines: concurrent
traces, and several exporters or processes sharing one file, never split a line.
Durability: lines reach the operating system within 0.1 s of each hand-off (each trace
end, and every half second while a long run streams; `export.GATHER_S`); with
`fsync=True` they are also forced to disk before the next hand-offs are taken. A
process killed mid-write leaves at most one partial last line, which readers report
and skip.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lcel_trace.export import (
    DEFAULT_MAX_QUEUE,
    BaseExporter,
    ExporterCapabilities,
    RecordChunks,
    warn_once,
)
from lcel_trace.jsonl_codec import encode_line
from lcel_trace.span import Record, Span, TraceEnd, TraceEvent, TraceStart

from .rotating import RotatingFile

__all__ = ["DEFAULT_MAX_ATTR_CHARS", "DEFAULT_MAX_VALUE_CHARS", "JsonlExporter"]
DEFAULT_MAX_ATTR_CHARS = 1_000_000
"""Longest content string written as is; longer ones are cut, ending in
`…[truncated N chars]`. High, so that a file replays its calls whole."""
DEFAULT_MAX_VALUE_CHARS = DEFAULT_MAX_ATTR_CHARS
"""Deprecated name of `DEFAULT_MAX_ATTR_CHARS`."""
_UNSET: Any = object()
_ABSENT: Any = object()  # an event without that key (None is a value)
WRITE_MAX_BYTES = 1 << 20
"""Lines gathered into one `write` before it is made (a line is never split)."""
_RECORD_TYPES = (TraceEvent, Span, TraceStart, TraceEnd)


class JsonlExporter(BaseExporter):
    """Appends traces to `path` in the `lcel-trace/2` format (`lcel_trace.jsonl_codec`): a
    run's inputs and outputs are written on its event lines, and its span line leaves
    out the ones those lines carry.

    `record_chunks` chooses whose stream chunks are kept: the root run's ("root", the
    default, enough to replay the output), every run's ("all"), or none. A content string
    longer than `max_attr_chars` (default a million characters; None for no limit) is
    cut and marked, so one huge input cannot make a line unwritable or unreadable
    (`max_value_chars` is its deprecated name). The traced runnable's own
    `max_attr_chars` does not cut the file: it is the record that replays the call.

    With `max_bytes`, the file rotates like `logging.handlers.RotatingFileHandler`:
    `path` becomes `path.1` (`path.1.gz` with `compress`) once the next lines would pass
    `max_bytes`, keeping `backup_count` backups; safe with several processes appending
    to the same path (`lcel_trace.exporters.rotating` says what holds). Every reader
    and command reads the set, oldest first.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        record_chunks: RecordChunks = "root",
        fsync: bool = False,
        max_attr_chars: int | None = DEFAULT_MAX_ATTR_CHARS,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_value_chars: int | None = _UNSET,
        max_bytes: int | None = None,
        backup_count: int = 5,
        compress: bool = False,
    ) -> None:
        super().__init__()
        if record_chunks not in ("none", "root", "all"):
            raise ValueError(
                f"record_chunks must be 'none', 'root' or 'all', got {record_chunks!r}"
            )
        if max_value_chars is not _UNSET:
            warnings.warn(
                "JsonlExporter(max_value_chars=...) is now max_attr_chars=...",
                DeprecationWarning,
                stacklevel=2,
            )
            max_attr_chars = max_value_chars
        if max_attr_chars is not None and max_attr_chars < 1:
            raise ValueError(f"max_attr_chars must be positive or None, got {max_attr_chars}")
        self.capabilities = ExporterCapabilities(
            receives="batches", events=True, chunks=record_chunks, max_queue=max_queue
        )
        self.path = Path(path)
        self.record_chunks: RecordChunks = record_chunks
        self.fsync = fsync
        self.max_attr_chars = max_attr_chars
        self.lines_written = 0
        self._roots: dict[str, str] = {}
        # per trace, per open run: the values its event lines carried (start input, the
        # closing event's input, the end's output), so its span line need not repeat them
        self._carried: dict[str, dict[str, list[Any]]] = {}
        self._fd: int | None = None  # opened on first write, closed when idle
        self._finished = False
        parent = self.path.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise OSError(f"cannot open trace file {self.path}: {parent} is not a writable folder")
        self._rotating = (
            None
            if max_bytes is None
            else RotatingFile(
                self.path,
                max_bytes=max_bytes,
                backup_count=backup_count,
                compress=compress,
                fsync=fsync,
            )
        )

    def on_batch(self, records: Sequence[Record]) -> None:
        """Encode the hand-offs and append them with a single write (one per
        `WRITE_MAX_BYTES` of lines, when they come to more)."""
        lines: list[bytes] = []
        size = 0
        memo: dict[Any, Any] = {}  # content shared by records of this batch, converted once
        record: Any  # its kind told by `kind`, which is read once
        for record in records:
            kind = type(record)
            if kind not in _RECORD_TYPES:  # a subclass: the class it is one of
                kind = next((t for t in _RECORD_TYPES if isinstance(record, t)), kind)
            if kind is TraceStart:
                self._roots[record.trace_id] = record.root_run_id
            elif kind is TraceEvent and record.kind == "stream" and not self._keeps(record):
                continue
            inputs, outputs = self._span_flags(record) if kind is Span else (True, True)
            try:
                line = encode_line(
                    record, self.max_attr_chars, memo, inputs=inputs, outputs=outputs
                )
                if kind is TraceEvent:
                    self._carry(record)
            except Exception as exc:
                warn_once("jsonl_encode_failed", path=str(self.path), error=repr(exc))
            else:
                lines.append(line)
                size += len(line)
                if size >= WRITE_MAX_BYTES:
                    self._write_lines(lines)
                    lines, size = [], 0
            if kind is TraceEnd:
                self._roots.pop(record.trace_id, None)
                self._carried.pop(record.trace_id, None)
        if lines:
            self._write_lines(lines)

    def _span_flags(self, span: Span) -> tuple[bool, bool]:
        """Whether a span's line carries its inputs and outputs: only when its event
        lines lack them."""
        runs = self._carried.get(span.trace_id)
        carried = runs.pop(span.span_id, None) if runs is not None else None
        if carried is None:
            return True, True
        start_input, closing_input, output = carried
        given = start_input if start_input is not _ABSENT else closing_input
        return given is not span.inputs, output is not span.outputs

    def _carry(self, event: TraceEvent) -> None:
        """Note the values an event's line wrote for its run (start input, the closing
        event's input, the end's output), so the run's span line need not repeat them."""
        event_kind = event.kind
        if event_kind == "start":
            runs = self._carried.get(event.trace_id)
            if runs is None:
                runs = self._carried[event.trace_id] = {}
            runs[event.run_id] = [event.data.get("input", _ABSENT), _ABSENT, _ABSENT]
        elif event_kind == "end" or event_kind == "error":
            runs = self._carried.get(event.trace_id)
            carried = runs.get(event.run_id) if runs is not None else None
            if carried is not None:
                carried[1] = event.data.get("input", _ABSENT)
                if event_kind == "end":
                    carried[2] = event.data.get("output", _ABSENT)

    def _write_lines(self, lines: list[bytes]) -> None:
        if self._rotating is not None and not self._finished:
            self._rotating.write_lines(lines)
        else:
            self._write(b"".join(lines))
        self.lines_written += len(lines)

    def export(self, spans: Sequence[Span]) -> None:
        self.on_batch(spans)

    def _keeps(self, event: TraceEvent) -> bool:
        if self.record_chunks == "all":
            return True
        return self.record_chunks == "root" and self._roots.get(event.trace_id) == event.run_id

    def _write(self, payload: bytes) -> None:
        if self._finished:
            warn_once("jsonl_write_after_close", path=str(self.path))
            return
        fd = self._fd
        if fd is None:
            fd = self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(fd)

    @property
    def max_value_chars(self) -> int | None:
        """Deprecated name of `max_attr_chars`."""
        return self.max_attr_chars

    def _flush(self, timeout_s: float | None) -> bool:
        if self._fd is not None and self.fsync:
            os.fsync(self._fd)
        return True

    def on_idle(self) -> None:
        """Nothing queued for a while: give the file descriptor back."""
        self._close_file()

    def _close(self) -> None:
        self._finished = True
        self._close_file()

    def _close_file(self) -> None:
        if self._rotating is not None:
            self._rotating.close()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __repr__(self) -> str:
        return f"JsonlExporter({str(self.path)!r})"
