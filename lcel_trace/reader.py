"""Reading trace files (`lcel-trace/2`, and `/1`): bounded lines, validated records,
traces grouped by id; span inputs and outputs a `/2` span line left to its run's event
lines are taken back from them (`TraceReader._build`).

A trace file is untrusted input. Lines are read with a bounded `readline`, so memory
stays bounded whatever the file holds; nesting is measured in one linear pass before the
JSON decoder sees a line; every record is validated. A line that is not JSON is a
*partial* line (a writer killed mid-write leaves one, possibly with other writers' whole
lines glued on after it): it is skipped with a `TruncatedTraceWarning` naming the line,
and reading goes on. A line that is JSON but breaks the schema is a `TraceFileError`
reading `file:line: reason`, and so is every other failure: nothing else escapes.

`LineBuffer` cuts bytes into lines and `TraceReader` turns lines into traces; both are
push-based, so `read_traces` (a whole file) and `lcel-trace tail` (a growing file) share
them.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any, NoReturn

from lcel_trace.assemble import SpanAssembler
from lcel_trace.jsonl_codec import FROM_EVENTS, RECORD_TYPES, Record, from_line
from lcel_trace.sources import DamagedArchiveError, open_trace_file
from lcel_trace.span import Span, Trace, TraceEnd, TraceEvent, TraceStart

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_NESTING",
    "LineBuffer",
    "TraceFileError",
    "TraceReader",
    "TruncatedTraceWarning",
    "iter_traces",
    "nesting_depth",
    "read_traces",
    "stream_traces",
]

MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_NESTING = 64
_SKIP_CHUNK = 1024 * 1024
_STRUCTURE = re.compile(rb'[\[\]{}"]')
# The rest of a JSON string body after its opening quote; stops at the closing quote (or
# the end of an unterminated string). Unrolled and possessive, so it never backtracks.
_STRING_BODY = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+', re.DOTALL)
# Where a whole record may start after a cut-off one glued in front of it.
_RECORD_START = re.compile(rb'\{\s*"type"\s*:')
_MAX_GLUE_CANDIDATES = 16

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OTEL_SPAN_ID = re.compile(r"[0-9a-f]{16}")


class TraceFileError(ValueError):
    """A trace file line that cannot be read: `path:line: reason`."""

    def __init__(self, path: str | os.PathLike[str], line: int, reason: str) -> None:
        super().__init__(f"{os.fspath(path)}:{line}: {reason}")
        self.path = os.fspath(path)
        self.line = line
        self.reason = reason


class TruncatedTraceWarning(UserWarning):
    """A partial line (a writer killed mid-write) was skipped; the rest was read."""


def nesting_depth(raw: bytes, limit: int = MAX_NESTING) -> int:
    """How deeply a JSON text nests arrays and objects (brackets inside strings ignored),
    in one linear pass; stops counting once past `limit`.

    Checked before parsing: letting the JSON decoder recurse into hostile input and
    fail with RecursionError also upsets the interpreter's recursion bookkeeping.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return 0
    depth = deepest = 0
    pos, size = 0, len(raw)
    while (match := _STRUCTURE.search(raw, pos)) is not None:
        char = raw[match.start()]
        pos = match.end()
        if char == 0x22:  # '"': skip the string, escapes included
            pos = _STRING_BODY.match(raw, pos).end() + 1  # type: ignore[union-attr]
            if pos > size:
                break  # unterminated: everything left is inside the string
        elif char in (0x5B, 0x7B):  # '[' '{'
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


# -- lines -------------------------------------------------------------------------------


class LineBuffer:
    """Bytes from a file in, whole lines out, never holding more than `limit` bytes.

    `read_from(handle)` reads to the current end of the file and yields
    `(line_number, raw)` for each newline-terminated line, or `(line_number, None)` for
    a line longer than `limit`; if the caller carries on after that, the rest of the
    long line is skipped in bounded chunks. A last line without its newline stays
    buffered (`pending`) until more of it arrives, as happens while a writer is busy.
    """

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self.limit = limit
        self.number = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._skipping = False

    @property
    def pending(self) -> bytes:
        """The start of a line whose newline has not been read yet."""
        return b"" if self._skipping else b"".join(self._parts)

    def reset(self) -> None:
        """Forget the partial line and start counting lines again (a truncated file)."""
        self.number = 0
        self._parts.clear()
        self._size = 0
        self._skipping = False

    def _readline(self, handle: IO[bytes], size: int) -> bytes:
        try:
            return handle.readline(size)
        except DamagedArchiveError as exc:  # untrusted input: reported like a bad line
            raise TraceFileError(exc.path, self.number + 1, exc.reason) from None

    def read_from(self, handle: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
        while True:
            if self._skipping:
                chunk = self._readline(handle, _SKIP_CHUNK)
                if not chunk:
                    return
                if chunk.endswith(b"\n"):
                    self._skipping = False
                continue
            chunk = self._readline(handle, self.limit + 1 - self._size)
            if not chunk:
                return
            self._parts.append(chunk)
            self._size += len(chunk)
            if self._size > self.limit:
                self.number += 1
                ended = chunk.endswith(b"\n")
                self._parts.clear()
                self._size = 0
                self._skipping = not ended
                yield self.number, None
            elif chunk.endswith(b"\n"):
                self.number += 1
                raw = chunk if len(self._parts) == 1 else b"".join(self._parts)
                self._parts.clear()
                self._size = 0
                yield self.number, raw

    def take_pending(self) -> tuple[int, bytes] | None:
        """The unterminated last line, as a numbered line, once the file is known to end."""
        raw = self.pending
        self._parts.clear()
        self._size = 0
        if not raw:
            return None
        self.number += 1
        return self.number, raw


# -- records and traces ------------------------------------------------------------------


@dataclass
class _Pending:
    first_line: int
    start: TraceStart | None = None
    end: TraceEnd | None = None
    events: list[tuple[int, TraceEvent]] = field(default_factory=list)
    spans: list[tuple[int, Span]] = field(default_factory=list)


class TraceReader:
    """Numbered lines in, validated traces out.

    `feed(number, raw)` takes one line and returns the trace its `trace_end` completes,
    if it does; `finish()` returns the traces still open, in order of their first line.
    Failures raise `TraceFileError`; partial lines warn `TruncatedTraceWarning`.
    With `strict_ids`, trace ids must be 32 lowercase hex digits (not all zero) and run
    ids UUID text, as the recorder writes them: needed before sending ids onward.
    """

    def __init__(self, path: str | os.PathLike[str], *, strict_ids: bool = False) -> None:
        self.path = os.fspath(path)
        self.strict_ids = strict_ids
        self._pending: dict[str, _Pending] = {}
        self._records = 0
        self._first_garbage: tuple[int, bytes] | None = None

    def feed(self, number: int, raw: bytes | None, *, last: bool = False) -> Trace | None:
        """One line; `raw=None` is a line over the limit, `last` a line with no newline."""
        done = self.feed_numbered(number, raw, last=last)
        return None if done is None else done[1]

    def feed_numbered(
        self, number: int, raw: bytes | None, *, last: bool = False
    ) -> tuple[int, Trace] | None:
        """As `feed`, with the number of the completed trace's first line."""
        if raw is None:
            raise TraceFileError(self.path, number, f"line longer than {MAX_LINE_BYTES} bytes")
        record = self._record(number, raw, last)
        if record is None:
            return None
        entry = self._pending.get(record.trace_id)
        if entry is None:
            entry = self._pending[record.trace_id] = _Pending(number)
        if isinstance(record, TraceStart):
            entry.start = record
        elif isinstance(record, TraceEvent):
            entry.events.append((number, record))
        elif isinstance(record, Span):
            entry.spans.append((number, record))
        else:
            entry.end = record
            del self._pending[record.trace_id]
            return entry.first_line, self._build(record.trace_id, entry)
        return None

    def finish(self) -> list[Trace]:
        """The traces without a `trace_end` yet, in order of their first line."""
        return [trace for _, trace in self.finish_numbered()]

    def finish_numbered(self) -> list[tuple[int, Trace]]:
        """As `finish`, each trace with the number of its first line."""
        if self._records == 0 and self._first_garbage is not None:
            self._not_ours(*self._first_garbage)
        entries, self._pending = self._pending, {}
        return [(entry.first_line, self._build(tid, entry)) for tid, entry in entries.items()]

    def _record(self, number: int, raw: bytes, last: bool) -> Record | None:
        if not raw.strip():
            return None
        if nesting_depth(raw) > MAX_NESTING:
            raise TraceFileError(self.path, number, f"nesting deeper than {MAX_NESTING}")
        obj = self._parse(number, raw)
        if obj is _PARTIAL:
            glued = self._glued_record(raw)
            what = "partial last line" if last else "partial line"
            if glued is None:
                if self._records == 0 and not last:
                    # One partial line can open a trace file (a writer killed in its
                    # first write); two before any record mean it was never one.
                    if self._first_garbage is not None:
                        self._not_ours(*self._first_garbage)
                    self._first_garbage = (number, raw)
                _warn(f"{self.path}:{number}: {what} skipped (not valid JSON)")
                return None
            _warn(
                f"{self.path}:{number}: {what} skipped: a cut-off record "
                "with a whole one glued after it (the whole one is kept)"
            )
            obj = glued
        if self._records == 0 and not _looks_like_a_record(obj):
            self._not_ours(number, raw)
        try:
            record = from_line(obj)
            if self.strict_ids:
                _check_ids(record)
        except Exception as exc:  # from_line runs LangChain's loader on hostile content
            raise TraceFileError(self.path, number, _reason(exc)) from None
        self._records += 1
        return record

    def _parse(self, number: int, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _PARTIAL
        except (ValueError, RecursionError) as exc:  # e.g. an integer of 5,000 digits
            raise TraceFileError(self.path, number, f"cannot parse: {_reason(exc)}") from None

    def _glued_record(self, raw: bytes) -> Any:
        """A whole record after a cut-off one on the same line, if there is one: the
        first place a record can start from which the rest of the line parses."""
        for tried, match in enumerate(_RECORD_START.finditer(raw, 1)):
            if tried >= _MAX_GLUE_CANDIDATES:
                break
            try:
                obj = json.loads(raw[match.start() :])
            except (ValueError, RecursionError):
                continue
            if _looks_like_a_record(obj):
                return obj
        return None

    def _not_ours(self, number: int, raw: bytes) -> NoReturn:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        shown = text if len(text) <= 80 else text[:80] + "…"
        raise TraceFileError(self.path, number, f"not an lcel-trace file (first line: {shown})")

    def _build(self, trace_id: str, entry: _Pending) -> Trace:
        _check_no_cycles(self.path, entry.spans)
        spans = [span for _, span in entry.spans]
        events = [event for _, event in entry.events]
        start, end = entry.start, entry.end
        if not spans and events:
            spans = self._rebuild_spans(trace_id, entry)
        elif any(s.inputs is FROM_EVENTS or s.outputs is FROM_EVENTS for s in spans):
            spans = _values_from_events(spans, events)
        times = [s.start_ns for s in spans] + [s.end_ns for s in spans]
        start_ns = start.start_ns if start else min(times, default=0)
        end_ns = end.end_ns if end else max(times, default=start_ns)
        return Trace(
            trace_id=trace_id,
            name=start.name if start else (spans[0].name if spans else ""),
            status=end.status if end else "incomplete",
            start_ns=start_ns,
            end_ns=end_ns,
            spans=tuple(spans),
            trace_events=tuple(events),
            root_run_id=start.root_run_id if start else None,
        )

    def _rebuild_spans(self, trace_id: str, entry: _Pending) -> list[Span]:
        """Spans from the events by the recorder's own assembler (a crash mid-trace)."""
        assembler = SpanAssembler(
            trace_id,
            root_parent_id=entry.start.otel_parent_span_id if entry.start else None,
        )
        spans: list[Span] = []
        number = entry.first_line
        try:
            for line, event in entry.events:
                number = line
                span = assembler.feed(event)
                if span is not None:
                    spans.append(span)
            last_ts = max(event.ts_ns for _, event in entry.events)
            spans.extend(assembler.abort("incomplete", None, last_ts))
        except Exception as exc:  # the assembler was built for live events, not hostile ones
            reason = f"cannot rebuild spans from events: {_reason(exc)}"
            raise TraceFileError(self.path, number, reason) from None
        _check_no_cycles(self.path, [(entry.first_line, span) for span in spans])
        return spans


def _values_from_events(spans: list[Span], events: list[TraceEvent]) -> list[Span]:
    """Spans with the inputs and outputs their lines left to the run's event lines, by
    the assembler's rule: inputs from the start event, else from the end or error event
    (steps that report them only there); outputs from the end event. What no event
    holds (a line lost with its events) is None."""
    starts: dict[str, TraceEvent] = {}
    closings: dict[str, TraceEvent] = {}
    for event in events:
        if event.kind == "start":
            starts.setdefault(event.run_id, event)
        elif event.kind in ("end", "error"):
            closings.setdefault(event.run_id, event)
    filled = []
    for span in spans:
        inputs, outputs = span.inputs, span.outputs
        if inputs is FROM_EVENTS:
            start, closing = starts.get(span.span_id), closings.get(span.span_id)
            if start is not None and "input" in start.data:
                inputs = start.data["input"]
            else:
                inputs = closing.data.get("input") if closing is not None else None
        if outputs is FROM_EVENTS:
            closing = closings.get(span.span_id)
            outputs = closing.data.get("output") if closing and closing.kind == "end" else None
        if inputs is not span.inputs or outputs is not span.outputs:
            span = replace(span, inputs=inputs, outputs=outputs)
        filled.append(span)
    return filled


_PARTIAL: Any = object()
"""What `_parse` gives for a line that is not JSON (`None` is valid JSON)."""


def _warn(message: str) -> None:
    warnings.warn(message, TruncatedTraceWarning, stacklevel=4)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, ValueError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 500 else text[:500] + "…"


def _looks_like_a_record(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    kind = obj.get("type")
    return isinstance(kind, str) and kind in RECORD_TYPES


def _check_no_cycles(path: str, spans: list[tuple[int, Span]]) -> None:
    """Refuse a trace whose parent links loop (a span its own ancestor): iterative, linear."""
    parents: dict[str, set[str]] = {}
    lines: dict[str, int] = {}
    for number, span in spans:
        lines.setdefault(span.span_id, number)
        if span.parent_id is not None:
            parents.setdefault(span.span_id, set()).add(span.parent_id)
    done: set[str] = set()
    for origin in parents:
        if origin in done:
            continue
        on_path: set[str] = {origin}
        stack: list[tuple[str, Iterator[str]]] = [(origin, iter(parents[origin]))]
        while stack:
            node, todo = stack[-1]
            parent = next(todo, None)
            if parent is None:
                stack.pop()
                on_path.discard(node)
                done.add(node)
            elif parent in on_path:
                reason = f"span {parent} is its own ancestor (parent_id links loop)"
                raise TraceFileError(path, lines[parent], reason)
            elif parent not in done and parent in parents:
                on_path.add(parent)
                stack.append((parent, iter(parents[parent])))


def _check_ids(record: Record) -> None:
    trace_id = record.trace_id
    if not _TRACE_ID.fullmatch(trace_id) or trace_id == "0" * 32:
        raise ValueError(
            f"trace id {trace_id[:40]!r} is not 32 lowercase hex digits (and not all zero)"
        )
    if isinstance(record, TraceStart):
        _check_run_id("root_run_id", record.root_run_id)
        if record.otel_parent_span_id is not None:
            _check_otel_span_id("otel_parent_span_id", record.otel_parent_span_id)
    elif isinstance(record, TraceEvent):
        _check_run_id("run_id", record.run_id)
        for parent in record.parent_ids:
            _check_run_id("parent_ids", parent)
    elif isinstance(record, Span):
        _check_run_id("span_id", record.span_id)
        if record.parent_id is not None and not _OTEL_SPAN_ID.fullmatch(record.parent_id):
            _check_run_id("parent_id", record.parent_id)
        elif record.parent_id is not None:
            _check_otel_span_id("parent_id", record.parent_id)


def _check_run_id(key: str, value: str) -> None:
    if not _RUN_ID.fullmatch(value):
        raise ValueError(f"{key!r} {value[:40]!r} is not a run id (lowercase UUID text)")


def _check_otel_span_id(key: str, value: str) -> None:
    if not _OTEL_SPAN_ID.fullmatch(value) or value == "0" * 16:
        raise ValueError(f"{key!r} {value[:40]!r} is not 16 lowercase hex digits (not all zero)")


# -- whole files -------------------------------------------------------------------------


def iter_traces(path: str | os.PathLike[str], *, strict_ids: bool = False) -> Iterator[Trace]:
    """The traces in a file as the file is read: each when its `trace_end` is read, then
    the unfinished ones. Holds only the traces still open, never the file's text."""
    reader = TraceReader(path, strict_ids=strict_ids)
    lines = LineBuffer()
    with open_trace_file(path) as handle:  # gunzipped when it is gzip
        for number, raw in lines.read_from(handle):
            trace = reader.feed(number, raw)
            if trace is not None:
                yield trace
    tail = lines.take_pending()
    if tail is not None:
        trace = reader.feed(*tail, last=True)
        if trace is not None:
            yield trace
    yield from reader.finish()


def read_traces(path: str | os.PathLike[str], *, strict_ids: bool = False) -> list[Trace]:
    """The traces in a file, in order of their first line; interleaved traces are
    separated by id. Spans come from span lines, or are rebuilt from the events by the
    same assembler the recorder uses when a trace has none (a crash mid-trace).

    With `strict_ids`, ids must be the format's own (see `TraceReader`)."""
    reader = TraceReader(path, strict_ids=strict_ids)
    lines = LineBuffer()
    done: list[tuple[int, Trace]] = []
    with open_trace_file(path) as handle:  # gunzipped when it is gzip
        for number, raw in lines.read_from(handle):
            if (finished := reader.feed_numbered(number, raw)) is not None:
                done.append(finished)
    tail = lines.take_pending()
    if tail is not None and (finished := reader.feed_numbered(*tail, last=True)) is not None:
        done.append(finished)
    done.extend(reader.finish_numbered())
    done.sort(key=lambda pair: pair[0])
    return [trace for _, trace in done]


# -- several files, streamed -------------------------------------------------------------


def stream_traces(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    strict_ids: bool = False,
) -> Iterator[Trace]:
    """The traces in files, directories, globs and `.jsonl.gz` (`lcel_trace.sources`),
    each yielded when its `trace_end` is read, then each set's unfinished ones: memory
    holds only the traces still open, whatever the files' size.

    A rotated set is read as one stream, oldest file first, so a trace cut by a rotation
    comes out whole; errors still name the file and line (`file:line: reason`)."""
    from lcel_trace.sources import expand

    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    for trace_set in expand(given):
        reader = TraceReader(trace_set.files[0], strict_ids=strict_ids)
        for path in trace_set.files:
            reader.path = os.fspath(path)
            lines = LineBuffer()
            with open_trace_file(path) as handle:
                for number, raw in lines.read_from(handle):
                    trace = reader.feed(number, raw)
                    if trace is not None:
                        yield trace
            tail = lines.take_pending()
            if tail is not None and (trace := reader.feed(*tail, last=True)) is not None:
                yield trace
        yield from reader.finish()
