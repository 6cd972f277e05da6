"""The exporter seam: the one contract an exporter meets, and the processor that runs it.

**The contract** (`TraceExporter`): `export(spans)`, `force_flush(timeout_s=None) -> bool`
and `shutdown()`, plus what the exporter declares in a frozen `ExporterCapabilities`
as its `capabilities` attribute (read once, when the exporter is handed to `trace()`,
`instrument()`, `trace_events()` or `reexport()`; an object that declares nothing is
read as `"records"` if it has any of `on_trace_start`, `on_event`, `on_trace_end` (with
`events` if it has `on_event`), else as `"spans"`). What an exporter receives, with
`capabilities.receives`:

- `"spans"`: `export(spans)`, the finished spans of one hand-off, in the order they ended.
- `"records"`: every record in order, one call per record (spans grouped):
  `on_trace_start(start)`, `on_event(event)`, `export(spans)`, `on_trace_end(end)`;
  and `on_idle()` when its worker is about to sleep. `BaseExporter` implements them all.
- `"batches"`: `on_batch(records)`, whole hand-offs in order, those that queued up
  meanwhile (or came within `GATHER_S`) together, up to `COALESCE_MAX_RECORDS`;
  and `on_idle()`.

**When and where**: every call above runs on the exporter's own worker thread, never the
caller's, after the records were handed over through a bounded queue (at each trace end,
and every half second while a long run streams). `force_flush` and `shutdown` run where
they are called. The caller's only cost is one non-blocking hand-off per batch; when the
queue is full, stream chunks go first, then events and spans, and every loss is counted
and logged once; trace starts and ends are always delivered, so an exporter never keeps
state for a trace whose end it did not see. A failing exporter is caught here, at one
point, and never reaches the caller.

**Units**: every timeout here is in seconds (`timeout_s`); `force_flush` returns True when
everything handed over so far was written, False when `timeout_s` ran out first.

Processors belong to their exporter: a registry keyed weakly finds the one for an
exporter object, and forgets it when the exporter is shut down or no traced runnable
holds it any more. A worker thread exits when idle and restarts on demand; after
`os.fork()` the child starts with empty queues of its own.
"""

from __future__ import annotations

import atexit
import inspect
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self, runtime_checkable

from lcel_trace._log import log, report_internal_error, warn_once
from lcel_trace.span import Record, Span, TraceEnd, TraceEvent, TraceStart

__all__ = [
    "COALESCE_MAX_RECORDS",
    "DEFAULT_MAX_QUEUE",
    "BaseExporter",
    "ExportProcessor",
    "ExporterCapabilities",
    "ExporterStats",
    "Receives",
    "RecordChunks",
    "SpanExporter",
    "TraceExporter",
    "capabilities_of",
    "exporter_stats",
    "flush_all",
    "processor_for",
    "stand_in",
    "stand_in_for",
    "warn_once",
]

DEFAULT_MAX_QUEUE = 100_000
"""Records (and recorded chunks) an exporter may have waiting before batches are dropped."""
EXIT_FLUSH_TIMEOUT_S = 5.0
"""How long interpreter exit waits, in total, for every exporter to drain and flush."""
COALESCE_MAX_RECORDS = 2048
"""Queued hand-offs a `receives="batches"` exporter takes in one call, up to this weight."""
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
Receives = Literal["spans", "records", "batches"]
_CHUNK_LEVELS = {"none": 0, "root": 1, "all": 2}
_HOOKS_NEEDED: dict[str, tuple[str, ...]] = {
    "spans": (),
    "records": ("on_trace_start", "on_event", "on_trace_end", "on_idle"),
    "batches": ("on_batch", "on_idle"),
}
_PER_RECORD_HOOKS = ("on_trace_start", "on_event", "on_trace_end")
_UNDECLARED = ("on_batch", "on_idle", "record_chunks", "record_events", "max_queue")


@runtime_checkable
class TraceExporter(Protocol):
    """What `trace(..., exporters=[...])` takes: receives lcel-trace's finished spans
    (and, as declared in `capabilities`, the other records) on a worker thread of its
    own. Not OpenTelemetry's `SpanExporter`: one of those is wrapped in `OtelExporter`
    when handed in (see the module docstring for the whole contract)."""

    def export(self, spans: Sequence[Span]) -> None:
        """Finished spans, in the order they ended (on the exporter's worker thread)."""

    def force_flush(self, timeout_s: float | None = None) -> bool:
        """Write everything handed over so far; False if `timeout_s` seconds ran out first."""

    def shutdown(self) -> None:
        """Flush and release resources; idempotent."""


SpanExporter = TraceExporter
"""Deprecated name of `TraceExporter` (it read as OpenTelemetry's class of that name)."""


@dataclass(frozen=True, slots=True)
class ExporterCapabilities:
    """What an exporter asks of the pipeline, declared once as its `capabilities`.

    `receives` picks the calls it gets (module docstring); `events` asks for start,
    end, error and custom event records (traces whose exporters all leave it False skip
    building them); `chunks` says whose stream chunks to record for it ("none", the
    root run's, or "all"), as coalesced `kind="stream"` events; `max_queue` is how many
    records (and recorded chunks) may wait before batches are dropped.
    """

    receives: Receives = "spans"
    events: bool = False
    chunks: RecordChunks = "none"
    max_queue: int = DEFAULT_MAX_QUEUE

    def __post_init__(self) -> None:
        if self.receives not in _HOOKS_NEEDED:
            raise ValueError(
                f"receives must be 'spans', 'records' or 'batches', got {self.receives!r}"
            )
        if self.chunks not in _CHUNK_LEVELS:
            raise ValueError(f"chunks must be 'none', 'root' or 'all', got {self.chunks!r}")
        if not isinstance(self.max_queue, int) or self.max_queue < 1:
            raise ValueError(f"max_queue must be a positive integer, got {self.max_queue!r}")

    @property
    def chunk_level(self) -> int:
        """`chunks` as a number: 0 none, 1 the root's, 2 all."""
        return _CHUNK_LEVELS[self.chunks]


_SPANS_ONLY = ExporterCapabilities()
_RECORDS = ExporterCapabilities(receives="records")
_RECORDS_AND_EVENTS = ExporterCapabilities(receives="records", events=True)


def capabilities_of(exporter: object) -> ExporterCapabilities:
    """Check an object handed in as an exporter and read what it declares, once.

    `TypeError` says what is wrong and what to pass instead; nothing is called."""
    name = type(exporter).__name__
    missing = [
        m for m in ("export", "force_flush", "shutdown") if not callable(getattr(exporter, m, None))
    ]
    if missing:
        raise TypeError(
            f"{name} is not a trace exporter: it lacks {', '.join(missing)}.{_hint(exporter)}"
        )
    if _takes_millis(exporter):
        raise TypeError(
            f"{name} looks like an OpenTelemetry SpanExporter (force_flush(timeout_millis)), "
            "not an lcel-trace exporter: pass an OpenTelemetry SDK SpanExporter subclass "
            "(wrapped for you), or OtelExporter(provider) with the exporter in the "
            "provider's BatchSpanProcessor."
        )
    declared = getattr(exporter, "capabilities", None)
    if declared is None:
        legacy = [m for m in _UNDECLARED if hasattr(exporter, m)]
        if legacy:
            raise TypeError(
                f"{name} has {', '.join(legacy)} but declares no capabilities: set "
                "`capabilities = ExporterCapabilities(receives='records', ...)` "
                "(lcel_trace.export), or subclass lcel_trace.exporters.BaseExporter."
            )
        hooks = [m for m in _PER_RECORD_HOOKS if callable(getattr(exporter, m, None))]
        if not hooks:
            return _SPANS_ONLY
        return _RECORDS_AND_EVENTS if "on_event" in hooks else _RECORDS
    if not isinstance(declared, ExporterCapabilities):
        raise TypeError(
            f"{name}.capabilities must be an ExporterCapabilities, got {type(declared).__name__}"
        )
    lacking = [
        m for m in _HOOKS_NEEDED[declared.receives] if not callable(getattr(exporter, m, None))
    ]
    if lacking:
        raise TypeError(
            f"{name} declares receives={declared.receives!r} but lacks {', '.join(lacking)}"
        )
    if declared.receives != "batches" and callable(getattr(exporter, "on_batch", None)):
        raise TypeError(
            f"{name} has on_batch but declares receives={declared.receives!r}: declare "
            "ExporterCapabilities(receives='batches', ...) for it to be called"
        )
    return declared


def _takes_millis(exporter: object) -> bool:
    try:
        return "timeout_millis" in inspect.signature(exporter.force_flush).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False


def _hint(exporter: object) -> str:
    if callable(getattr(exporter, "get_tracer", None)):
        return " For a TracerProvider, pass OtelExporter(provider)."
    if callable(getattr(exporter, "on_end", None)):
        return " For a SpanProcessor, add it to a TracerProvider and pass OtelExporter(provider)."
    return (
        " Pass JsonlExporter, OtelExporter, StructlogExporter (lcel_trace.exporters), an "
        "OpenTelemetry SDK SpanExporter, or an object with export(spans), "
        "force_flush(timeout_s=None) and shutdown()."
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

    def __init__(self, exporter: TraceExporter) -> None:
        self.exporter = exporter
        self.capabilities = caps = capabilities_of(exporter)
        self.max_queue = caps.max_queue
        self.dropped_records = 0
        self.dropped_chunks = 0
        self.failed_calls = 0
        self._name = type(exporter).__name__
        self._closed = False
        # What each record becomes, bound once: the exporter's own methods, or nothing.
        self._per_record: dict[type, Callable[[Any], object] | None] = {
            TraceStart: _bound(exporter, "on_trace_start"),
            TraceEvent: _bound(exporter, "on_event"),
            TraceEnd: _bound(exporter, "on_trace_end"),
        }
        self._on_idle = _bound(exporter, "on_idle") if caps.receives != "spans" else None
        self._merge = caps.receives == "batches"
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
        """Wait until everything queued so far was handed to the exporter (at once, and
        without waking its worker, when nothing is queued)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            if not self._queue and not self._in_flight:
                return True
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
        """Drain, then refuse further batches and forget this processor; idempotent.

        Waits (within `timeout_s`) for the worker thread to return: its frames hold
        the exporter, which must be free to go once its owner lets go of it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        drained = self.drain(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            worker = self._thread
        if worker is not None and worker is not threading.current_thread():
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        _forget(self)
        return drained

    def _start_worker(self) -> None:
        if sys.is_finalizing():
            # No new thread while the interpreter shuts down (a stream dropped then ends
            # its trace): Python 3.11's Thread.start() would wait forever, 3.12 refuses.
            self._deliver_queued_here()
            return
        self._thread = threading.Thread(
            target=self._run, name=f"lcel-trace-export-{self._name}", daemon=True
        )
        self._thread.start()

    def _deliver_queued_here(self) -> None:
        """Deliver what is queued on the calling thread (it holds `_cond`)."""
        while self._queue:
            batch, weight = self._take()
            self._queued_records -= weight
            try:
                self._deliver(batch)
            except Exception as exc:
                report_internal_error("export_at_exit", exc)

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
            if self._on_idle is not None:
                self._call(self._on_idle, None)
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
        if not queue or not self._merge:
            return batch, weight
        merged = list(batch)
        while queue and weight + queue[0][1] <= COALESCE_MAX_RECORDS:
            more, more_weight = queue.popleft()
            merged.extend(more)
            weight += more_weight
        return merged, weight

    def _deliver(self, batch: Sequence[Record]) -> None:
        receives = self.capabilities.receives
        exporter = self.exporter
        if receives == "batches":
            self._call(exporter.on_batch, batch)  # type: ignore[attr-defined]
            return
        spans: list[Span] = []
        for record in batch:
            if type(record) is Span:
                spans.append(record)
                continue
            hook = self._per_record[type(record)] if receives == "records" else None
            if hook is None:
                continue
            if spans:
                self._call(exporter.export, spans)
                spans = []
            self._call(hook, record)
        if spans:
            self._call(exporter.export, spans)

    def _call(self, method: Callable[..., object], argument: object) -> None:
        try:
            if argument is None:
                method()
            else:
                method(argument)
        except Exception as exc:
            self.failed_calls += 1
            name = getattr(method, "__name__", "?")
            warn_once("exporter_failed", source=self._name, method=name, error=repr(exc))


def _bound(exporter: object, name: str) -> Callable[[Any], object] | None:
    method = getattr(exporter, name, None)
    return method if callable(method) else None


_registry: weakref.WeakValueDictionary[int, ExportProcessor] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def processor_for(exporter: TraceExporter) -> ExportProcessor:
    """The processor that owns `exporter`'s queue (one per live exporter object).

    The processor holds its exporter, so the id key stays unique while it is alive;
    the registry holds processors weakly, so neither outlives its users.
    """
    exporter = stand_in_for(exporter) or exporter
    if isinstance(exporter, BaseExporter):
        return exporter.processor
    return _registered(exporter)


_stand_ins: weakref.WeakKeyDictionary[Any, TraceExporter] = weakref.WeakKeyDictionary()


def stand_in(original: object, exporter: TraceExporter) -> None:
    """Remember that `exporter` exports for `original` (an OpenTelemetry SDK exporter
    handed in), so `processor_for(original)` and `exporter_stats(original)` find it."""
    _stand_ins[original] = exporter


def stand_in_for(original: object) -> TraceExporter | None:
    """The live exporter standing in for `original`, if one does."""
    try:
        exporter = _stand_ins.get(original)
    except TypeError:  # neither hashable nor weakly referable: never stood in for
        return None
    if isinstance(exporter, BaseExporter) and exporter._shut_down:
        return None
    return exporter


def _registered(exporter: TraceExporter) -> ExportProcessor:
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


def exporter_stats(exporter: TraceExporter) -> ExporterStats:
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
    """A `TraceExporter` with every hook (`receives="records"`), for subclassing: override
    the ones you need (`export`, `on_trace_start`, `on_event`, `on_trace_end`, `on_idle`)
    and declare more in `capabilities` (`events=True` for start, end, error and custom
    events). Gives queue-aware `force_flush`, idempotent `shutdown` and a context manager;
    subclasses release what they hold in `_flush(timeout_s)` and `_close()`."""

    capabilities: ExporterCapabilities = ExporterCapabilities(receives="records")
    shutdown_timeout_s: float = 5.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        legacy = [
            name for name in ("max_queue", "record_chunks", "record_events") if name in vars(cls)
        ]
        if legacy:
            raise TypeError(
                f"{cls.__name__}: {', '.join(legacy)} are declared in capabilities now: "
                f"capabilities = ExporterCapabilities(receives='records', ...)"
            )

    def __init__(self) -> None:
        self._shut_down = False
        self._processor: ExportProcessor | None = None

    @property
    def processor(self) -> ExportProcessor:
        """This exporter's queue and worker (owned here, so it lives as long as we do)."""
        if self._processor is None:
            self._processor = _registered(self)
        return self._processor

    @property
    def max_queue(self) -> int:
        """Records that may wait for this exporter before batches are dropped."""
        return self.capabilities.max_queue

    def export(self, spans: Sequence[Span]) -> None:
        """Finished spans, in the order they ended."""

    def on_trace_start(self, start: TraceStart) -> None:
        """A trace began (always delivered, even when the queue drops its other records)."""

    def on_event(self, event: TraceEvent) -> None:
        """A recorded event: coalesced stream chunks as `capabilities.chunks` asks, and
        start, end, error and custom events with `capabilities.events`."""

    def on_trace_end(self, end: TraceEnd) -> None:
        """A trace ended (always delivered): forget what was kept for it."""

    def on_idle(self) -> None:
        """Nothing queued for a while and the worker is about to sleep (close files)."""

    def force_flush(self, timeout_s: float | None = None) -> bool:
        """Write everything queued for this exporter; False if `timeout_s` seconds ran out
        first. Returns at once when nothing is queued and nothing is buffered."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        drained = self.processor.drain(timeout_s)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._flush(remaining) and drained

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

    def _flush(self, timeout_s: float | None) -> bool:
        return True

    def _close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
