"""Where a trace begins: its options, its ids, whether it is sampled, who its parent is.

Everything here is decided once per traced call, before any event flows: the options
`trace()` was given, a fresh trace id (or the caller's OpenTelemetry trace id), the
sampling verdict, and the OpenTelemetry span the trace hangs under.
"""

from __future__ import annotations

import importlib
import os
import random
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import TypedDict, Unpack

from lcel_trace.export import ExportProcessor, TraceExporter
from lcel_trace.redact import Redact, Redactor
from lcel_trace.span import RunType

__all__ = [
    "OtelParent",
    "SharedOptions",
    "TraceOptions",
    "TracingOptions",
    "inside_recorded_event_stream",
    "is_sampled",
    "new_trace_id",
    "otel_parent",
]

DEFAULT_MAX_ATTR_CHARS = 4096

# exporters/ is installed as lcel_trace.exporters (mypy checks it by path, not that name)
hand_in: Callable[[object], ExportProcessor] = importlib.import_module(
    "lcel_trace.exporters"
).hand_in
"""The processor for an object handed in as an exporter (`lcel_trace.exporters.hand_in`)."""

inside_recorded_event_stream: ContextVar[bool] = ContextVar(
    "lcel_trace_inside_recorded_event_stream", default=False
)
"""True while `trace_events` pulls the next event: runs started then (the task that
produces the stream copies this context) are recorded from the stream itself, so a
traced runnable among them must not start a trace of its own."""


class SharedOptions(TypedDict, total=False):
    """The options every entry point takes beside its exporters, declared once:
    `trace(runnable, **options)`, `trace_events(events, **options)`,
    `instrument(exporters, **options)` (`TraceOptions.build` holds the defaults).

    - `name` (default: the runnable's or the root run's name): the trace's name;
    - `redact` (None): maps any content value to what may leave the process, applied
      after the built-in secret scrubbing;
    - `capture_content` (True): False drops inputs, outputs and chunks entirely;
    - `max_attr_chars` (4096): the longest content string an exporter writes;
    - `sample` (1.0): the fraction of traces kept, chosen by trace id.
    """

    name: str | None
    redact: Redact | None
    capture_content: bool
    max_attr_chars: int
    sample: float


class TracingOptions(SharedOptions, total=False):
    """`SharedOptions` and `exporters` (default none): where each trace is sent."""

    exporters: Sequence[TraceExporter]


_OPTION_NAMES = TracingOptions.__optional_keys__


@dataclass(frozen=True, slots=True)
class TraceOptions:
    """What a traced runnable was asked for, resolved once when it was wrapped."""

    processors: tuple[ExportProcessor, ...]
    redactor: Redactor
    max_attr_chars: int
    sample: float
    name_run_types: Mapping[str, RunType]
    name: str | None
    record_root_chunks: bool
    record_all_chunks: bool
    otel_context: bool = False
    """Runs are made OpenTelemetry's current span while they execute (an exporter
    sends our spans to OpenTelemetry: `sets_otel_context` on its class)."""

    @classmethod
    def build(
        cls,
        *,
        name_run_types: Mapping[str, RunType] | None = None,
        **options: Unpack[TracingOptions],
    ) -> TraceOptions:
        """Check the options `trace()`, `trace_events()` and `instrument()` share, and
        attach each exporter's processor (capabilities read once, here)."""
        unknown = sorted(options.keys() - _OPTION_NAMES)
        if unknown:
            known = ", ".join(sorted(_OPTION_NAMES))
            raise TypeError(f"unexpected keyword argument {unknown[0]!r} (the options: {known})")
        exporters = options.get("exporters", ())
        sample = options.get("sample", 1.0)
        max_attr_chars = options.get("max_attr_chars", DEFAULT_MAX_ATTR_CHARS)
        processors = tuple(hand_in(e) for e in exporters)
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample must be between 0.0 and 1.0, got {sample}")
        if max_attr_chars < 1:
            raise ValueError(f"max_attr_chars must be positive, got {max_attr_chars}")
        chunk_level = max((p.capabilities.chunk_level for p in processors), default=0)
        otel_context = _sets_otel_context(processors)
        return cls(
            processors=processors,
            redactor=Redactor(
                options.get("redact"), capture_content=options.get("capture_content", True)
            ),
            max_attr_chars=max_attr_chars,
            sample=sample,
            name_run_types=name_run_types or {},
            name=options.get("name"),
            record_root_chunks=chunk_level >= 1,
            record_all_chunks=chunk_level >= 2,
            otel_context=otel_context,
        )

    def joined(self, processors: tuple[ExportProcessor, ...]) -> TraceOptions:
        """These options with `processors` added (those not already here)."""
        extra = tuple(p for p in processors if p not in self.processors)
        if not extra:
            return self
        levels = [p.capabilities.chunk_level for p in extra]
        return replace(
            self,
            processors=self.processors + extra,
            record_root_chunks=self.record_root_chunks or max(levels) >= 1,
            record_all_chunks=self.record_all_chunks or max(levels) >= 2,
            otel_context=self.otel_context or _sets_otel_context(extra),
        )


def _sets_otel_context(processors: tuple[ExportProcessor, ...]) -> bool:
    """True when an exporter sends our spans to OpenTelemetry; then runs are made
    OpenTelemetry's current span while they execute (installed here, once)."""
    found = any(getattr(type(p.exporter), "sets_otel_context", False) for p in processors)
    if found:
        from lcel_trace import otel_context

        otel_context.install()
    return found


instrumented_processors: tuple[ExportProcessor, ...] = ()
"""The exporters `instrument()` was given: every trace reaches them, `trace()`'s too."""


@dataclass(frozen=True, slots=True)
class OtelParent:
    """The OpenTelemetry span that was active where a traced call started."""

    trace_id: str
    span_id: str


def otel_parent() -> OtelParent | None:
    """The OpenTelemetry span active right now, if any (never raises)."""
    try:
        from opentelemetry import trace as otel_trace

        context = otel_trace.get_current_span().get_span_context()
    except Exception:
        return None
    if not context.is_valid:
        return None
    return OtelParent(format(context.trace_id, "032x"), format(context.span_id, "016x"))


_ids = random.Random()  # seeded from os.urandom; private, so random.seed() cannot repeat ids
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)


def new_trace_id() -> str:
    """32 lowercase hex digits, never all zeros (OpenTelemetry's rule).

    From a private generator seeded by the OS, as OpenTelemetry's own ids are: no system
    call per trace, which would hand the GIL to the exporter threads mid-call."""
    while True:
        trace_id = _ids.getrandbits(128)
        if trace_id:
            return f"{trace_id:032x}"


def is_sampled(trace_id: str, rate: float) -> bool:
    """Deterministic by trace id, so every process samples a given trace the same way."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return int(trace_id[:16], 16) / float(1 << 64) < rate
