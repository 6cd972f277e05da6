"""`OtlpJsonExporter`: traces in the OpenTelemetry OTLP File Exporter format.

One OTLP/JSON `ExportTraceServiceRequest` per line (per trace), ids as hex, enums as
integers, as the OpenTelemetry Collector's `otlpjsonfile` receiver reads them. The spans
are `OtelTraceMapping`'s plan (what `OtelExporter` sends, GenAI conventions, the same
span ids), built as SDK `ReadableSpan`s directly (no provider, no tracer) and encoded by
the standard OTLP protobuf encoder; each line is appended whole, like `JsonlExporter`'s.
"""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Unpack

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags

from lcel_trace.json_text import dumps_bytes
from lcel_trace.otel_context import span_id_of

from .otel import MappingOptions, OtelTraceMapping, _PendingTrace

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_SCOPE = InstrumentationScope("lcel-trace")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class OtlpJsonExporter(OtelTraceMapping):
    """Appends one OTLP/JSON line per trace to `path`; `resource` describes the service.

    The spans are `OtelExporter`'s, and so are the other options (`MappingOptions`)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        resource: Resource | None = None,
        **options: Unpack[MappingOptions],
    ) -> None:
        super().__init__(**options)
        self.path = Path(path)
        self.resource = resource or Resource.create({})
        try:
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OSError(f"cannot open trace file {self.path} for appending: {exc}") from exc

    def _emit(self, pending: _PendingTrace) -> None:
        if self._fd is not None:
            _write_all(self._fd, dumps_bytes(otlp_json(self.readable_spans(pending))) + b"\n")

    def readable_spans(self, pending: _PendingTrace) -> list[ReadableSpan]:
        """One trace's planned spans as the SDK's `ReadableSpan`s, with the ids the runs
        had while they ran (`lcel_trace.otel_context`)."""
        start = pending.start
        trace_id = int(start.trace_id, 16) if start else random.getrandbits(128) or 1
        root_parent = None
        if start is not None and start.otel_parent_span_id is not None:
            root_parent = SpanContext(trace_id, int(start.otel_parent_span_id, 16), True, _SAMPLED)
        contexts: dict[int, SpanContext] = {}
        spans = []
        for plan in self.planned(pending):
            span = plan.node.span
            context = SpanContext(trace_id, _span_id(span.span_id), False, _SAMPLED)
            contexts[id(plan.node)] = context
            spans.append(
                ReadableSpan(
                    plan.name,
                    context=context,
                    parent=root_parent if plan.parent is None else contexts[id(plan.parent)],
                    resource=self.resource,
                    attributes=plan.attributes,
                    events=[Event(name, attrs, timestamp=ts) for name, attrs, ts in plan.events],
                    kind=plan.kind,
                    status=plan.status,
                    start_time=span.start_ns,
                    end_time=span.end_ns,
                    instrumentation_scope=_SCOPE,
                )
            )
        return spans

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _span_id(run_id: str) -> int:
    try:
        return span_id_of(run_id)
    except ValueError:  # not a run id (a hand-made record): any span id will do
        return random.getrandbits(64) or 1


def _write_all(fd: int, payload: bytes) -> None:
    """The whole payload, however many writes the OS needs (it may write less)."""
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


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
