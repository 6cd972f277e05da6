"""lcel-trace: trace LangChain runnables into spans without changing what they do."""

from lcel_trace.capture import Capture, capture
from lcel_trace.export import flush_all
from lcel_trace.span import Span, SpanError, SpanEvent, SpanNode, Trace, TraceEvent, Usage
from lcel_trace.wrapper import TracedRunnable, trace

__all__ = [
    "Capture",
    "Span",
    "SpanError",
    "SpanEvent",
    "SpanNode",
    "Trace",
    "TraceEvent",
    "TracedRunnable",
    "Usage",
    "capture",
    "flush_all",
    "trace",
]
