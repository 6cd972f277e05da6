"""Exporter back-ends, importable as `lcel_trace.exporters`."""

from lcel_trace.export import BaseExporter, SpanExporter
from lcel_trace.exporters.jsonl import JsonlExporter

__all__ = ["BaseExporter", "JsonlExporter", "SpanExporter"]
