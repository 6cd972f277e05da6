"""Reading `lcel-trace/1` files back, and playing them again.

`read_traces` gives validated traces; `replay_events` the recorded v2 events with their
timing; `replay_runnable` a stand-in runnable that re-streams a recorded output;
`reexport` sends recorded spans to any exporter with their original ids and times.

A trace file is untrusted input. Every line is parsed and validated; a bad line is
reported as `file:line: reason`. A partial last line (a writer killed mid-write) is
reported as a warning and skipped, since everything before it is whole.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from lcel_trace.assemble import SpanAssembler
from lcel_trace.export import SpanExporter, processor_for
from lcel_trace.records import Record, from_line
from lcel_trace.span import Span, Trace, TraceEnd, TraceEvent, TraceStart

MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_NESTING = 64
# JSON strings and brackets; used to measure nesting without recursing into it.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def nesting_depth(raw: bytes) -> int:
    """How deeply a JSON text nests arrays and objects (brackets inside strings ignored).

    Checked before parsing: letting the JSON decoder recurse into hostile input and
    fail with RecursionError also upsets the interpreter's recursion bookkeeping.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_NESTING:
        return 0
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


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
            if nesting_depth(raw) > MAX_NESTING:
                raise TraceFileError(path, number, f"nesting deeper than {MAX_NESTING}")
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


def _chosen(path: str | os.PathLike[str], trace_id: str | None) -> list[Trace]:
    traces = read_traces(path)
    if trace_id is not None:
        traces = [t for t in traces if t.trace_id == trace_id]
        if not traces:
            raise LookupError(f"{os.fspath(path)}: no trace with id {trace_id}")
    if not traces:
        raise LookupError(f"{os.fspath(path)}: holds no traces")
    return traces


def _v2_events(trace: Trace) -> list[tuple[int, dict[str, Any]]]:
    """A trace's events in v2 shape, stream records expanded to one event per chunk."""
    expanded: list[tuple[int, dict[str, Any]]] = []
    for event in trace.events:
        base = {
            "event": event.event,
            "run_id": event.run_id,
            "name": event.name,
            "tags": list(event.tags),
            "metadata": dict(event.metadata),
            "parent_ids": list(event.parent_ids),
        }
        if event.kind == "stream":
            for ts_ns, chunk in event.data.get("chunks", ()):
                expanded.append((ts_ns, {**base, "data": {"chunk": chunk}}))
        elif event.kind == "custom":
            expanded.append((event.ts_ns, {**base, "data": event.data.get("data")}))
        else:
            data = {k: v for k, v in event.data.items() if k in ("input", "output", "error")}
            expanded.append((event.ts_ns, {**base, "data": data}))
    expanded.sort(key=lambda pair: pair[0])
    return expanded


class _Pacer:
    """Reproduces recorded gaps between timestamps, divided by `speed` (0 = no waiting)."""

    def __init__(self, speed: float) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
        self.speed = speed
        self._first_ts: int | None = None
        self._origin = 0

    def _delay(self, ts_ns: int) -> float:
        if self.speed == 0:
            return 0.0
        if self._first_ts is None:
            self._first_ts, self._origin = ts_ns, time.perf_counter_ns()
            return 0.0
        due = self._origin + (ts_ns - self._first_ts) / self.speed
        return max(0.0, (due - time.perf_counter_ns()) / 1e9)

    async def wait(self, ts_ns: int) -> None:
        delay = self._delay(ts_ns)
        if delay:
            await asyncio.sleep(delay)

    def wait_sync(self, ts_ns: int) -> None:
        delay = self._delay(ts_ns)
        if delay:
            time.sleep(delay)


async def replay_events(
    path: str | os.PathLike[str], speed: float = 1.0, *, trace_id: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The recorded events as `astream_events(version="v2")`-shaped dicts, LangChain
    objects rebuilt, with their original relative timing divided by `speed`
    (0 = as fast as possible). Several traces in one file are merged by time."""
    pacer = _Pacer(speed)
    events = [pair for trace in _chosen(path, trace_id) for pair in _v2_events(trace)]
    events.sort(key=lambda pair: pair[0])
    for ts_ns, event in events:
        await pacer.wait(ts_ns)
        yield event


def _root_chunks(trace: Trace) -> list[tuple[int, Any]]:
    root = trace.root_run_id
    return [
        (ts_ns, chunk)
        for event in trace.events
        if event.kind == "stream" and event.run_id == root
        for ts_ns, chunk in event.data.get("chunks", ())
    ]


class ReplayRunnable(Runnable[Any, Any]):
    """A deterministic stand-in for a recorded chain: whatever the input, it gives the
    recorded root output, streaming the recorded chunks with their recorded timing."""

    def __init__(self, trace: Trace, *, speed: float = 1.0) -> None:
        self.trace = trace
        self.speed = speed
        self.name = trace.root.name
        self._chunks = _root_chunks(trace)
        _Pacer(speed)  # validates speed

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        root = self.trace.root
        if root.status == "error" and root.error is not None:
            raise RecordedError(root.error.type, root.error.message)
        if root.outputs is None and self._chunks:
            return _join([chunk for _, chunk in self._chunks])
        return root.outputs

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        if not self._chunks:
            yield self.invoke(input, config)
            return
        pacer = _Pacer(self.speed)
        pacer.wait_sync(self.trace.root.start_ns)
        for ts_ns, chunk in self._chunks:
            pacer.wait_sync(ts_ns)
            yield chunk
        self._raise_recorded_error()

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        if not self._chunks:
            yield self.invoke(input, config)
            return
        pacer = _Pacer(self.speed)
        await pacer.wait(self.trace.root.start_ns)
        for ts_ns, chunk in self._chunks:
            await pacer.wait(ts_ns)
            yield chunk
        self._raise_recorded_error()

    def _raise_recorded_error(self) -> None:
        root = self.trace.root
        if root.status == "error" and root.error is not None:
            raise RecordedError(root.error.type, root.error.message)


class RecordedError(Exception):
    """The failure a recorded run ended with, raised again by its replay."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


def _join(chunks: list[Any]) -> Any:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def replay_runnable(
    path: str | os.PathLike[str], *, trace_id: str | None = None, speed: float = 1.0
) -> ReplayRunnable:
    """A `Runnable` that re-streams the recorded root output of one trace (the first
    in the file unless `trace_id` names another). Needs `record_chunks` "root" or
    "all" at recording time to stream chunk by chunk."""
    return ReplayRunnable(_chosen(path, trace_id)[0], speed=speed)


def reexport(
    path: str | os.PathLike[str],
    exporters: Sequence[SpanExporter],
    *,
    timeout_s: float | None = 30.0,
) -> int:
    """Send every recorded trace, with its original ids and timestamps, to `exporters`;
    return how many traces were sent. Flushes the exporters before returning."""
    traces = read_traces(path)
    for trace in traces:
        batch = _records_of(trace)
        for exporter in exporters:
            processor_for(exporter).submit(batch)
    for exporter in exporters:
        processor_for(exporter).drain(timeout_s)
        exporter.force_flush(timeout_s)
    return len(traces)


def _records_of(trace: Trace) -> list[Record]:
    start = TraceStart(
        trace_id=trace.trace_id,
        name=trace.name,
        start_ns=trace.start_ns,
        root_run_id=trace.root_run_id or trace.root.span_id,
        otel_parent_span_id=trace.root.parent_id
        if _is_otel_span_id(trace.root.parent_id)
        else None,
    )
    end = TraceEnd(
        trace_id=trace.trace_id,
        status=trace.status,
        end_ns=trace.end_ns,
        span_count=len(trace.spans),
        event_count=len(trace.events),
    )
    return [start, *trace.events, *trace.spans, end]


def _is_otel_span_id(value: str | None) -> bool:
    return value is not None and len(value) == 16 and all(c in "0123456789abcdef" for c in value)
