"""`OtelExporter`: one OpenTelemetry span per recorded span, GenAI conventions on top.

Spans of a trace end child-first, but an OpenTelemetry span needs its parent's context
when it starts, so the exporter keeps a trace's spans until its `trace_end` record and
then creates them parents-first, as `lcel_trace.span.span_tree` shapes the trace (a span
whose parent is not in the trace under the root), with their recorded times. The root is
parented to the OpenTelemetry span that was active when the traced call started; with
none active, an SDK tracer is handed lcel-trace's own trace id, so JSONL lines, log fields
and the collector all name a trace the same way. The global OpenTelemetry context is never
attached or detached: every span gets its parent passed explicitly, on the exporter's own
thread. What each span is called and carries is `otel_attributes`'s; this module only
emits: tracer, parents, ids, times, status, events and metrics.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, TypedDict, Unpack

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram, MeterProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter as SdkSpanExporter
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

from lcel_trace.export import DEFAULT_MAX_QUEUE, BaseExporter, ExporterCapabilities
from lcel_trace.otel_context import span_id_of
from lcel_trace.span import Span, SpanNode, TraceEnd, TraceEvent, TraceStart, span_tree

from .otel_attributes import (
    SESSION_KEYS,
    USER_KEYS,
    AttributeOptions,
    Attributes,
    TraceAttributes,
    metric_attributes,
    span_attributes,
    span_kind,
)
from .otel_attributes import span_name as _span_name


@dataclass
class _PendingTrace:
    start: TraceStart | None = None
    spans: list[Span] = field(default_factory=list)
    chunks: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)


class MappingOptions(TypedDict, total=False):
    """`OtelTraceMapping`'s options, which its subclasses take as keywords too."""

    max_attr_chars: int
    capture_content: bool
    chunk_events: bool
    max_chunk_events: int
    conventions: Iterable[str]
    max_queue: int
    session_keys: Iterable[str]
    user_keys: Iterable[str]


class OtelTraceMapping(BaseExporter):
    """What `OtelExporter` and `OtlpJsonExporter` share: a trace's spans kept until its
    end, then planned parents-first (`planned`) as OpenTelemetry spans: name, kind,
    attributes, events, status; each subclass emits the plan its own way (`_emit`).
    Its options (`MappingOptions`) are `OtelExporter`'s, documented there."""

    def __init__(
        self,
        *,
        max_attr_chars: int = 4096,
        capture_content: bool = True,
        chunk_events: bool = False,
        max_chunk_events: int = 128,
        conventions: Iterable[str] = ("gen_ai",),
        max_queue: int = DEFAULT_MAX_QUEUE,
        session_keys: Iterable[str] = SESSION_KEYS,
        user_keys: Iterable[str] = USER_KEYS,
    ) -> None:
        super().__init__()
        options = AttributeOptions(  # checks the options before anything else is set up
            conventions=frozenset(conventions),
            capture_content=capture_content,
            session_keys=_keys(session_keys, "session_keys"),
            user_keys=_keys(user_keys, "user_keys"),
        )
        if max_attr_chars < 1:
            raise ValueError(f"max_attr_chars must be positive, got {max_attr_chars}")
        self.max_attr_chars = max_attr_chars
        self.capture_content = capture_content
        self.chunk_events = chunk_events
        self.max_chunk_events = max_chunk_events
        # spans, trace boundaries, and with chunk_events every run's stream records
        self.capabilities = ExporterCapabilities(
            receives="records", chunks="all" if chunk_events else "none", max_queue=max_queue
        )
        self.conventions = options.conventions
        self.session_keys = options.session_keys
        self.user_keys = options.user_keys
        self._pending: dict[str, _PendingTrace] = defaultdict(_PendingTrace)
        self._cached_options: tuple[tuple[Any, ...], AttributeOptions] | None = None

    # -- records from the processor -----------------------------------------------------

    def on_trace_start(self, start: TraceStart) -> None:
        self._pending[start.trace_id].start = start

    def on_event(self, event: TraceEvent) -> None:
        if self.chunk_events and event.kind == "stream":
            buffer = self._pending[event.trace_id].chunks.setdefault(event.run_id, [])
            room = self.max_chunk_events - len(buffer)
            buffer.extend(tuple(pair) for pair in event.data.get("chunks", ())[: max(room, 0)])

    def export(self, spans: Sequence[Span]) -> None:
        for span in spans:
            self._pending[span.trace_id].spans.append(span)

    def on_trace_end(self, end: TraceEnd) -> None:
        pending = self._pending.pop(end.trace_id, None)
        if pending is not None and pending.spans:
            self._emit(pending)

    def _emit(self, pending: _PendingTrace) -> None:
        raise NotImplementedError

    # -- the plan --------------------------------------------------------------------------

    def planned(self, pending: _PendingTrace) -> Iterator[PlannedSpan]:
        """One trace's spans as OpenTelemetry spans, parents before children."""
        start = pending.start
        tree = span_tree(pending.spans, start.root_run_id if start else None)
        mapping = TraceAttributes(self._options(), self._trace_limit(start), tree.span.metadata)
        trace_name = start.name if start else None
        chunks = pending.chunks
        stack: list[tuple[SpanNode, SpanNode | None]] = [(tree, None)]
        while stack:
            node, parent = stack.pop()
            span = node.span
            workflow = (trace_name or span.name) if parent is None else None
            attributes = mapping.span(span, workflow)
            if span.status == "ok" and not span.events and not chunks:
                events, status = _NO_EVENTS, _OK  # most spans
            else:
                events, status = _outcome(span, chunks.get(span.span_id, ()), mapping)
            if span.status == "error":
                attributes["error.type"] = span.error.type if span.error else "Error"
            yield PlannedSpan(
                node,
                parent,
                _span_name(span, workflow),
                span_kind(span),
                attributes,
                events,
                status,
            )
            if node.children:
                stack.extend([(child, node) for child in node.children])

    def _options(self) -> AttributeOptions:
        """The mapping's options as this exporter's attributes say now (read once a trace;
        built again only when one of them was changed)."""
        key = (self.conventions, self.capture_content, self.session_keys, self.user_keys)
        cached = self._cached_options
        if cached is None or cached[0] != key:
            options = AttributeOptions(
                conventions=frozenset(self.conventions),
                capture_content=self.capture_content,
                session_keys=tuple(self.session_keys),
                user_keys=tuple(self.user_keys),
            )
            # the key holds copies: a list changed in place is a change too
            key = (options.conventions, key[1], options.session_keys, options.user_keys)
            self._cached_options = cached = (key, options)
        return cached[1]

    def _trace_limit(self, start: TraceStart | None) -> int:
        """The longest attribute text for one trace: ours, or the traced runnable's if lower."""
        theirs = start.max_attr_chars if start else None
        return min(self.max_attr_chars, theirs) if theirs else self.max_attr_chars

    def span_name(self, span: Span, workflow: str | None = None) -> str:
        """`chat {model}`, `text_completion {model}`, `execute_tool {tool}`, a root chain's
        `invoke_workflow {name}`, else the run name."""
        return _span_name(span, workflow)

    def attributes(self, span: Span, workflow: str | None = None) -> Attributes:
        """The attributes of one span as this exporter maps it, cut to `max_attr_chars`.

        `workflow` is given for a trace's root: the `trace(name=...)`, else its run name."""
        return span_attributes(span, self._options(), limit=self.max_attr_chars, workflow=workflow)


class PlannedSpan(NamedTuple):
    """One OpenTelemetry span to make: for `node.span`, under `parent` (None: the trace's
    root, under the OpenTelemetry span active when the call started, if any). A tuple:
    one is made per span on the exporter's thread, and never changed."""

    node: SpanNode
    parent: SpanNode | None
    name: str
    kind: SpanKind
    attributes: Attributes
    events: tuple[tuple[str, Attributes, int], ...]
    status: Status


_OK = Status(StatusCode.OK)
_NO_EVENTS: tuple[tuple[str, Attributes, int], ...] = ()
_UNSET = Status(StatusCode.UNSET)


def _outcome(
    span: Span, chunks: Iterable[tuple[int, Any]], mapping: TraceAttributes
) -> tuple[tuple[tuple[str, Attributes, int], ...], Status]:
    """A span's events (its own, its recorded chunks, the exception) and status."""
    events: list[tuple[str, Attributes, int]] = [
        (event.name, {"lcel.data": mapping.text(event.data)}, event.ts_ns) for event in span.events
    ]
    events.extend(("lcel.chunk", {"lcel.chunk": mapping.text(chunk)}, ts) for ts, chunk in chunks)
    if span.status == "error":
        error_type = span.error.type if span.error else "Error"
        message = span.error.message if span.error else ""
        exception: Attributes = {"exception.type": error_type, "exception.message": message}
        events.append(("exception", exception, span.end_ns))
        return tuple(events), Status(StatusCode.ERROR, f"{error_type}: {message}")
    if span.status == "ok":
        return tuple(events), _OK
    return tuple(events), _UNSET


class OtelExporter(OtelTraceMapping):
    """Sends recorded spans to an OpenTelemetry `TracerProvider` (and metrics to a
    `MeterProvider` when given); works with any provider and the standard OTLP exporters.

    Content (`lcel.input`/`lcel.output`, and `gen_ai.input.messages` /
    `gen_ai.output.messages` on chat spans) is added only with `capture_content=True`,
    as JSON cut to `max_attr_chars` (or the traced runnable's `max_attr_chars` when lower).
    `chunk_events=True` records every run's stream chunks and adds each as a span event
    (at most `max_chunk_events` per span).
    `conventions=("gen_ai", "openinference")` adds OpenInference attributes too.
    The first of `session_keys` found in the run metadata (the root's, else the span's
    own) becomes `gen_ai.conversation.id` on every span, and with OpenInference also
    `session.id`; the first of `user_keys` becomes OpenInference's `user.id`.
    The providers are yours: `shutdown()` flushes them but never shuts them down.
    `OtelExporter.around(sdk_exporter)` is the one exception (it owns its provider).

    While a traced run executes, its span (with the ids exported here) is OpenTelemetry's
    current span, so other instrumentations' spans nest under it (`sets_otel_context`).
    """

    sets_otel_context: ClassVar[bool] = True

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        meter_provider: MeterProvider | None = None,
        **options: Unpack[MappingOptions],
    ) -> None:
        super().__init__(**options)
        # Without an explicit provider, the global one is looked up when spans are
        # emitted: an exporter made before `set_tracer_provider` still uses the SDK's.
        self._explicit_provider = tracer_provider
        self._provider: Any = None
        self._tracer: Any = None
        self._trace_ids: _RecordedTraceIds | None = None
        self._use_provider(tracer_provider or otel_trace.get_tracer_provider())
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
        self._owned_provider: SdkTracerProvider | None = None

    @classmethod
    def around(cls, exporter: SdkSpanExporter, **options: Unpack[MappingOptions]) -> OtelExporter:
        """Spans for an OpenTelemetry SDK `SpanExporter` (`ConsoleSpanExporter`,
        `OTLPSpanExporter`, ...): a `TracerProvider` of this exporter's own (resource from
        the `OTEL_*` environment) sends them through a `BatchSpanProcessor`. What
        `trace(exporters=[sdk_exporter])` does for you; `shutdown()` shuts that provider,
        and so `exporter`, down. `options` are `OtelExporter`'s."""
        provider = SdkTracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        wrapper = cls(provider, **options)
        wrapper._owned_provider = provider
        return wrapper

    def _use_provider(self, provider: Any) -> None:
        if provider is self._provider:
            return
        self._provider = provider
        self._tracer = provider.get_tracer("lcel-trace")
        self._trace_ids = _RecordedTraceIds.install(self._tracer)

    def _flush(self, timeout_s: float | None) -> bool:
        if self._explicit_provider is None:
            self._use_provider(otel_trace.get_tracer_provider())
        flush = getattr(self._provider, "force_flush", None)  # the API's provider has none
        if flush is None:
            return True
        if timeout_s is None:
            return bool(flush())
        return bool(flush(max(1, int(timeout_s * 1000))))  # the SDK counts milliseconds

    def _close(self) -> None:
        if self._owned_provider is not None:
            self._owned_provider.shutdown()

    # -- building OpenTelemetry spans ------------------------------------------------------

    def _emit(self, pending: _PendingTrace) -> None:
        if self._explicit_provider is None:
            self._use_provider(otel_trace.get_tracer_provider())
        start = pending.start
        root_context = self._root_context(start)
        contexts: dict[int, Context] = {}
        ids, start_span = self._trace_ids, self._tracer.start_span
        metrics = self._record_metrics if self._histograms else None
        for plan in self.planned(pending):
            span = plan.node.span
            if ids is not None:  # used by the next line: the ids the run had while it ran
                trace_id = None
                if plan.parent is None and start is not None and start.otel_parent_span_id is None:
                    trace_id = int(start.trace_id, 16)
                ids.expect(_span_id(span.span_id), trace_id)
            otel_span = start_span(
                plan.name,
                context=root_context if plan.parent is None else contexts[id(plan.parent)],
                kind=plan.kind,
                attributes=plan.attributes,
                start_time=span.start_ns,
            )
            for name, attributes, ts_ns in plan.events:
                otel_span.add_event(name, attributes, timestamp=ts_ns)
            otel_span.set_status(plan.status)
            otel_span.end(end_time=span.end_ns)
            if plan.node.children:
                contexts[id(plan.node)] = otel_trace.set_span_in_context(otel_span, Context())
            if metrics is not None:
                metrics(span)

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

    def _record_metrics(self, span: Span) -> None:
        attrs = metric_attributes(span) if self._histograms else None
        if attrs is None:
            return
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


def _span_id(run_id: str) -> int:
    """`span_id_of(run_id)`, read straight from a canonical UUID's text (its last 16 hex
    digits, without the dash) rather than through a `UUID` object."""
    if len(run_id) == 36 and run_id[8] == run_id[13] == run_id[18] == run_id[23] == "-":
        digits = run_id[19:23] + run_id[24:]
        if digits.isascii() and digits.isalnum():  # int() would take a sign or a "_"
            try:
                return int(digits, 16) or 1
            except ValueError:
                pass
    return span_id_of(run_id)


def _keys(keys: Iterable[str], name: str) -> tuple[str, ...]:
    if isinstance(keys, str):
        raise ValueError(f"{name} takes a sequence of metadata keys: {name}=({keys!r},)")
    return tuple(keys)


class _RecordedTraceIds(IdGenerator):
    """An SDK tracer's id generator that gives a span the ids its run had while it ran
    (`lcel_trace.otel_context`): the root the trace id, every span its run's span id.

    The SDK hands every `get_tracer("lcel-trace")` of a provider the same `Tracer`, so
    the exporters sharing a provider share one of these (installed once), each emitting
    on a thread of its own: the ids asked for next are kept per thread.
    """

    def __init__(self, inner: IdGenerator) -> None:
        self.inner = inner
        self._next = threading.local()

    @classmethod
    def install(cls, tracer: object) -> _RecordedTraceIds | None:
        if not isinstance(tracer, SdkTracer):
            return None  # another SDK, or no SDK: its own ids, lcel.trace_id still says ours
        with _INSTALLING:
            if isinstance(tracer.id_generator, cls):
                return tracer.id_generator
            ids = cls(tracer.id_generator)
            tracer.id_generator = ids
            return ids

    def expect(self, span_id: int, trace_id: int | None = None) -> None:
        """The ids of the span this thread starts next (and its trace's, for a root)."""
        self._next.span_id = span_id
        self._next.trace_id = trace_id

    def generate_span_id(self) -> int:
        span_id: int | None = getattr(self._next, "span_id", None)
        if span_id is None:
            return self.inner.generate_span_id()
        self._next.span_id = None
        return span_id

    def generate_trace_id(self) -> int:
        trace_id: int | None = getattr(self._next, "trace_id", None)
        if trace_id is None:
            return self.inner.generate_trace_id()
        self._next.trace_id = None
        return trace_id

    def is_trace_id_random(self) -> bool:
        # lcel-trace's own ids are random; for the others the inner generator knows
        return bool(getattr(self.inner, "is_trace_id_random", lambda: False)())


_INSTALLING = threading.Lock()
