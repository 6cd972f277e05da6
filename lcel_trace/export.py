"""The exporter seam: the `SpanExporter` protocol and the processor that runs it off-path.

Exporters only ever receive frozen records, on a background thread of their own,
through a bounded queue. The caller's only cost is one non-blocking hand-off per
batch; when the queue is full the batch is dropped, counted and logged once. A
failing exporter is caught here, at one point, and never reaches the caller.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

from lcel_trace._log import log, warn_once
from lcel_trace.records import Record
from lcel_trace.span import Span, TraceEnd, TraceEvent, TraceStart

DEFAULT_MAX_QUEUE = 100_000
"""Records (and recorded chunks) an exporter may have waiting before batches are dropped."""


@runtime_checkable
class SpanExporter(Protocol):
    """Receives finished spans on a background thread of its own.

    It may also define `on_trace_start(start)`, `on_event(event)` and `on_trace_end(end)`
    to see the whole record stream, or `on_batch(records)` to take each hand-off whole
    (in order: trace starts, events, spans, trace ends, as they happened).
    """

    def export(self, spans: Sequence[Span]) -> None: ...

    def force_flush(self, timeout_s: float | None = None) -> bool: ...

    def shutdown(self) -> None: ...


def batch_weight(batch: Sequence[Record]) -> int:
    """What a batch costs in the queue: one per record, plus one per recorded chunk,
    so a long stream cannot hide behind a few coalesced records."""
    weight = len(batch)
    for record in batch:
        if isinstance(record, TraceEvent) and record.kind == "stream":
            weight += len(record.data.get("chunks", ()))
    return weight


def _is_stream(record: Record) -> bool:
    return isinstance(record, TraceEvent) and record.kind == "stream"


class ExportProcessor:
    """One exporter's bounded queue and worker thread; never raises into its caller."""

    def __init__(self, exporter: SpanExporter, *, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.exporter = exporter
        self.max_queue = max_queue
        self.dropped_records = 0
        self.dropped_chunks = 0
        self.failed_calls = 0
        self._queue: deque[tuple[Sequence[Record], int]] = deque()
        self._queued_records = 0
        self._in_flight = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._name = type(exporter).__name__

    def submit(self, batch: Sequence[Record]) -> bool:
        """Queue a batch without blocking; False (and counted) when anything was dropped.

        When the queue cannot take the whole batch, its recorded chunks go first: the
        structure of a trace (starts, ends, spans) is worth more than its stream.
        """
        if not batch:
            return True
        with self._cond:
            if self._closed:
                self.dropped_records += len(batch)
                warn_once("export_after_shutdown", source=self._name, dropped=len(batch))
                return False
            room = self.max_queue - self._queued_records
            weight = batch_weight(batch)
            dropped_chunks = 0
            if weight > room:
                kept = [r for r in batch if not _is_stream(r)]
                dropped_chunks = weight - batch_weight(kept) - (len(batch) - len(kept))
                self.dropped_records += len(batch) - len(kept)
                self.dropped_chunks += dropped_chunks
                batch, weight = kept, batch_weight(kept)
            if weight > room:
                self.dropped_records += len(batch)
                batch, weight = [], 0
            if batch:
                self._queue.append((batch, weight))
                self._queued_records += weight
                if self._thread is None:
                    self._start_worker()
                self._cond.notify()
            dropped, lost_chunks = self.dropped_records, self.dropped_chunks
        if weight == 0 or dropped_chunks:
            warn_once(
                "export_queue_full",
                source=self._name,
                dropped_records=dropped,
                dropped_chunks=lost_chunks,
            )
            return False
        return True

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued so far was handed to the exporter."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._in_flight:
                if self._thread is None or not self._thread.is_alive():
                    return not self._queue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout_s: float | None = None) -> bool:
        """Drain, then refuse further batches; idempotent."""
        drained = self.drain(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        return drained

    def _start_worker(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"lcel-trace-export-{self._name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, weight = self._queue.popleft()
                self._queued_records -= weight
                self._in_flight += 1
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _deliver(self, batch: Sequence[Record]) -> None:
        if hasattr(self.exporter, "on_batch"):
            self._call("on_batch", batch)
            return
        spans: list[Span] = []
        for record in batch:
            if isinstance(record, Span):
                spans.append(record)
                continue
            method = _HOOKS[type(record)]
            if not hasattr(self.exporter, method):
                continue
            if spans:
                self._call("export", spans)
                spans = []
            self._call(method, record)
        if spans:
            self._call("export", spans)

    def _call(self, method: str, argument: object) -> None:
        try:
            getattr(self.exporter, method)(argument)
        except Exception as exc:
            self.failed_calls += 1
            warn_once("exporter_failed", source=self._name, method=method, error=repr(exc))


_HOOKS: dict[type, str] = {
    TraceStart: "on_trace_start",
    TraceEvent: "on_event",
    TraceEnd: "on_trace_end",
}
_processors: dict[int, ExportProcessor] = {}
_registry_lock = threading.Lock()


def processor_for(exporter: SpanExporter) -> ExportProcessor:
    """The processor that owns `exporter`'s queue (one per exporter object)."""
    # The processor holds the exporter, so an id stays unique while it is registered;
    # exporters live as long as the process, which lets the exit hook flush them all.
    key = id(exporter)
    with _registry_lock:
        processor = _processors.get(key)
        if processor is None:
            max_queue = getattr(exporter, "max_queue", DEFAULT_MAX_QUEUE)
            processor = _processors[key] = ExportProcessor(exporter, max_queue=max_queue)
        return processor


@dataclass(frozen=True, slots=True)
class ExporterStats:
    """What an exporter's queue has seen: the public counters of what was lost."""

    queued: int
    dropped_records: int
    dropped_chunks: int
    failed_calls: int


def exporter_stats(exporter: SpanExporter) -> ExporterStats:
    """Counters for any exporter passed to `trace()` (bundled or your own)."""
    processor = processor_for(exporter)
    with processor._cond:
        return ExporterStats(
            queued=processor._queued_records,
            dropped_records=processor.dropped_records,
            dropped_chunks=processor.dropped_chunks,
            failed_calls=processor.failed_calls,
        )


def flush_all(timeout_s: float | None = 5.0) -> bool:
    """Drain every exporter's queue and flush it; True when all of it was written."""
    drained, flushed = _flush_everything(timeout_s)
    return drained and flushed


def _flush_everything(timeout_s: float | None) -> tuple[bool, bool]:
    with _registry_lock:
        processors = [p for p in _processors.values() if not p.closed]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    drained = flushed = True
    for processor in processors:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        drained = processor.drain(remaining) and drained
        try:
            flushed = bool(processor.exporter.force_flush(remaining)) and flushed
        except Exception as exc:
            warn_once(
                "exporter_failed",
                source=type(processor.exporter).__name__,
                method="force_flush",
                error=repr(exc),
            )
            flushed = False
    return drained, flushed


def _flush_at_exit() -> None:
    # Only what is still in lcel-trace's own queues counts as lost here; a backend
    # the application already shut down may refuse a flush that has nothing left.
    drained, _ = _flush_everything(timeout_s=5.0)
    if not drained:
        log.warning("exit_flush_incomplete", timeout_s=5.0)


atexit.register(_flush_at_exit)


class BaseExporter:
    """Lifecycle shared by the bundled exporters: queue-aware flush, idempotent shutdown,
    context manager. Subclasses implement the hooks plus `_flush()` and `_close()`."""

    max_queue: int = DEFAULT_MAX_QUEUE
    shutdown_timeout_s: float = 5.0

    def __init__(self) -> None:
        self._shut_down = False

    def export(self, spans: Sequence[Span]) -> None:
        """Write finished spans (called on this exporter's background thread)."""

    def force_flush(self, timeout_s: float | None = None) -> bool:
        """Write everything queued for this exporter; False if `timeout_s` ran out first."""
        drained = processor_for(self).drain(timeout_s)
        return self._flush() and drained

    def shutdown(self) -> None:
        """Flush and release resources; later batches are refused. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        processor_for(self).close(self.shutdown_timeout_s)
        self._close()

    @property
    def dropped_records(self) -> int:
        """Records dropped because the queue was full or the exporter was shut down."""
        return processor_for(self).dropped_records

    def _flush(self) -> bool:
        return True

    def _close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
