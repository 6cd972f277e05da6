"""One trace from first event to last: the pipeline every producer feeds.

A session takes producers' events through one door (`feed`, the `TraceSink` of
`run_events`) from whoever produces them (the callback recorder attached by `trace()`,
or a consumed `astream_events` stream), completes them from its run table, turns them
into spans through the assembler, and hands
records to each exporter's queue in batches (at trace end, and every
`HANDOFF_INTERVAL_NS` or `HANDOFF_MAX_CHUNKS` recorded chunks while a long run
streams), so the caller's path holds no I/O. `finish` closes every span still open
and delivers the finished `Trace` to the active `capture()` blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from typing import Any

from lcel_trace import otel_context
from lcel_trace._capture import Capture, active_captures
from lcel_trace._log import log, report_internal_error
from lcel_trace.assemble import SpanAssembler
from lcel_trace.clock import now_ns
from lcel_trace.context import TraceOptions
from lcel_trace.normalise import is_cancellation
from lcel_trace.run_events import ChunkSink, RunChunk, RunCustom, RunEnd, RunEvent, RunStart
from lcel_trace.span import (
    Record,
    Span,
    Status,
    Trace,
    TraceEnd,
    TraceEvent,
    TraceStart,
)

__all__ = ["HANDOFF_INTERVAL_NS", "HANDOFF_MAX_CHUNKS", "HANDOFF_MAX_RECORDS", "TraceSession"]

HANDOFF_INTERVAL_NS = 500_000_000
HANDOFF_MAX_RECORDS = 512
HANDOFF_MAX_CHUNKS = 4096


def _versions() -> dict[str, str]:
    versions = {}
    for dist in ("lcel-trace", "langchain-core"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


_VERSIONS = _versions()


class TraceSession:
    """The state of one trace while its events flow in."""

    def __init__(
        self,
        options: TraceOptions,
        *,
        trace_id: str,
        root_name: str,
        otel_parent_span_id: str | None = None,
        root_run_id: str | None = None,
        finish_with_root: bool = False,
    ) -> None:
        self.trace_id = trace_id
        self._finish_with_root = finish_with_root
        self.start_ns = now_ns()
        self.finished = False
        self.options = options
        self.sets_otel_context = options.otel_context
        self._captures: tuple[Capture, ...] = active_captures()
        self._processors = options.processors
        self._record_root_chunks = options.record_root_chunks or bool(self._captures)
        self._record_all_chunks = options.record_all_chunks
        self._keep_records = bool(self._processors)
        # Event records are built only when an exporter (or a capture) reads them;
        # span content is redacted only when someone receives the spans at all.
        self._keep_events = bool(self._captures) or any(
            p.capabilities.events for p in self._processors
        )
        self._redaction = options.redactor.for_one_trace(
            content=self._keep_records or bool(self._captures)
        )
        self._assembler = SpanAssembler(
            trace_id,
            redact_folded=self._redaction.content,
            root_parent_id=otel_parent_span_id,
            root_run_id=root_run_id,
        )
        self._otel_parent_span_id = otel_parent_span_id
        self._name = self._redaction.name(options.name or root_name)
        self._started = False
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self._events: list[TraceEvent] = []
        self._event_count = 0
        self._pending: list[Record] = []
        self._chunks: dict[str, list[list[Any]]] = {}
        self._last_handoff_ns = self.start_ns

    @property
    def root_run_id(self) -> str | None:
        """The run id of the first run that started in this trace (its root)."""
        return self._assembler.root_run_id

    # -- the one door (`TraceSink`): producers' events in ------------------------------

    def feed(self, event: RunEvent) -> bool:
        """Take one producer event, completed from the run table (see `run_events`)."""
        if isinstance(event, RunChunk):
            return self._chunk(event.run_id, event.ts_ns, event.chunk)
        with self._lock:
            if self.finished:
                return False
            record = self._completed(event)
            if record is None:
                return False
            if not self._started:
                self._begin(record)
            if record.kind in ("end", "error") and record.run_id in self._chunks:
                self._flush_chunks(record.run_id, final=True)
            if self._keep_events:
                self._append(record)
            else:  # nobody reads the event itself: count it, never hand it off
                self._event_count += 1
            happened = event.data if type(event) is not RunCustom else None
            span = self._assembler.feed(record, happened)
            if span is not None:
                self._spans.append(span)
                self._append(span)
            if (
                len(self._pending) >= HANDOFF_MAX_RECORDS
                or record.ts_ns - self._last_handoff_ns > HANDOFF_INTERVAL_NS
            ):
                self._hand_off(record.ts_ns)
        if self._finish_with_root and span is not None and span.span_id == self.root_run_id:
            self.finish()  # the caller holds a stream object, not an iterator of ours
        return True

    def chunk_sink(self, run_id: str) -> ChunkSink:
        """What a producer calls with each chunk of `run_id` as it happens: the
        assembler's counter for that run when nobody records its chunks (no clock read
        per chunk), else `feed` stamped now; under the session's lock either way."""
        lock = self._lock
        if self._records_chunks_of(run_id):

            def record(chunk: Any) -> None:
                self._chunk(run_id, now_ns(), chunk)

            return record
        with lock:
            count = self._assembler.counter(run_id, now_ns)

        def counted(chunk: Any) -> None:
            with lock:
                count(chunk)

        return counted

    def _completed(self, event: RunStart | RunEnd | RunCustom) -> TraceEvent | None:
        """`event` as a `TraceEvent`: a start with its ancestry and its name, tags and
        metadata scrubbed (once, a snapshot of its own); a later event with the run's as
        they were at its start; its data as recorded (redacted once: the event's record
        and the span it ends share it). None for what the trace does not take."""
        assembler = self._assembler
        redaction = self._redaction
        if isinstance(event, RunStart):
            run_id = event.run_id
            if assembler.has_seen(run_id):
                return None  # another producer reported this run first
            parent_ids: tuple[str, ...] = ()
            parent_id = event.parent_run_id
            if parent_id is not None:
                parent = assembler.identity(parent_id)
                if parent is not None:
                    parent_ids = (*parent.parent_ids, parent_id)
                elif assembler.root_run_id is None:  # the root, under a run of another tracer
                    parent_ids = (parent_id,)
                # else: a parent this trace never saw (a LangSmith @traceable function
                # between two runnables): the assembler adopts the run under the root
            tags = event.tags
            metadata = event.metadata
            return TraceEvent(
                self.trace_id,
                "start",
                f"on_{event.family}_start",
                run_id,
                parent_ids,
                redaction.name(event.name),
                event.run_type,
                redaction.tags(tags),
                redaction.metadata(metadata),
                self._recorded(event.data),
                event.ts_ns,
            )
        identity = assembler.identity(event.run_id)
        if isinstance(event, RunEnd):
            if identity is None:
                return None
            kind = event.kind
            return TraceEvent(
                self.trace_id,
                kind,
                f"on_{identity.family}_{kind}",
                identity.run_id,
                identity.parent_ids,
                identity.name,
                identity.run_type,
                identity.tags,
                identity.metadata,
                self._recorded(event.data),
                event.ts_ns,
            )
        run_id = event.run_id
        tags = event.tags
        metadata = event.metadata
        return TraceEvent(
            self.trace_id,
            "custom",
            "on_custom_event",
            run_id,
            (*identity.parent_ids, run_id) if identity is not None else (),
            redaction.name(event.name),
            "custom",
            redaction.tags(tags),
            redaction.metadata(metadata),
            self._recorded({"data": event.data}),
            event.ts_ns,
        )

    def _recorded(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """An event's data as it is recorded: all of it redacted when exporters read the
        event, else only what its span takes (content and errors)."""
        if self._keep_events:
            return self._redaction.data(data) if data else data
        return self._redaction.data(data, whole=False)

    def finish_with_root(self) -> None:
        """End the trace when its root run ends: the caller holds a stream object or an
        awaitable, not an iterator of ours that would end it."""
        self._finish_with_root = True

    def _chunk(self, run_id: str, ts_ns: int, chunk: Any) -> bool:
        """One streamed chunk: counted always, recorded for the runs the exporters want."""
        with self._lock:
            if self.finished:
                return False
            self._assembler.chunk(run_id, ts_ns, chunk)
            if not self._records_chunks_of(run_id):
                return True
            buffer = self._chunks.get(run_id)
            if buffer is None:
                buffer = self._chunks[run_id] = []
            buffer.append([ts_ns, chunk])
            if (
                len(buffer) >= HANDOFF_MAX_CHUNKS
                or ts_ns - self._last_handoff_ns > HANDOFF_INTERVAL_NS
            ):
                self._hand_off(ts_ns)
        return True

    def _records_chunks_of(self, run_id: str) -> bool:
        return self._record_all_chunks or (
            self._record_root_chunks and run_id == self._assembler.root_run_id
        )

    # -- the end ----------------------------------------------------------------------

    def finish(
        self, error: BaseException | None = None, *, cancelled: bool = False
    ) -> Trace | None:
        """Close every open span, hand off the rest, deliver the trace. Never raises."""
        try:
            return self._finish(error, cancelled)
        except Exception as exc:
            report_internal_error("trace_finish", exc)
            return None

    def _finish(self, error: BaseException | None, cancelled: bool) -> Trace | None:
        with self._lock:
            if self.finished:
                return None
            self.finished = True
            end_ns = now_ns()
            if not self._started:
                self._begin(None)
            status = self._status(error, cancelled)
            for run_id in list(self._chunks):
                self._flush_chunks(run_id, final=True)
            open_status: Status = status if status != "ok" else "incomplete"
            span_error = (
                self._redaction.error(error) if status == "error" and error is not None else None
            )
            leftovers = self._assembler.abort(
                open_status, span_error if open_status == "error" else None, end_ns
            )
            if leftovers and open_status == "incomplete":
                log.info(
                    "spans_closed_incomplete",
                    trace_id=self.trace_id,
                    span_names=[s.name for s in leftovers],
                )
            for span in leftovers:
                self._spans.append(span)
                self._append(span)
            self._append(
                TraceEnd(
                    trace_id=self.trace_id,
                    status=status,
                    end_ns=end_ns,
                    span_count=len(self._spans),
                    event_count=self._event_count,
                    error=span_error,
                )
            )
            self._hand_off(end_ns)
            if self.sets_otel_context:
                otel_context.trace_ended(self.trace_id)
            trace = Trace(
                trace_id=self.trace_id,
                name=self._name,
                status=status,
                start_ns=self.start_ns,
                end_ns=end_ns,
                spans=tuple(self._spans),
                trace_events=tuple(self._events),
                root_run_id=self._assembler.root_run_id,
            )
        for capture in self._captures:
            capture.add(trace)
        return trace

    def _status(self, error: BaseException | None, cancelled: bool) -> Status:
        """The root run's own status when it ended; otherwise how the call ended."""
        root = self._assembler.root_run_id
        for span in self._spans:
            if span.span_id == root:
                return span.status
        if cancelled or is_cancellation(error):
            return "cancelled"
        return "error" if error is not None else "ok"

    # -- records ----------------------------------------------------------------------

    def _begin(self, first: TraceEvent | None) -> None:
        """The trace's opening record, written once its root run is known."""
        self._started = True
        root_run_id = self._assembler.root_run_id
        if root_run_id is None and first is not None and first.kind == "start":
            root_run_id = first.run_id
        self._append(
            TraceStart(
                trace_id=self.trace_id,
                name=self._name,
                start_ns=self.start_ns,
                root_run_id=root_run_id or "",
                otel_parent_span_id=self._otel_parent_span_id,
                versions=_VERSIONS,
                max_attr_chars=self.options.max_attr_chars,
            )
        )

    def _append(self, record: Record) -> None:
        if isinstance(record, TraceEvent):
            self._event_count += 1
            if self._captures:
                self._events.append(record)
        if self._keep_records:
            self._pending.append(record)

    def _flush_chunks(self, run_id: str, *, final: bool = False) -> None:
        recorded, held = self._redaction.chunks(run_id, self._chunks.pop(run_id), final=final)
        if held:
            self._chunks[run_id] = held
        if not recorded:
            return
        identity = self._assembler.identity(run_id)
        self._append(
            TraceEvent(
                trace_id=self.trace_id,
                kind="stream",
                event=f"on_{identity.family}_stream" if identity else "on_stream",
                run_id=run_id,
                parent_ids=identity.parent_ids if identity else (),
                name=identity.name if identity else "",
                run_type=identity.run_type if identity else "custom",
                tags=identity.tags if identity else (),
                metadata=identity.metadata if identity else {},
                data={"chunks": recorded},
                ts_ns=recorded[0][0],
            )
        )

    def _hand_off(self, ts_ns: int) -> None:
        self._last_handoff_ns = ts_ns
        for run_id in list(self._chunks):
            self._flush_chunks(run_id)
        if not self._pending:
            return
        batch = tuple(self._pending)
        self._pending.clear()
        for processor in self._processors:
            processor.submit(batch)
