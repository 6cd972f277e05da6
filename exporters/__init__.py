"""Exporter back-ends, importable as `lcel_trace.exporters`.

`OtlpJsonExporter` needs the `otlp` extra (`pip install 'lcel-trace[otlp]'`) and is
imported on first use, so the others work without it.
"""

from typing import Any

from lcel_trace.export import BaseExporter, ExporterHooks, SpanExporter

from .jsonl import JsonlExporter
from .otel import OtelExporter
from .structlog import StructlogExporter

__all__ = [
    "BaseExporter",
    "ExporterHooks",
    "JsonlExporter",
    "OtelExporter",
    "OtlpJsonExporter",
    "SpanExporter",
    "StructlogExporter",
]


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
