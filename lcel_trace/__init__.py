"""lcel-trace: trace LangChain runnables into spans without changing what they do."""

from lcel_trace.capture import Capture, capture
from lcel_trace.export import ExporterStats, exporter_stats, flush_all
from lcel_trace.instrument import instrument as instrument  # not yet pinned in __all__
from lcel_trace.instrument import uninstrument as uninstrument
from lcel_trace.span import (
    Record,
    Span,
    SpanError,
    SpanEvent,
    SpanNode,
    Trace,
    TraceEnd,
    TraceEvent,
    TraceStart,
    Usage,
)
from lcel_trace.wrapper import TracedRunnable, trace

__all__ = [
    "Capture",
    "ExporterStats",
    "Record",
    "Span",
    "SpanError",
    "SpanEvent",
    "SpanNode",
    "Trace",
    "TraceEnd",
    "TraceEvent",
    "TraceStart",
    "TracedRunnable",
    "Usage",
    "capture",
    "exporter_stats",
    "flush_all",
    "trace",
]
