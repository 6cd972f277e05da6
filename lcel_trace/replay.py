"""Playing `lcel-trace/1` files again.

`read_traces` gives validated traces (see `lcel_trace.reader`); `replay_events` the
recorded v2 events with their timing; `replay_runnable` a stand-in runnable that
re-streams a recorded output; `reexport` sends recorded spans to any exporter with their
original ids and times. Everything that replays or re-sends ids reads the file with
`strict_ids`, so ids that are not the format's own are a `TraceFileError`, never sent on.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from lcel_trace.context import hand_in
from lcel_trace.export import TraceExporter
from lcel_trace.reader import (
    MAX_LINE_BYTES,
    MAX_NESTING,
    TraceFileError,
    TruncatedTraceWarning,
    nesting_depth,
    read_traces,
)
from lcel_trace.span import Record, Trace, TraceEnd, TraceStart

__all__ = [
    "MAX_GAP_S",
    "MAX_LINE_BYTES",
    "MAX_NESTING",
    "RecordedError",
    "ReplayRunnable",
    "TraceFileError",
    "TruncatedTraceWarning",
    "nesting_depth",
    "read_traces",
    "reexport",
    "replay_events",
    "replay_runnable",
]

MAX_GAP_S = 60.0
"""The longest recorded gap a replay reproduces (before dividing by `speed`): a file's
timestamps are untrusted, and a gap of years must not stall a replay for years."""
_MAX_GAP_NS = int(MAX_GAP_S * 1e9)


def _chosen(path: str | os.PathLike[str], trace_id: str | None) -> list[Trace]:
    traces = read_traces(path, strict_ids=True)
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
    for event in trace.trace_events:
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
    """Reproduces recorded gaps between timestamps, divided by `speed` (0 = no waiting).

    Each gap is cut to `MAX_GAP_S` first; a timestamp earlier than the one before it
    is a gap of zero."""

    def __init__(self, speed: float) -> None:
        if not speed >= 0:
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
        self.speed = speed
        self._last_ts: int | None = None
        self._recorded_ns = 0
        self._origin = 0

    def _delay(self, ts_ns: int) -> float:
        if self.speed == 0:
            return 0.0
        if self._last_ts is None:
            self._last_ts, self._origin = ts_ns, time.perf_counter_ns()
            return 0.0
        self._recorded_ns += min(max(ts_ns - self._last_ts, 0), _MAX_GAP_NS)
        self._last_ts = max(ts_ns, self._last_ts)
        due = self._origin + self._recorded_ns / self.speed
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
    (0 = as fast as possible; no single gap longer than `MAX_GAP_S` / `speed`).
    Several traces in one file are merged by time."""
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
        for event in trace.trace_events
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
    exporters: Sequence[TraceExporter],
    *,
    timeout_s: float | None = 30.0,
) -> int:
    """Send every recorded trace, with its original ids and timestamps, to `exporters`;
    return how many traces were sent. Flushes the exporters before returning."""
    processors = [hand_in(e) for e in exporters]
    traces = read_traces(path, strict_ids=True)
    for trace in traces:
        batch = _records_of(trace)
        for processor in processors:
            processor.submit(batch)
    for processor in processors:
        processor.drain(timeout_s)
        processor.exporter.force_flush(timeout_s)
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
        event_count=len(trace.trace_events),
    )
    return [start, *trace.trace_events, *trace.spans, end]


def _is_otel_span_id(value: str | None) -> bool:
    return value is not None and len(value) == 16 and all(c in "0123456789abcdef" for c in value)
