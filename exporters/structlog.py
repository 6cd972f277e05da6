"""`StructlogExporter`: traces as structured log events, for teams whose collector is
their log pipeline. One `span` event per finished span, one `trace` event per trace
with totals, through the structlog logger you give (or `structlog.get_logger`, which
follows your own structlog configuration). Runs on the exporter's background thread."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from lcel_trace.export import DEFAULT_MAX_QUEUE, BaseExporter, ExporterCapabilities
from lcel_trace.json_text import dumps_text
from lcel_trace.serialize import to_jsonable, truncate
from lcel_trace.span import Span, TraceEnd, TraceStart

LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_MAX_ATTR_CHARS = 4096
"""Longest content field, as `OtelExporter`'s attributes (and `trace()`'s default)."""


@dataclass
class _Totals:
    name: str
    start_ns: int
    max_attr_chars: int
    spans: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class StructlogExporter(BaseExporter):
    """Logs `event="span"` per span and `event="trace"` per trace at `level`.

    Content (`inputs`, `outputs`) is included when `capture_content` is true and the
    trace captured it (`trace(..., capture_content=False)` leaves none; redaction has
    already run), as JSON text cut to `max_attr_chars`, or to the traced runnable's
    `max_attr_chars` when that is lower (as `OtelExporter` cuts its attributes).
    """

    def __init__(
        self,
        logger: Any = None,
        level: str = "info",
        *,
        capture_content: bool = True,
        max_attr_chars: int = DEFAULT_MAX_ATTR_CHARS,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        super().__init__()
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
        self._logger = logger if logger is not None else structlog.get_logger("lcel_trace.spans")
        self.level = level
        self.capture_content = capture_content
        if max_attr_chars < 1:
            raise ValueError(f"max_attr_chars must be positive, got {max_attr_chars}")
        self.max_attr_chars = max_attr_chars
        self.capabilities = ExporterCapabilities(receives="records", max_queue=max_queue)
        self._traces: dict[str, _Totals] = {}

    def on_trace_start(self, start: TraceStart) -> None:
        limit = self.max_attr_chars
        if start.max_attr_chars is not None:
            limit = min(limit, start.max_attr_chars)
        self._traces[start.trace_id] = _Totals(start.name, start.start_ns, limit)

    def export(self, spans: Sequence[Span]) -> None:
        emit = getattr(self._logger, self.level)
        for span in spans:
            totals = self._traces.get(span.trace_id)
            limit = self.max_attr_chars if totals is None else totals.max_attr_chars
            emit("span", **self.span_fields(span, limit))
            if totals is not None:
                totals.spans += 1
                totals.errors += span.status == "error"
                if span.usage is not None and span.run_type in ("chat_model", "llm"):
                    totals.input_tokens += span.usage.input_tokens or 0
                    totals.output_tokens += span.usage.output_tokens or 0
                    totals.total_tokens += span.usage.total_tokens or 0

    def on_trace_end(self, end: TraceEnd) -> None:
        totals = self._traces.pop(end.trace_id, None)
        fields: dict[str, Any] = {
            "trace_id": end.trace_id,
            "status": end.status,
            "span_count": end.span_count,
        }
        if totals is not None:
            fields.update(
                name=totals.name,
                duration_ms=round((end.end_ns - totals.start_ns) / 1e6, 3),
                error_spans=totals.errors,
                input_tokens=totals.input_tokens,
                output_tokens=totals.output_tokens,
                total_tokens=totals.total_tokens,
            )
        if end.error is not None:
            fields.update(error_type=end.error.type, error=end.error.message)
        getattr(self._logger, self.level)("trace", **fields)

    def span_fields(self, span: Span, max_attr_chars: int | None = None) -> dict[str, Any]:
        """The fields of one span's log event, content cut to `max_attr_chars` (by
        default this exporter's)."""
        limit = self.max_attr_chars if max_attr_chars is None else max_attr_chars
        fields: dict[str, Any] = {
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "parent_id": span.parent_id,
            "name": span.name,
            "run_type": span.run_type,
            "status": span.status,
            "duration_ms": round(span.duration_ns / 1e6, 3),
        }
        ttft = span.time_to_first_chunk_ns
        if ttft is not None:
            fields["ttft_ms"] = round(ttft / 1e6, 3)
            fields["chunk_count"] = span.chunk_count
        if span.model:
            fields["model"] = span.model
        if span.usage is not None:
            fields.update(
                input_tokens=span.usage.input_tokens,
                output_tokens=span.usage.output_tokens,
                total_tokens=span.usage.total_tokens,
            )
        if span.error is not None:
            fields.update(error_type=span.error.type, error=span.error.message)
        if self.capture_content:
            for key, value in (("inputs", span.inputs), ("outputs", span.outputs)):
                if value is not None:
                    fields[key] = truncate(dumps_text(to_jsonable(value)), limit)
        return fields
