"""`OtlpJsonExporter`: traces in the OpenTelemetry OTLP File Exporter format.

One OTLP/JSON `ExportTraceServiceRequest` per line (per trace), ids as hex, enums as
integers, as the OpenTelemetry Collector's `otlpjsonfile` receiver reads them. The
conversion is `OtelExporter`'s, into a private SDK provider, then the standard OTLP
protobuf encoder; lines are appended with one `write` each, like `JsonlExporter`'s.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from lcel_trace.export import DEFAULT_MAX_QUEUE, BaseExporter, ExporterCapabilities
from lcel_trace.span import Span, TraceEnd, TraceEvent, TraceStart

from .otel import OtelExporter
from .otel_attributes import SESSION_KEYS, USER_KEYS

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class _Collect(SpanProcessor):
    """Keeps ended spans until the exporter writes them out."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class OtlpJsonExporter(BaseExporter):
    """Appends one OTLP/JSON line per trace to `path`; `resource` describes the service.

    The spans are `OtelExporter`'s, GenAI conventions only; `session_keys`/`user_keys`
    are its options of the same names."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        resource: Resource | None = None,
        max_attr_chars: int = 4096,
        capture_content: bool = True,
        max_queue: int = DEFAULT_MAX_QUEUE,
        session_keys: Iterable[str] = SESSION_KEYS,
        user_keys: Iterable[str] = USER_KEYS,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.capabilities = ExporterCapabilities(receives="records", max_queue=max_queue)
        self._collected = _Collect()
        provider = TracerProvider(resource=resource or Resource.create({}))
        provider.add_span_processor(self._collected)
        self._otel = OtelExporter(
            provider,
            max_attr_chars=max_attr_chars,
            capture_content=capture_content,
            session_keys=session_keys,
            user_keys=user_keys,
        )
        try:
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OSError(f"cannot open trace file {self.path} for appending: {exc}") from exc

    def on_trace_start(self, start: TraceStart) -> None:
        self._otel.on_trace_start(start)

    def on_event(self, event: TraceEvent) -> None:
        self._otel.on_event(event)

    def export(self, spans: Sequence[Span]) -> None:
        self._otel.export(spans)

    def on_trace_end(self, end: TraceEnd) -> None:
        self._otel.on_trace_end(end)
        spans, self._collected.spans = self._collected.spans, []
        if spans and self._fd is not None:
            os.write(
                self._fd, (json.dumps(otlp_json(spans), separators=(",", ":")) + "\n").encode()
            )

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An `ExportTraceServiceRequest` in OTLP/JSON: protobuf JSON with hex ids."""
    request: dict[str, Any] = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in request.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                for key in _ID_FIELDS:
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
                for link in span.get("links", ()):
                    for key in _ID_FIELDS:
                        if link.get(key):
                            link[key] = base64.b64decode(link[key]).hex()
    return request
