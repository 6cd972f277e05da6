"""lcel-trace: trace LangChain runnables into spans without changing what they do.

Public names are imported on first use (PEP 562), so `import lcel_trace` and the
`lcel-trace` command's `--help` do not wait for LangChain.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lcel_trace._capture import Capture, capture
    from lcel_trace.export import ExporterStats, exporter_stats, flush_all
    from lcel_trace.instrumentation import instrument, uninstrument
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
    "instrument",
    "trace",
    "uninstrument",
]

_HOMES = {
    "Capture": "lcel_trace._capture",
    "capture": "lcel_trace._capture",
    "ExporterStats": "lcel_trace.export",
    "exporter_stats": "lcel_trace.export",
    "flush_all": "lcel_trace.export",
    "instrument": "lcel_trace.instrumentation",
    "uninstrument": "lcel_trace.instrumentation",
    **dict.fromkeys(
        (
            "Record",
            "Span",
            "SpanError",
            "SpanEvent",
            "SpanNode",
            "Trace",
            "TraceEnd",
            "TraceEvent",
            "TraceStart",
            "Usage",
        ),
        "lcel_trace.span",
    ),
    "TracedRunnable": "lcel_trace.wrapper",
    "trace": "lcel_trace.wrapper",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access, then keep it here."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lcel_trace' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
