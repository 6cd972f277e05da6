"""Exporter back-ends, importable as `lcel_trace.exporters`."""

from lcel_trace.export import BaseExporter, SpanExporter

from .jsonl import JsonlExporter
from .otel import OtelExporter
from .otlp_json import OtlpJsonExporter
from .structlog import StructlogExporter

__all__ = [
    "BaseExporter",
    "JsonlExporter",
    "OtelExporter",
    "OtlpJsonExporter",
    "SpanExporter",
    "StructlogExporter",
]
