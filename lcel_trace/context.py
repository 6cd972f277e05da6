"""Where a trace begins: its options, its ids, whether it is sampled, who its parent is.

Everything here is decided once per traced call, before any event flows: the options
`trace()` was given, a fresh trace id (or the caller's OpenTelemetry trace id), the
sampling verdict, and the OpenTelemetry span the trace hangs under.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lcel_trace.redact import Redactor
from lcel_trace.span import RunType

if TYPE_CHECKING:
    from lcel_trace.export import ExportProcessor

__all__ = ["OtelParent", "TraceOptions", "is_sampled", "new_trace_id", "otel_parent"]

DEFAULT_MAX_ATTR_CHARS = 4096


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


def new_trace_id() -> str:
    """32 lowercase hex digits, never all zeros (OpenTelemetry's rule)."""
    while True:
        trace_id = os.urandom(16).hex()
        if trace_id != "0" * 32:
            return trace_id


def is_sampled(trace_id: str, rate: float) -> bool:
    """Deterministic by trace id, so every process samples a given trace the same way."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return int(trace_id[:16], 16) / float(1 << 64) < rate
