"""lcel-trace: trace LangChain runnables into spans without changing what they do.

Public names are imported on first use (PEP 562), so `import lcel_trace` and the
`lcel-trace` command's `--help` do not wait for LangChain.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lcel_trace._capture import Capture, capture
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

_HOMES = {
    "Capture": "lcel_trace._capture",
    "capture": "lcel_trace._capture",
    "ExporterStats": "lcel_trace.export",
    "exporter_stats": "lcel_trace.export",
    "flush_all": "lcel_trace.export",
    "instrument": "lcel_trace.instrument",
    "uninstrument": "lcel_trace.instrument",
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


class _Package(ModuleType):
    """`lcel_trace.instrument` is the function, as `lcel_trace.capture` is: the import
    system binds each loaded submodule on its package, and this keeps the function there
    (`from lcel_trace.instrument import ...` still reaches the module)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "instrument" and isinstance(value, ModuleType):
            value = value.instrument
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
