"""`OtelExporter`: one OpenTelemetry span per recorded span, GenAI conventions on top.

Spans of a trace end child-first, but an OpenTelemetry span needs its parent's context
when it starts, so the exporter keeps a trace's spans until its `trace_end` record and
then creates them parents-first with their recorded start and end times. The root is
parented to the OpenTelemetry span that was active when the traced call started; with
none active, an SDK tracer is handed lcel-trace's own trace id, so JSONL lines, log fields
and the collector all name a trace the same way. The global OpenTelemetry context is never
attached or detached: every span gets its parent passed explicitly, on the exporter's own
thread.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram, MeterProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
)
from opentelemetry.util.types import AttributeValue

from lcel_trace.export import DEFAULT_MAX_QUEUE, BaseExporter
from lcel_trace.serialize import to_jsonable
from lcel_trace.span import Span, TraceEnd, TraceEvent, TraceStart

from .genai_messages import (
    GenAIMessage,
    cut,
    input_messages,
    openinference_attributes,
    output_messages,
)

Attributes = dict[str, AttributeValue]
_Messages = tuple[list[GenAIMessage] | None, list[GenAIMessage] | None]  # input, output

# GenAI operation per run type (OpenTelemetry GenAI semantic conventions).
OPERATION = {"chat_model": "chat", "llm": "text_completion", "tool": "execute_tool"}
OPENINFERENCE_KIND = {
    "chat_model": "LLM",
    "llm": "LLM",
    "tool": "TOOL",
    "retriever": "RETRIEVER",
    "prompt": "CHAIN",
    "parser": "CHAIN",
    "lambda": "CHAIN",
    "chain": "CHAIN",
    "custom": "CHAIN",
}
REQUEST_ATTRIBUTES = {
    "temperature": "gen_ai.request.temperature",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "stop": "gen_ai.request.stop_sequences",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
}
CONVENTIONS = frozenset(("gen_ai", "openinference"))
# A root of these types is the GenAI conventions' workflow: `invoke_workflow {name}`.
WORKFLOW_RUN_TYPES = frozenset(("chain", "lambda", "custom"))


@dataclass
class _PendingTrace:
    start: TraceStart | None = None
    spans: list[Span] = field(default_factory=list)
    chunks: dict[str, list[tuple[int, Any]]] = field(default_factory=lambda: defaultdict(list))


class OtelExporter(BaseExporter):
    """Sends recorded spans to an OpenTelemetry `TracerProvider` (and metrics to a
    `MeterProvider` when given); works with any provider and the standard OTLP exporters.

    Content (`lcel.input`/`lcel.output`, and `gen_ai.input.messages` /
    `gen_ai.output.messages` on chat spans) is added only with `capture_content=True`,
    as JSON cut to `max_attr_chars`. `chunk_events=True` adds each recorded stream chunk
    as a span event (at most `max_chunk_events` per span; needs the trace's exporters to
    record them, e.g. a `JsonlExporter(record_chunks=...)` or `record_chunks` here).
    `conventions=("gen_ai", "openinference")` adds OpenInference attributes too.
    The providers are yours: `shutdown()` flushes them but never shuts them down.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        meter_provider: MeterProvider | None = None,
        max_attr_chars: int = 4096,
        capture_content: bool = True,
        chunk_events: bool = False,
        max_chunk_events: int = 128,
        conventions: Iterable[str] = ("gen_ai",),
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        super().__init__()
        unknown = set(conventions) - CONVENTIONS
        if unknown:
            raise ValueError(f"unknown conventions {sorted(unknown)}; use {sorted(CONVENTIONS)}")
        # Without an explicit provider, the global one is looked up when spans are
        # emitted: an exporter made before `set_tracer_provider` still uses the SDK's.
        self._explicit_provider = tracer_provider
        self._provider: Any = None
        self._tracer: Any = None
        self._trace_ids: _RecordedTraceIds | None = None
        self._use_provider(tracer_provider or otel_trace.get_tracer_provider())
        self.max_attr_chars = max_attr_chars
        self._limit = max_attr_chars  # this trace's: min(ours, the traced runnable's)
        self.capture_content = capture_content
        self.chunk_events = chunk_events
        self.max_chunk_events = max_chunk_events
        self.record_chunks = "all" if chunk_events else "none"
        self.conventions = frozenset(conventions)
        self.max_queue = max_queue
        self._meter_provider = meter_provider
        self._histograms: dict[str, Histogram] = {}
        if meter_provider is not None:
            meter = meter_provider.get_meter("lcel-trace")
            self._histograms = {
                "duration": meter.create_histogram(
                    "gen_ai.client.operation.duration",
                    unit="s",
                    description="GenAI operation duration",
                ),
                "tokens": meter.create_histogram(
                    "gen_ai.client.token.usage", unit="{token}", description="Tokens used"
                ),
                "ttfc": meter.create_histogram(
                    "gen_ai.client.operation.time_to_first_chunk",
                    unit="s",
                    description="Time to the first streamed chunk",
                ),
            }
        self._pending: dict[str, _PendingTrace] = defaultdict(_PendingTrace)

    # -- records from the processor -----------------------------------------------------

    def on_trace_start(self, start: TraceStart) -> None:
        self._pending[start.trace_id].start = start

    def on_event(self, event: TraceEvent) -> None:
        if self.chunk_events and event.kind == "stream":
            buffer = self._pending[event.trace_id].chunks[event.run_id]
            room = self.max_chunk_events - len(buffer)
            buffer.extend(tuple(pair) for pair in event.data.get("chunks", ())[: max(room, 0)])

    def export(self, spans: Sequence[Span]) -> None:
        for span in spans:
            self._pending[span.trace_id].spans.append(span)

    def on_trace_end(self, end: TraceEnd) -> None:
        pending = self._pending.pop(end.trace_id, None)
        if pending is not None and pending.spans:
            self._emit(pending)

    def _use_provider(self, provider: Any) -> None:
        if provider is self._provider:
            return
        self._provider = provider
        self._tracer = provider.get_tracer("lcel-trace")
        self._trace_ids = _RecordedTraceIds.install(self._tracer)

    def _flush(self) -> bool:
        if self._explicit_provider is None:
            self._use_provider(otel_trace.get_tracer_provider())
        flush = getattr(self._provider, "force_flush", None)
        return bool(flush()) if flush is not None else True

    # -- building OpenTelemetry spans ------------------------------------------------------

    def _emit(self, pending: _PendingTrace) -> None:
        if self._explicit_provider is None:
            self._use_provider(otel_trace.get_tracer_provider())
        limit = pending.start.max_attr_chars if pending.start else None
        self._limit = min(self.max_attr_chars, limit) if limit else self.max_attr_chars
        spans = pending.spans
        ids = {s.span_id for s in spans}
        children: dict[str | None, list[Span]] = defaultdict(list)
        for span in spans:
            children[span.parent_id if span.parent_id in ids else None].append(span)
        root_context = self._root_context(pending.start)
        start = pending.start
        trace_name = start.name if start else None
        stack = [(span, root_context) for span in sorted(children[None], key=_start)]
        while stack:
            span, context = stack.pop()
            is_root = context is root_context
            workflow = (trace_name or span.name) if is_root else None
            attributes = self.attributes(span, workflow)
            if is_root and self._trace_ids and start and start.otel_parent_span_id is None:
                self._trace_ids.next_trace_id = int(start.trace_id, 16)  # used by the next line
            otel_span = self._tracer.start_span(
                self.span_name(span, workflow),
                context=context,
                kind=SpanKind.CLIENT
                if span.run_type in ("chat_model", "llm")
                else SpanKind.INTERNAL,
                attributes=attributes,
                start_time=span.start_ns,
            )
            self._finish(otel_span, span, pending.chunks.get(span.span_id, ()))
            child_context = otel_trace.set_span_in_context(otel_span, Context())
            stack.extend((c, child_context) for c in sorted(children[span.span_id], key=_start))
            self._record_metrics(span)

    def _root_context(self, start: TraceStart | None) -> Context:
        if start is None or start.otel_parent_span_id is None:
            return Context()
        parent = SpanContext(
            trace_id=int(start.trace_id, 16),
            span_id=int(start.otel_parent_span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        return otel_trace.set_span_in_context(NonRecordingSpan(parent), Context())

    def _finish(self, otel_span: Any, span: Span, chunks: Iterable[tuple[int, Any]]) -> None:
        for event in span.events:
            otel_span.add_event(
                event.name, {"lcel.data": self._json(event.data)}, timestamp=event.ts_ns
            )
        for ts_ns, chunk in chunks:
            otel_span.add_event("lcel.chunk", {"lcel.chunk": self._json(chunk)}, timestamp=ts_ns)
        if span.status == "error":
            error = span.error
            error_type = error.type if error else "Error"
            message = error.message if error else ""
            otel_span.add_event(
                "exception",
                {"exception.type": error_type, "exception.message": message},
                timestamp=span.end_ns,
            )
            otel_span.set_attribute("error.type", error_type)
            otel_span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"))
        elif span.status == "ok":
            otel_span.set_status(Status(StatusCode.OK))
        otel_span.end(end_time=span.end_ns)

    def span_name(self, span: Span, workflow: str | None = None) -> str:
        """`chat {model}`, `text_completion {model}`, `execute_tool {tool}`, a root chain's
        `invoke_workflow {name}`, else the run name."""
        if workflow and span.run_type in WORKFLOW_RUN_TYPES:
            return f"invoke_workflow {workflow}"
        operation = OPERATION.get(span.run_type)
        if operation == "execute_tool":
            return f"execute_tool {span.name}"
        if operation is not None:
            model = span.attributes.get("request_model") or span.model
            return f"{operation} {model}" if model else operation
        return span.name

    def attributes(self, span: Span, workflow: str | None = None) -> Attributes:
        """The attributes of one span, GenAI conventions first, then lcel's own.

        `workflow` is given for a trace's root: the `trace(name=...)`, else its run name."""
        facts = span.attributes
        attrs: Attributes = {
            "lcel.run_name": span.name,
            "lcel.run_type": span.run_type,
            "lcel.run_id": span.span_id,
            "lcel.trace_id": span.trace_id,
            "lcel.status": span.status,
        }
        if span.parent_id:
            attrs["lcel.parent_run_id"] = span.parent_id
        if span.tags:
            attrs["lcel.tags"] = list(span.tags)
        for key, value in span.metadata.items():
            attrs[f"lcel.metadata.{key}"] = self._scalar(value)
        if span.chunk_count:
            attrs["lcel.chunk_count"] = span.chunk_count
        operation = OPERATION.get(span.run_type)
        if span.run_type == "retriever":
            operation = "retrieval"
        if workflow and span.run_type in WORKFLOW_RUN_TYPES:
            operation = "invoke_workflow"
            attrs["gen_ai.workflow.name"] = workflow
        if workflow:
            attrs["lcel.trace_name"] = workflow
        if operation is not None:
            attrs["gen_ai.operation.name"] = operation
        if span.run_type in ("chat_model", "llm"):
            self._model_attributes(span, facts, attrs)
        if span.run_type == "tool":
            attrs["gen_ai.tool.name"] = span.name
            if facts.get("tool_call_id"):
                attrs["gen_ai.tool.call.id"] = str(facts["tool_call_id"])
        if span.status == "error" and span.error is not None:
            attrs["error.type"] = span.error.type
        no_messages: _Messages = (None, None)
        messages = (
            self._messages(span)
            if self.capture_content and span.run_type == "chat_model"
            else no_messages
        )
        if self.capture_content:
            self._content_attributes(span, attrs, messages)
        if "openinference" in self.conventions:
            self._openinference_attributes(span, attrs, messages)
        return attrs

    def _model_attributes(self, span: Span, facts: Mapping[str, Any], attrs: Attributes) -> None:
        provider = facts.get("provider")
        if provider:
            attrs["gen_ai.provider.name"] = str(provider)
        if facts.get("request_model"):
            attrs["gen_ai.request.model"] = str(facts["request_model"])
        if facts.get("response_model"):
            attrs["gen_ai.response.model"] = str(facts["response_model"])
        if facts.get("response_id"):
            attrs["gen_ai.response.id"] = str(facts["response_id"])
        if facts.get("finish_reason"):
            attrs["gen_ai.response.finish_reasons"] = [str(facts["finish_reason"])]
        for key, value in (facts.get("request_params") or {}).items():
            name = REQUEST_ATTRIBUTES.get(key)
            if name is not None:
                attrs[name] = self._scalar(value)
        if span.usage is not None:
            if span.usage.input_tokens is not None:
                attrs["gen_ai.usage.input_tokens"] = span.usage.input_tokens
            if span.usage.output_tokens is not None:
                attrs["gen_ai.usage.output_tokens"] = span.usage.output_tokens
        ttft = span.time_to_first_chunk_ns
        if ttft is not None:
            attrs["gen_ai.request.stream"] = True
            attrs["gen_ai.response.time_to_first_chunk"] = ttft / 1e9

    def _content_attributes(self, span: Span, attrs: Attributes, messages: _Messages) -> None:
        if span.inputs is not None:
            attrs["lcel.input"] = self._json(span.inputs)
        if span.outputs is not None:
            attrs["lcel.output"] = self._json(span.outputs)
        inputs, outputs = messages
        if inputs:
            attrs["gen_ai.input.messages"] = json.dumps(inputs, ensure_ascii=False)
        if outputs:
            attrs["gen_ai.output.messages"] = json.dumps(outputs, ensure_ascii=False)

    def _messages(self, span: Span) -> _Messages:
        finish_reason = span.attributes.get("finish_reason")
        return (
            input_messages(span.inputs, self._limit),
            output_messages(span.outputs, str(finish_reason or "") or None, self._limit),
        )

    def _openinference_attributes(self, span: Span, attrs: Attributes, messages: _Messages) -> None:
        attrs["openinference.span.kind"] = OPENINFERENCE_KIND.get(span.run_type, "CHAIN")
        # the same content as lcel.input/lcel.output, serialised once
        for ours, theirs in (("lcel.input", "input"), ("lcel.output", "output")):
            if ours in attrs:
                attrs[f"{theirs}.value"] = attrs[ours]
                attrs[f"{theirs}.mime_type"] = "application/json"
        inputs, outputs = messages
        attrs.update(openinference_attributes("llm.input_messages", inputs or []))
        attrs.update(openinference_attributes("llm.output_messages", outputs or []))
        if span.model:
            attrs["llm.model_name"] = span.model
        if span.usage is not None:
            for suffix, value in (
                ("prompt", span.usage.input_tokens),
                ("completion", span.usage.output_tokens),
                ("total", span.usage.total_tokens),
            ):
                if value is not None:
                    attrs[f"llm.token_count.{suffix}"] = value

    def _record_metrics(self, span: Span) -> None:
        if not self._histograms or span.run_type not in ("chat_model", "llm"):
            return
        attrs: Attributes = {"gen_ai.operation.name": OPERATION[span.run_type]}
        if span.attributes.get("provider"):
            attrs["gen_ai.provider.name"] = str(span.attributes["provider"])
        if span.attributes.get("request_model"):
            attrs["gen_ai.request.model"] = str(span.attributes["request_model"])
        if span.status == "error" and span.error is not None:
            attrs["error.type"] = span.error.type
        self._histograms["duration"].record(span.duration_ns / 1e9, attrs)
        ttft = span.time_to_first_chunk_ns
        if ttft is not None:
            self._histograms["ttfc"].record(ttft / 1e9, attrs)
        if span.usage is not None:
            for kind, value in (
                ("input", span.usage.input_tokens),
                ("output", span.usage.output_tokens),
            ):
                if value is not None:
                    self._histograms["tokens"].record(value, {**attrs, "gen_ai.token.type": kind})

    def _json(self, value: Any) -> str:
        text = (
            value if isinstance(value, str) else json.dumps(to_jsonable(value), ensure_ascii=False)
        )
        return cut(text, self._limit)

    def _scalar(self, value: Any) -> AttributeValue:
        if isinstance(value, (str, bool, int, float)):
            return value if not isinstance(value, str) else self._json(value)
        return self._json(value)


def _start(span: Span) -> int:
    return span.start_ns


class _RecordedTraceIds(IdGenerator):
    """An SDK tracer's id generator that starts a root span with a trace id given to it.

    Installed on the exporter's own `Tracer` object only (the SDK makes one per
    `get_tracer` call), and used only from the exporter's thread.
    """

    def __init__(self, inner: IdGenerator) -> None:
        self.inner = inner
        self.next_trace_id: int | None = None

    @classmethod
    def install(cls, tracer: object) -> _RecordedTraceIds | None:
        if not isinstance(tracer, SdkTracer):
            return None  # another SDK, or no SDK: its own ids, lcel.trace_id still says ours
        ids = cls(tracer.id_generator)
        tracer.id_generator = ids
        return ids

    def generate_span_id(self) -> int:
        return self.inner.generate_span_id()

    def generate_trace_id(self) -> int:
        trace_id, self.next_trace_id = self.next_trace_id, None
        return trace_id if trace_id is not None else self.inner.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        # lcel-trace's own ids are random; for the others the inner generator knows
        return bool(getattr(self.inner, "is_trace_id_random", lambda: False)())
