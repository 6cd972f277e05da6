"""Exporter back-ends, importable as `lcel_trace.exporters`, and
`hand_in`,
what `trace()` does with each object passed as an exporter.

The contract they meet (`TraceExporter`, `ExporterCapabilities`) is declared in
`lcel_trace.export`; `SpanExporter` is its deprecated name. `OtlpJsonExporter` needs the
`otlp` extra (`pip install 'lcel-trace[otlp]'`) and is imported on first use, so the
others work without it.
"""

from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter as _SdkSpanExporter

from lcel_trace.export import (
    BaseExporter,
    ExporterCapabilities,
    ExportProcessor,
    SpanExporter,
    TraceExporter,
    processor_for,
    stand_in,
    stand_in_for,
)

from .jsonl import JsonlExporter
from .otel import OtelExporter
from .structlog import StructlogExporter

__all__ = [
    "BaseExporter",
    "ExporterCapabilities",
    "JsonlExporter",
    "OtelExporter",
    "OtlpJsonExporter",
    "SpanExporter",
    "StructlogExporter",
    "TraceExporter",
    "hand_in",
]


def hand_in(exporter: object) -> ExportProcessor:
    """The processor for an object handed in as an exporter (`trace()`, `instrument()`,
    `trace_events()`, `reexport()`): an lcel-trace exporter's own; an OpenTelemetry SDK
    `SpanExporter` inside `OtelExporter.around` (the same wrapper each time it is handed
    in); anything else refused with a `TypeError` that says what to pass. Making the
    processor reads the exporter's capabilities, once."""
    if isinstance(exporter, _SdkSpanExporter) and stand_in_for(exporter) is None:
        stand_in(exporter, OtelExporter.around(exporter))
    return processor_for(exporter)  # type: ignore[arg-type]  # refused there if it is not one


def __getattr__(name: str) -> Any:
    if name == "OtlpJsonExporter":
        try:
            from .otlp_json import OtlpJsonExporter
        except ImportError as exc:
            raise ImportError(
                f"OtlpJsonExporter needs the otlp extra: pip install 'lcel-trace[otlp]' ({exc})"
            ) from exc
        return OtlpJsonExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
