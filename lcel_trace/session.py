"""One traced call from start to finish: ids, the recorder, the assembler, the hand-offs.

A session buffers records and hands them to each exporter's queue in batches (at
trace end, and every `HANDOFF_INTERVAL_NS` or `HANDOFF_MAX_CHUNKS` recorded chunks
while a long run streams), so the
caller's path holds no I/O. `finish` closes every span that is still open and
delivers the finished `Trace` to the active `capture()` blocks.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any, Literal
from uuid import UUID

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables import RunnableConfig, ensure_config

from lcel_trace._log import log, warn_once
from lcel_trace.assemble import SpanAssembler, now_ns
from lcel_trace.capture import Capture, active_captures
from lcel_trace.export import ExportProcessor, SpanExporter, processor_for
from lcel_trace.recorder import Recorder, StreamingRecorder
from lcel_trace.records import Record
from lcel_trace.redact import Redactor
from lcel_trace.serialize import qualified_name
from lcel_trace.span import (
    RunType,
    Span,
    SpanError,
    Status,
    Trace,
    TraceEnd,
    TraceEvent,
    TraceStart,
)

HANDOFF_INTERVAL_NS = 500_000_000
HANDOFF_MAX_RECORDS = 512
HANDOFF_MAX_CHUNKS = 4096
RecordChunks = Literal["none", "root", "all"]
_CHUNK_LEVELS: Mapping[str, int] = {"none": 0, "root": 1, "all": 2}


@dataclass(frozen=True, slots=True)
class TraceSettings:
    """What `trace()` was asked for, resolved once per wrapper."""

    exporters: tuple[SpanExporter, ...]
    redactor: Redactor
    max_attr_chars: int
    sample: float
    name_run_types: Mapping[str, RunType]
    name: str | None


def _versions() -> dict[str, str]:
    versions = {}
    for dist in ("lcel-trace", "langchain-core"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


_VERSIONS = _versions()


def _otel_parent() -> tuple[str, str] | None:
    """(trace id, span id) of the OpenTelemetry span active right now, if any."""
    try:
        from opentelemetry import trace as otel_trace

        context = otel_trace.get_current_span().get_span_context()
    except Exception:
        return None
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def new_trace_id() -> str:
    return os.urandom(16).hex()


def is_sampled(trace_id: str, rate: float) -> bool:
    """Deterministic by trace id, so every process samples a given trace the same way."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return int(trace_id[:16], 16) / float(1 << 64) < rate


def find_recorder(config: RunnableConfig | None) -> Recorder | None:
    """The recorder of an enclosing traced call, when this call runs inside one."""
    callbacks = (config or {}).get("callbacks")
    handlers: Sequence[Any]
    if isinstance(callbacks, BaseCallbackManager):
        handlers = callbacks.handlers
    elif isinstance(callbacks, list):
        handlers = callbacks
    else:
        return None
    for handler in handlers:
        if isinstance(handler, Recorder):
            return handler
    return None


class TraceSession:
    """The state of one trace while its call runs."""

    def __init__(
        self,
        settings: TraceSettings,
        *,
        root_run_id: UUID,
        trace_id: str,
        otel_parent_span_id: str | None,
        root_name: str,
        streaming: bool,
    ) -> None:
        self.trace_id = trace_id
        self.root_run_id = str(root_run_id)
        self.start_ns = now_ns()
        self.finished = False
        self._settings = settings
        self._redactor = settings.redactor.for_one_trace()
        self._captures: tuple[Capture, ...] = active_captures()
        self._processors: list[ExportProcessor] = [processor_for(e) for e in settings.exporters]
        level = max(
            [_CHUNK_LEVELS.get(getattr(e, "record_chunks", "none"), 0) for e in settings.exporters]
            + [1 if self._captures else 0]
        )
        self._record_root_chunks = level >= 1
        self._record_all_chunks = level >= 2
        self._keep_records = bool(self._processors)
        self._assembler = SpanAssembler(
            trace_id,
            redactor=self._redactor,
            root_parent_id=otel_parent_span_id,
            aggregate_runs=(self.root_run_id,),
        )
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self._events: list[TraceEvent] = []
        self._event_count = 0
        self._pending: list[Record] = []
        self._chunks: dict[str, list[list[Any]]] = {}
        self._last_handoff_ns = self.start_ns
        self._name = settings.name or root_name
        self._append(
            TraceStart(
                trace_id=trace_id,
                name=self._name,
                start_ns=self.start_ns,
                root_run_id=self.root_run_id,
                otel_parent_span_id=otel_parent_span_id,
                versions=_VERSIONS,
                max_attr_chars=settings.max_attr_chars,
            )
        )
        recorder_type = StreamingRecorder if streaming else Recorder
        self.recorder = recorder_type(self, settings.name_run_types)

    # -- wiring ---------------------------------------------------------------------

    def attach(self, config: RunnableConfig | None) -> RunnableConfig:
        """`config` with this session's recorder added and the root run id fixed."""
        config = ensure_config(config)
        config["run_id"] = UUID(self.root_run_id)
        callbacks = config.get("callbacks")
        if callbacks is None:
            config["callbacks"] = [self.recorder]
        elif isinstance(callbacks, list):
            config["callbacks"] = [*callbacks, self.recorder]
        else:
            manager = callbacks.copy()
            manager.add_handler(self.recorder, inherit=True)
            config["callbacks"] = manager
        return config

    # -- called by the recorder -------------------------------------------------------

    def on_event(self, event: TraceEvent) -> None:
        if self.finished:
            return
        with self._lock:
            if self.finished:
                return
            if event.kind in ("end", "error") and event.run_id in self._chunks:
                self._flush_chunks(event.run_id)
            if self._keep_records or self._captures:
                self._append(self._redacted(event))
            else:  # nobody reads the event itself: count it, skip building its record
                self._event_count += 1
            span = self._assembler.feed(event)
            if span is not None:
                self._spans.append(span)
                self._append(span)
            if (
                len(self._pending) >= HANDOFF_MAX_RECORDS
                or event.ts_ns - self._last_handoff_ns > HANDOFF_INTERVAL_NS
            ):
                self._hand_off(event.ts_ns)

    def on_chunk(self, run_id: str, ts_ns: int, chunk: Any) -> None:
        """One streamed chunk: counted always, recorded for the runs the exporters want."""
        self._assembler.chunk(run_id, ts_ns, chunk)
        if self._record_all_chunks or (self._record_root_chunks and run_id == self.root_run_id):
            with self._lock:
                if self.finished:
                    return
                buffer = self._chunks.get(run_id)
                if buffer is None:
                    buffer = self._chunks[run_id] = []
                buffer.append([ts_ns, chunk])
                if (
                    len(buffer) >= HANDOFF_MAX_CHUNKS
                    or ts_ns - self._last_handoff_ns > HANDOFF_INTERVAL_NS
                ):
                    self._hand_off(ts_ns)

    def chunk_sink(self, run_id: str) -> Callable[[str, int, Any], None]:
        """What a tap on `run_id` should call per chunk: the assembler's counter directly
        when no exporter records this run's chunks (one call less per chunk)."""
        if self._record_all_chunks or (self._record_root_chunks and run_id == self.root_run_id):
            return self.on_chunk
        return self._assembler.chunk

    def observe_chunk(self, run_id: str, chunk: Any) -> None:
        """A chunk seen in an event stream the session did not tap itself."""
        self.on_chunk(run_id, now_ns(), chunk)

    # -- the end ----------------------------------------------------------------------

    def finish(
        self, error: BaseException | None = None, *, cancelled: bool = False
    ) -> Trace | None:
        """Close every open span, hand off the rest, deliver the trace. Never raises."""
        try:
            return self._finish(error, cancelled)
        except Exception as exc:
            warn_once("trace_finish_failed", error=repr(exc))
            return None

    def _finish(self, error: BaseException | None, cancelled: bool) -> Trace | None:
        with self._lock:
            if self.finished:
                return None
            self.finished = True
            end_ns = now_ns()
            status = self._status(error, cancelled)
            for run_id in list(self._chunks):
                self._flush_chunks(run_id)
            open_status: Status = status if status != "ok" else "incomplete"
            leftovers = self._assembler.abort(
                open_status, error if open_status == "error" else None, end_ns
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
            span_error = (
                SpanError(qualified_name(type(error)), self._redactor.text(str(error)))
                if status == "error" and error is not None
                else None
            )
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
            trace = Trace(
                trace_id=self.trace_id,
                name=self._name,
                status=status,
                start_ns=self.start_ns,
                end_ns=end_ns,
                spans=tuple(self._spans),
                events=tuple(self._events),
                root_run_id=self.root_run_id,
            )
        for capture in self._captures:
            capture.add(trace)
        return trace

    def _status(self, error: BaseException | None, cancelled: bool) -> Status:
        """The root run's own status when it ended; otherwise how the call ended."""
        for span in self._spans:
            if span.span_id == self.root_run_id:
                return span.status
        if cancelled or _is_cancellation(error):
            return "cancelled"
        return "error" if error is not None else "ok"

    # -- records ----------------------------------------------------------------------

    def _append(self, record: Record) -> None:
        if isinstance(record, TraceEvent):
            self._event_count += 1
            if self._captures:
                self._events.append(record)
        if self._keep_records:
            self._pending.append(record)

    def _flush_chunks(self, run_id: str) -> None:
        chunks = self._chunks.pop(run_id)
        if not chunks:
            return
        content = self._redactor.chunk
        stream = TraceEvent(
            trace_id=self.trace_id,
            kind="stream",
            event="on_stream",
            run_id=run_id,
            parent_ids=(),
            name="",
            run_type="custom",
            tags=(),
            metadata={},
            data={"chunks": [[ts, content(chunk)] for ts, chunk in chunks]},
            ts_ns=chunks[0][0],
        )
        self._append(self._stream_event_for(run_id, stream))

    def _stream_event_for(self, run_id: str, stream: TraceEvent) -> TraceEvent:
        """Give a coalesced stream record the identity of the run it belongs to."""
        info = self.recorder.run_info(run_id)
        if info is None:
            return stream
        return dataclasses.replace(
            stream,
            event=f"on_{info.family}_stream",
            parent_ids=info.parent_ids,
            name=info.name,
            run_type=info.run_type,
            tags=info.tags,
            metadata=info.metadata,
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

    def _redacted(self, event: TraceEvent) -> TraceEvent:
        data = event.data
        if not data:
            return event
        redactor = self._redactor
        cleaned: dict[str, Any] = {}
        for key, value in data.items():
            if key == "error":
                if isinstance(value, BaseException):
                    cleaned[key] = {
                        "error_type": qualified_name(type(value)),
                        "message": redactor.text(str(value)),
                    }
                else:
                    cleaned[key] = value
            elif key in ("input", "output", "data", "chunk"):
                cleaned[key] = redactor.content(value)
            else:
                cleaned[key] = value
        return dataclasses.replace(event, data=cleaned)


def _is_cancellation(error: BaseException | None) -> bool:
    import asyncio

    return isinstance(error, (asyncio.CancelledError, GeneratorExit))
