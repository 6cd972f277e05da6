"""The exporter seam: the `SpanExporter` protocol and the processor that runs it off-path.

Exporters only ever receive frozen records, on a background thread of their own,
through a bounded queue. The caller's only cost is one non-blocking hand-off per
batch; when the queue is full, stream chunks go first, then events and spans, and every
loss is counted and logged once. Trace boundaries (`TraceStart`, `TraceEnd`) are always
delivered, so an exporter never keeps state for a trace whose end it did not see. A
failing exporter is caught here, at one point, and never reaches the caller.

Processors belong to their exporter: a registry keyed weakly finds the one for an
exporter object, and forgets it when the exporter is shut down or no traced runnable
holds it any more. A worker thread exits when idle and restarts on demand; after
`os.fork()` the child starts with empty queues of its own.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, Self, runtime_checkable

from lcel_trace._log import log, report_internal_error, warn_once
from lcel_trace.span import Record, Span, TraceEnd, TraceEvent, TraceStart

__all__ = [
    "COALESCE_MAX_RECORDS",
    "DEFAULT_MAX_QUEUE",
    "BaseExporter",
    "ExportProcessor",
    "ExporterCapabilities",
    "ExporterHooks",
    "ExporterStats",
    "RecordChunks",
    "SpanExporter",
    "exporter_stats",
    "flush_all",
    "processor_for",
    "warn_once",
]

DEFAULT_MAX_QUEUE = 100_000
"""Records (and recorded chunks) an exporter may have waiting before batches are dropped."""
EXIT_FLUSH_TIMEOUT_S = 5.0
"""How long interpreter exit waits, in total, for every exporter to drain and flush."""
COALESCE_MAX_RECORDS = 2048
"""Queued hand-offs an `on_batch` exporter takes in one call, up to this weight."""
WORKER_IDLE_S = 2.0
"""A worker thread with nothing to do for this long exits (and its exporter is told)."""
GATHER_S = 0.1
"""Once woken by a hand-off, a worker gathers the hand-offs that follow for this long
before delivering them together (sooner when `GATHER_MAX_RECORDS` are waiting, or a
flush or shutdown asks): waking a thread per trace costs a busy async caller more CPU
than exporting (measured: traced `ainvoke`, +170 µs per call on 2 cores)."""
GATHER_MAX_RECORDS = 1024
"""Queued records that end a gathering wait early."""

RecordChunks = Literal["none", "root", "all"]
_CHUNK_LEVELS = {"none": 0, "root": 1, "all": 2}


@runtime_checkable
class SpanExporter(Protocol):
    """Receives finished spans on a background thread of its own.

    Every method is called on the exporter's worker thread, never on the caller's,
    except `force_flush` and `shutdown`, which run where they are called. A method
    may block (file or network I/O); while it does, new batches wait in the queue and
    are dropped (counted) once it is full. Exceptions are caught, counted and logged.
    The optional members are listed in `ExporterHooks`.
    """

    def export(self, spans: Sequence[Span]) -> None:
        """Finished spans, in the order they ended."""

    def force_flush(self, timeout_s: float | None = None) -> bool:
        """Write everything handed over so far; False if `timeout_s` ran out first."""

    def shutdown(self) -> None:
        """Flush and release resources; idempotent."""


class ExporterHooks(Protocol):
    """Optional members of an exporter, read once when it is first attached.

    - `on_batch(records)`: takes each hand-off whole, in order (trace starts, events,
      spans, trace ends as they happened); hand-offs that queued up while the exporter
      was busy, or came within `GATHER_S` of the one that woke it, come together in one
      call (at most `COALESCE_MAX_RECORDS` records, or one larger hand-off). When
      present, the per-type hooks and `export` are not called.
    - `on_trace_start(start)`, `on_event(event)`, `on_trace_end(end)`: one record each.
    - `on_idle()`: the worker thread is about to sleep for lack of work (close files).
    - `record_chunks`: whose stream chunks to hand over ("none", "root", "all").
    - `record_events`: False when the exporter ignores start, end, error and custom
      event records (`on_event` only for stream chunks): traces that export only to
      such exporters skip building them.
    - `max_queue`: how many records may wait before batches are dropped.
    All hooks run on the exporter's worker thread.
    """

    record_chunks: RecordChunks
    record_events: bool
    max_queue: int

    def on_batch(self, records: Sequence[Record]) -> None: ...

    def on_trace_start(self, start: TraceStart) -> None: ...

    def on_event(self, event: TraceEvent) -> None: ...

    def on_trace_end(self, end: TraceEnd) -> None: ...

    def on_idle(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ExporterCapabilities:
    """What an exporter implements beyond `SpanExporter`, read once."""

    on_batch: bool
    on_trace_start: bool
    on_event: bool
    on_trace_end: bool
    on_idle: bool
    chunk_level: int
    max_queue: int
    events: bool = True

    @classmethod
    def of(cls, exporter: SpanExporter) -> ExporterCapabilities:
        record_chunks = getattr(exporter, "record_chunks", "none")
        max_queue = getattr(exporter, "max_queue", DEFAULT_MAX_QUEUE)
        return cls(
            on_batch=callable(getattr(exporter, "on_batch", None)),
            on_trace_start=callable(getattr(exporter, "on_trace_start", None)),
            on_event=callable(getattr(exporter, "on_event", None)),
            on_trace_end=callable(getattr(exporter, "on_trace_end", None)),
            on_idle=callable(getattr(exporter, "on_idle", None)),
            chunk_level=_CHUNK_LEVELS.get(str(record_chunks), 0),
            max_queue=max_queue if isinstance(max_queue, int) and max_queue > 0 else 0,
            events=bool(getattr(exporter, "record_events", True))
            and callable(
                getattr(exporter, "on_batch", None) or getattr(exporter, "on_event", None)
            ),
        )


def batch_weight(batch: Sequence[Record]) -> int:
    """What a batch costs in the queue: one per record, plus one per recorded chunk,
    so a long stream cannot hide behind a few coalesced records."""
    weight = len(batch)
    for record in batch:
        if isinstance(record, TraceEvent) and record.kind == "stream":
            weight += len(record.data.get("chunks", ()))
    return weight


class ExportProcessor:
    """One exporter's bounded queue and worker thread; never raises into its caller."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self.capabilities = ExporterCapabilities.of(exporter)
        self.max_queue = self.capabilities.max_queue or DEFAULT_MAX_QUEUE
        self.dropped_records = 0
        self.dropped_chunks = 0
        self.failed_calls = 0
        self._name = type(exporter).__name__
        self._closed = False
        self._reset()

    def _reset(self) -> None:
        """Fresh queue, lock and no worker: at creation, and in a forked child."""
        self._queue: deque[tuple[Sequence[Record], int]] = deque()
        self._queued_records = 0
        self._in_flight = 0
        self._gathering = False  # the worker waits for more hand-offs; no need to wake it
        self._hurry = 0  # drains waiting: deliver now
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def queued(self) -> int:
        with self._cond:
            return self._queued_records

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, batch: Sequence[Record]) -> bool:
        """Queue a batch without blocking; False (and counted) when anything was dropped.

        When the queue cannot take the whole batch, its stream chunks go first, then
        events and spans; trace starts and ends always get through.
        """
        if not batch:
            return True
        with self._cond:
            if self._closed:
                self.dropped_records += len(batch)
                dropped = True
            else:
                dropped = self._enqueue(batch)
            counts = (self.dropped_records, self.dropped_chunks)
        if dropped:
            kind = "export_after_shutdown" if self._closed else "export_queue_full"
            warn_once(kind, source=self._name, dropped_records=counts[0], dropped_chunks=counts[1])
        return not dropped

    def _enqueue(self, batch: Sequence[Record]) -> bool:
        # A tenth of the queue is kept for trace starts and ends, so an exporter sees
        # the end of every trace it saw begin unless it stays stuck for that long too.
        room = self.max_queue - self.max_queue // 10 - self._queued_records
        weight = batch_weight(batch)
        dropped = False
        if weight > room:
            dropped = True
            kept = [r for r in batch if not (isinstance(r, TraceEvent) and r.kind == "stream")]
            self.dropped_chunks += weight - batch_weight(kept) - (len(batch) - len(kept))
            self.dropped_records += len(batch) - len(kept)
            batch, weight = kept, batch_weight(kept)
            if weight > room:
                bounds = [r for r in batch if isinstance(r, (TraceStart, TraceEnd))]
                if len(bounds) > self.max_queue - self._queued_records:
                    bounds = []
                self.dropped_records += len(batch) - len(bounds)
                batch, weight = bounds, len(bounds)
        if batch:
            self._queue.append((batch, weight))
            self._queued_records += weight
            if self._thread is None:
                self._start_worker()
            elif not self._gathering or self._queued_records >= GATHER_MAX_RECORDS:
                self._cond.notify()
        return dropped

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued so far was handed to the exporter."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            self._hurry += 1
            self._cond.notify_all()
            try:
                while self._queue or self._in_flight:
                    if self._thread is None:
                        self._start_worker()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            finally:
                self._hurry -= 1
        return True

    def close(self, timeout_s: float | None = None) -> bool:
        """Drain, then refuse further batches and forget this processor; idempotent."""
        drained = self.drain(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        _forget(self)
        return drained

    def _start_worker(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"lcel-trace-export-{self._name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait(WORKER_IDLE_S)
                    if self._queue:  # woken by a hand-off: let its followers join it
                        self._gather()
                batch: Sequence[Record] | None = None
                if self._queue:
                    batch, weight = self._take()
                    self._queued_records -= weight
                    self._in_flight += 1
            if batch is not None:
                try:
                    self._deliver(batch)
                finally:
                    with self._cond:
                        self._in_flight -= 1
                        self._cond.notify_all()
                continue
            # Idle or closed. Still the registered worker while the exporter closes its
            # files, so a batch arriving now waits for this thread, not a second one.
            if self.capabilities.on_idle:
                self._call("on_idle", None)
            with self._cond:
                if self._queue and not self._closed:
                    continue
                self._thread = None  # a later submit starts a new worker
                self._cond.notify_all()
                return

    def _gather(self) -> None:
        """Wait (holding the condition's lock) for more hand-offs to deliver together."""
        deadline = time.monotonic() + GATHER_S
        self._gathering = True
        try:
            while (
                not self._hurry
                and not self._closed
                and self._queued_records < GATHER_MAX_RECORDS
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._cond.wait(remaining)
        finally:
            self._gathering = False

    def _take(self) -> tuple[Sequence[Record], int]:
        """The next hand-off; for an `on_batch` exporter, with the ones queued behind it
        (up to `COALESCE_MAX_RECORDS`), so a busy exporter catches up in fewer calls."""
        batch, weight = self._queue.popleft()
        queue = self._queue
        if not queue or not self.capabilities.on_batch:
            return batch, weight
        merged = list(batch)
        while queue and weight + queue[0][1] <= COALESCE_MAX_RECORDS:
            more, more_weight = queue.popleft()
            merged.extend(more)
            weight += more_weight
        return merged, weight

    def _deliver(self, batch: Sequence[Record]) -> None:
        caps = self.capabilities
        if caps.on_batch:
            self._call("on_batch", batch)
            return
        spans: list[Span] = []
        for record in batch:
            if isinstance(record, Span):
                spans.append(record)
                continue
            method = _HOOKS[type(record)]
            if not getattr(caps, method):
                continue
            if spans:
                self._call("export", spans)
                spans = []
            self._call(method, record)
        if spans:
            self._call("export", spans)

    def _call(self, method: str, argument: object) -> None:
        try:
            if argument is None:
                getattr(self.exporter, method)()
            else:
                getattr(self.exporter, method)(argument)
        except Exception as exc:
            self.failed_calls += 1
            warn_once("exporter_failed", source=self._name, method=method, error=repr(exc))


_HOOKS: dict[type, str] = {
    TraceStart: "on_trace_start",
    TraceEvent: "on_event",
    TraceEnd: "on_trace_end",
}
_registry: weakref.WeakValueDictionary[int, ExportProcessor] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def processor_for(exporter: SpanExporter) -> ExportProcessor:
    """The processor that owns `exporter`'s queue (one per live exporter object).

    The processor holds its exporter, so the id key stays unique while it is alive;
    the registry holds processors weakly, so neither outlives its users.
    """
    if isinstance(exporter, BaseExporter):
        return exporter.processor
    return _registered(exporter)


def _registered(exporter: SpanExporter) -> ExportProcessor:
    key = id(exporter)
    with _registry_lock:
        processor = _registry.get(key)
        if processor is None or processor.exporter is not exporter or processor.closed:
            processor = ExportProcessor(exporter)
            _registry[key] = processor
        return processor


def _forget(processor: ExportProcessor) -> None:
    with _registry_lock:
        key = id(processor.exporter)
        if _registry.get(key) is processor:
            del _registry[key]


def _live_processors() -> list[ExportProcessor]:
    with _registry_lock:
        return [p for p in _registry.values() if not p.closed]


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
    return ExporterStats(
        queued=processor.queued,
        dropped_records=processor.dropped_records,
        dropped_chunks=processor.dropped_chunks,
        failed_calls=processor.failed_calls,
    )


def flush_all(timeout_s: float | None = EXIT_FLUSH_TIMEOUT_S) -> bool:
    """Drain every exporter's queue and flush it; True when all of it was written.

    Bounded by `timeout_s` in total, even when an exporter's `force_flush` blocks.
    """
    drained, flushed = _flush_everything(timeout_s)
    return drained and flushed


def _flush_everything(timeout_s: float | None) -> tuple[bool, bool]:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def remaining() -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    drained = flushed = True
    for processor in _live_processors():
        drained = processor.drain(remaining()) and drained
        flushed = _bounded_flush(processor, remaining()) and flushed
    return drained, flushed


def _bounded_flush(processor: ExportProcessor, timeout_s: float | None) -> bool:
    """`force_flush` on a helper thread, waited for at most `timeout_s`."""
    outcome: list[bool] = []

    def flush() -> None:
        try:
            outcome.append(bool(processor.exporter.force_flush(timeout_s)))
        except Exception as exc:
            warn_once(
                "exporter_failed", source=processor._name, method="force_flush", error=repr(exc)
            )
            outcome.append(False)

    if timeout_s is None:
        flush()
    else:
        helper = threading.Thread(target=flush, name="lcel-trace-flush", daemon=True)
        helper.start()
        helper.join(timeout_s)
    return bool(outcome and outcome[0])


def _flush_at_exit() -> None:
    # Only what is still in lcel-trace's own queues counts as lost here; a backend
    # the application already shut down may refuse a flush that has nothing left.
    try:
        drained, _ = _flush_everything(EXIT_FLUSH_TIMEOUT_S)
    except Exception as exc:
        report_internal_error("exit_flush", exc)
        return
    if not drained:
        log.warning("exit_flush_incomplete", timeout_s=EXIT_FLUSH_TIMEOUT_S)


def _reset_after_fork() -> None:
    """In a forked child: the parent's queues and threads are the parent's to finish."""
    global _registry_lock
    _registry_lock = threading.Lock()
    for processor in list(_registry.values()):
        processor._reset()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class BaseExporter:
    """Lifecycle shared by the bundled exporters: queue-aware flush, idempotent shutdown,
    context manager. Subclasses implement the hooks plus `_flush()` and `_close()`."""

    max_queue: int = DEFAULT_MAX_QUEUE
    shutdown_timeout_s: float = 5.0

    def __init__(self) -> None:
        self._shut_down = False
        self._processor: ExportProcessor | None = None

    @property
    def processor(self) -> ExportProcessor:
        """This exporter's queue and worker (owned here, so it lives as long as we do)."""
        if self._processor is None:
            self._processor = _registered(self)
        return self._processor

    def export(self, spans: Sequence[Span]) -> None:
        """Write finished spans (called on this exporter's background thread)."""

    def force_flush(self, timeout_s: float | None = None) -> bool:
        """Write everything queued for this exporter; False if `timeout_s` ran out first."""
        drained = self.processor.drain(timeout_s)
        return self._flush() and drained

    def shutdown(self) -> None:
        """Flush and release resources; later batches are refused. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        self.processor.close(self.shutdown_timeout_s)
        self._close()

    @property
    def dropped_records(self) -> int:
        """Records dropped because the queue was full or the exporter was shut down."""
        return self.processor.dropped_records

    def _flush(self) -> bool:
        return True

    def _close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
