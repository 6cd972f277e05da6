"""lcel-trace: trace LangChain runnables into spans without changing what they do.

Public names are imported on first use (PEP 562), so `import lcel_trace` and the
`lcel-trace` command's `--help` do not wait for LangChain.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

PUBLIC: dict[str, tuple[str, ...]] = {
    "lcel_trace._capture": ("Capture", "capture"),
    "lcel_trace.export": ("ExporterStats", "exporter_stats", "flush_all"),
    "lcel_trace.instrumentation": ("instrument", "uninstrument"),
    "lcel_trace.span": (
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
    "lcel_trace.wrapper": ("TracedRunnable", "trace"),
}
"""Every public name, by the module that defines it: the one list `__all__`, `__getattr__`
and `__dir__` read (the block below repeats it for type checkers, which cannot run it;
tests/test_public_names.py keeps the two equal)."""

__all__ = sorted(name for names in PUBLIC.values() for name in names)
_HOMES = {name: module for module, names in PUBLIC.items() for name in names}

if TYPE_CHECKING:
    from lcel_trace._capture import Capture as Capture
    from lcel_trace._capture import capture as capture
    from lcel_trace.export import ExporterStats as ExporterStats
    from lcel_trace.export import exporter_stats as exporter_stats
    from lcel_trace.export import flush_all as flush_all
    from lcel_trace.instrumentation import instrument as instrument
    from lcel_trace.instrumentation import uninstrument as uninstrument
    from lcel_trace.span import Record as Record
    from lcel_trace.span import Span as Span
    from lcel_trace.span import SpanError as SpanError
    from lcel_trace.span import SpanEvent as SpanEvent
    from lcel_trace.span import SpanNode as SpanNode
    from lcel_trace.span import Trace as Trace
    from lcel_trace.span import TraceEnd as TraceEnd
    from lcel_trace.span import TraceEvent as TraceEvent
    from lcel_trace.span import TraceStart as TraceStart
    from lcel_trace.span import Usage as Usage
    from lcel_trace.wrapper import TracedRunnable as TracedRunnable
    from lcel_trace.wrapper import trace as trace


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
