"""Reading `lcel-trace/1` files back: validated records grouped into traces.

A trace file is untrusted input. Every line is parsed and validated; a bad line is
reported as `file:line: reason`. A partial last line (a writer killed mid-write) is
reported as a warning and skipped, since everything before it is whole.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

from lcel_trace.assemble import SpanAssembler
from lcel_trace.records import Record, from_line
from lcel_trace.span import Span, Trace, TraceEnd, TraceEvent, TraceStart

MAX_LINE_BYTES = 64 * 1024 * 1024


class TraceFileError(ValueError):
    """A trace file line that cannot be read: `path:line: reason`."""

    def __init__(self, path: str | os.PathLike[str], line: int, reason: str) -> None:
        super().__init__(f"{os.fspath(path)}:{line}: {reason}")
        self.path = os.fspath(path)
        self.line = line
        self.reason = reason


class TruncatedTraceWarning(UserWarning):
    """The file ends in a partial line, as a writer killed mid-write leaves it."""


def iter_records(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Every record in the file, in file order, validated."""
    with open(path, "rb") as handle:
        number = 0
        for number, raw in enumerate(handle, start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise TraceFileError(path, number, f"line longer than {MAX_LINE_BYTES} bytes")
            complete = raw.endswith(b"\n")
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
                obj = json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                if not complete:
                    warnings.warn(
                        f"{os.fspath(path)}:{number}: partial last line skipped",
                        TruncatedTraceWarning,
                        stacklevel=2,
                    )
                    return
                raise TraceFileError(path, number, f"not valid JSON ({exc})") from None
            try:
                yield from_line(obj)
            except (ValueError, RecursionError) as exc:
                raise TraceFileError(path, number, str(exc)) from None


@dataclass
class _Pending:
    start: TraceStart | None = None
    end: TraceEnd | None = None
    events: list[TraceEvent] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)


def read_traces(path: str | os.PathLike[str]) -> list[Trace]:
    """The traces in a file, in order of their first line; interleaved traces are
    separated by id. Spans come from span lines, or are rebuilt from the events by the
    same assembler the recorder uses when a trace has none (a crash mid-trace)."""
    pending: dict[str, _Pending] = {}
    for record in iter_records(path):
        entry = pending.setdefault(record.trace_id, _Pending())
        if isinstance(record, TraceStart):
            entry.start = record
        elif isinstance(record, TraceEnd):
            entry.end = record
        elif isinstance(record, TraceEvent):
            entry.events.append(record)
        else:
            entry.spans.append(record)
    return [_to_trace(trace_id, entry) for trace_id, entry in pending.items()]


def _to_trace(trace_id: str, entry: _Pending) -> Trace:
    spans = entry.spans
    root_run_id = entry.start.root_run_id if entry.start else None
    if not spans and entry.events:
        assembler = SpanAssembler(
            trace_id,
            root_parent_id=entry.start.otel_parent_span_id if entry.start else None,
        )
        for event in entry.events:
            span = assembler.feed(event)
            if span is not None:
                spans.append(span)
        last_ts = max(e.ts_ns for e in entry.events)
        spans.extend(assembler.abort("incomplete", None, last_ts))
    times = [s.start_ns for s in spans] + [s.end_ns for s in spans]
    start_ns = entry.start.start_ns if entry.start else min(times, default=0)
    end_ns = entry.end.end_ns if entry.end else max(times, default=start_ns)
    return Trace(
        trace_id=trace_id,
        name=entry.start.name if entry.start else (spans[0].name if spans else ""),
        status=entry.end.status if entry.end else "incomplete",
        start_ns=start_ns,
        end_ns=end_ns,
        spans=tuple(spans),
        events=tuple(entry.events),
        root_run_id=root_run_id,
    )
