"""The normaliser: v2-shaped events in, finished spans out.

`SpanAssembler` is pure bookkeeping with no I/O and no clock of its own: every event
carries its timestamp. It is fed live by the recorder and, from a file, by the
replay reader, so both build spans the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage

from lcel_trace.redact import Redactor
from lcel_trace.serialize import qualified_name
from lcel_trace.span import (
    EventKind,
    RunType,
    Span,
    SpanError,
    SpanEvent,
    Status,
    TraceEvent,
    Usage,
)

# v2 event family -> span run type. Families not listed here become "custom".
FAMILY_RUN_TYPE: Mapping[str, RunType] = {
    "chain": "chain",
    "prompt": "prompt",
    "parser": "parser",
    "chat_model": "chat_model",
    "llm": "llm",
    "tool": "tool",
    "retriever": "retriever",
}
# v2 event phase -> normalised event kind.
PHASE_KIND: Mapping[str, EventKind] = {
    "start": "start",
    "stream": "stream",
    "end": "end",
    "error": "error",
}
# Request parameters worth keeping from a model's invocation params.
REQUEST_PARAMS = (
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    "stop",
    "seed",
    "n",
)

# Chunks kept per aggregated run, so a run that never ends can still show its output;
# beyond this the output of an unfinished run is cut short (memory stays bounded).
MAX_AGGREGATED_CHUNKS = 10_000

# Wall-clock nanoseconds from a monotonic source, so spans never run backwards.
# (Per-chunk paths inline `EPOCH_OFFSET_NS + time.perf_counter_ns()`: one call less.)
EPOCH_OFFSET_NS = time.time_ns() - time.perf_counter_ns()


def now_ns() -> int:
    return EPOCH_OFFSET_NS + time.perf_counter_ns()


def run_type_of(family: str, name: str, name_run_types: Mapping[str, RunType]) -> RunType:
    """The span run type for a v2 event family; chains known (by name) to be lambdas or
    user-defined runnables get "lambda" or "custom"."""
    run_type = FAMILY_RUN_TYPE.get(family, "custom")
    if run_type == "chain":
        return name_run_types.get(name, "chain")
    return run_type


def split_event_name(event: str) -> tuple[str, str]:
    """`on_chat_model_stream` -> (`chat_model`, `stream`)."""
    body = event[3:] if event.startswith("on_") else event
    family, _, phase = body.rpartition("_")
    return family, phase


def normalise(
    raw: Mapping[str, Any],
    trace_id: str,
    ts_ns: int,
    name_run_types: Mapping[str, RunType] | None = None,
) -> TraceEvent:
    """One raw `astream_events(version="v2")` event as a `TraceEvent`."""
    event = str(raw["event"])
    name = str(raw.get("name", ""))
    data = raw.get("data") or {}
    if event == "on_custom_event":
        kind: EventKind = "custom"
        run_type: RunType = "custom"
    else:
        family, phase = split_event_name(event)
        kind = PHASE_KIND.get(phase, "custom")
        run_type = run_type_of(family, name, name_run_types or {})
        if kind == "stream" and "chunk" in data:
            data = {"chunks": [[ts_ns, data["chunk"]]]}
    return TraceEvent(
        trace_id=trace_id,
        kind=kind,
        event=event,
        run_id=str(raw["run_id"]),
        parent_ids=tuple(raw.get("parent_ids") or ()),
        name=name,
        run_type=run_type,
        tags=tuple(raw.get("tags") or ()),
        metadata=dict(raw.get("metadata") or {}),
        data=dict(data),
        ts_ns=ts_ns,
    )


@dataclass(slots=True)
class _SpanBuilder:
    """A span still running: the mutable counterpart of `Span`."""

    run_id: str
    parent_id: str | None
    name: str
    run_type: RunType
    start_ns: int
    tags: tuple[str, ...]
    metadata: Mapping[str, Any]
    inputs: Any = None
    has_inputs: bool = False
    chunk_count: int = 0
    first_chunk_ns: int | None = None
    chunks: list[Any] | None = None
    events: list[SpanEvent] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


class SpanAssembler:
    """Turns the events of one trace into `Span`s, closing every span exactly once.

    `feed` returns the span an end or error event finishes; `abort` closes whatever is
    still open (innermost first) when the run raised, was cancelled or never ended.
    """

    def __init__(
        self,
        trace_id: str,
        *,
        redactor: Redactor | None = None,
        root_parent_id: str | None = None,
        aggregate_runs: Iterable[str] = (),
    ) -> None:
        self.trace_id = trace_id
        self._redactor = redactor or Redactor()
        self._root_parent_id = root_parent_id
        self._open: dict[str, _SpanBuilder] = {}
        self._closed: set[str] = set()
        self._aggregate = set(aggregate_runs)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def is_open(self, run_id: str) -> bool:
        return run_id in self._open

    def aggregate(self, run_id: str) -> None:
        """Keep this run's chunks, so its output is known even if it never ends."""
        self._aggregate.add(run_id)

    def feed(self, event: TraceEvent) -> Span | None:
        """Apply one event; return the span it finished, if any."""
        kind = event.kind
        if kind == "start":
            self._start(event)
            return None
        if kind == "stream":
            for ts, chunk in event.data.get("chunks", ()):
                self.chunk(event.run_id, ts, chunk)
            return None
        if kind == "custom":
            builder = self._open.get(event.run_id)
            if builder is not None:
                builder.events.append(
                    SpanEvent(event.name, event.ts_ns, self._redactor.content(event.data))
                )
            return None
        if kind == "end":
            return self._end(event)
        if kind == "error":
            return self._fail(event)
        return None

    def chunk(self, run_id: str, ts_ns: int, chunk: Any) -> None:
        """Count one streamed chunk (the hot path: no allocation unless aggregating)."""
        builder = self._open.get(run_id)
        if builder is None:
            return
        if builder.first_chunk_ns is None:
            builder.first_chunk_ns = ts_ns
        builder.chunk_count += 1
        if builder.chunks is not None and len(builder.chunks) < MAX_AGGREGATED_CHUNKS:
            builder.chunks.append(chunk)

    def abort(
        self, status: Status, error: BaseException | SpanError | None, ts_ns: int
    ) -> list[Span]:
        """Close every open span, innermost (latest started) first."""
        span_error = self._span_error(error) if error is not None else None
        finished = []
        for run_id in sorted(self._open, key=lambda r: self._open[r].start_ns, reverse=True):
            builder = self._open[run_id]
            builder.attributes["closed_at_trace_end"] = True
            outputs = _aggregate(builder.chunks) if builder.chunks else None
            finished.append(self._finish(builder, ts_ns, status, span_error, outputs))
        return finished

    def _start(self, event: TraceEvent) -> None:
        run_id = event.run_id
        if run_id in self._open or run_id in self._closed:
            return
        parent_id = event.parent_ids[-1] if event.parent_ids else self._root_parent_id
        data = event.data
        builder = _SpanBuilder(
            run_id=run_id,
            parent_id=parent_id,
            name=event.name,
            run_type=event.run_type,
            start_ns=event.ts_ns,
            tags=event.tags,
            metadata=event.metadata,
        )
        if "input" in data:
            builder.inputs = data["input"]
            builder.has_inputs = True
        if run_id in self._aggregate:
            builder.chunks = []
        if event.run_type in ("chat_model", "llm"):
            builder.attributes.update(_request_facts(event.metadata, data))
        if data.get("parent_inferred"):
            builder.attributes["parent_inferred"] = True
        if event.run_type == "tool" and data.get("tool_call_id"):
            builder.attributes["tool_call_id"] = data["tool_call_id"]
        self._open[run_id] = builder

    def _closing(self, event: TraceEvent) -> _SpanBuilder | None:
        """The open span an end or error event closes, given the inputs that streamed
        steps only report at their end."""
        builder = self._open.get(event.run_id)
        if builder is not None and not builder.has_inputs and "input" in event.data:
            builder.inputs = event.data["input"]
            builder.has_inputs = True
        return builder

    def _end(self, event: TraceEvent) -> Span | None:
        builder = self._closing(event)
        if builder is None:
            return None
        output = event.data.get("output")
        usage = None
        if builder.run_type in ("chat_model", "llm"):
            usage = _response_facts(output, builder.attributes)
        return self._finish(builder, event.ts_ns, "ok", None, output, usage)

    def _fail(self, event: TraceEvent) -> Span | None:
        builder = self._closing(event)
        if builder is None:
            return None
        error = event.data.get("error")
        status: Status = "cancelled" if _is_cancellation(error) else "error"
        span_error = self._span_error(error) if status == "error" else None
        outputs = _aggregate(builder.chunks) if builder.chunks else None
        return self._finish(builder, event.ts_ns, status, span_error, outputs)

    def _finish(
        self,
        builder: _SpanBuilder,
        end_ns: int,
        status: Status,
        error: SpanError | None,
        outputs: Any,
        usage: Usage | None = None,
    ) -> Span:
        del self._open[builder.run_id]
        self._closed.add(builder.run_id)
        redactor = self._redactor
        attributes = builder.attributes
        model = attributes.get("response_model") or attributes.get("request_model")
        return Span(
            trace_id=self.trace_id,
            span_id=builder.run_id,
            parent_id=builder.parent_id,
            name=builder.name,
            run_type=builder.run_type,
            start_ns=builder.start_ns,
            end_ns=max(end_ns, builder.start_ns),
            status=status,
            error=error,
            inputs=redactor.content(builder.inputs),
            outputs=redactor.content(outputs),
            tags=builder.tags,
            metadata=builder.metadata,
            chunk_count=builder.chunk_count,
            first_chunk_ns=builder.first_chunk_ns,
            usage=usage,
            model=model,
            events=tuple(builder.events),
            attributes=attributes,
        )

    def _span_error(self, error: object) -> SpanError:
        if isinstance(error, SpanError):
            return SpanError(error.type, self._redactor.text(error.message))
        if isinstance(error, BaseException):
            return SpanError(qualified_name(type(error)), self._redactor.text(str(error)))
        if isinstance(error, Mapping) and "error_type" in error:
            return SpanError(
                str(error["error_type"]), self._redactor.text(str(error.get("message", "")))
            )
        return SpanError("Error", self._redactor.text(str(error)))


def _is_cancellation(error: object) -> bool:
    import asyncio

    if isinstance(error, (GeneratorExit, asyncio.CancelledError)):
        return True
    if isinstance(error, Mapping):
        kind = str(error.get("error_type", ""))
        return kind in ("GeneratorExit", "asyncio.exceptions.CancelledError", "CancelledError")
    return False


def _aggregate(chunks: list[Any]) -> Any:
    """Join streamed chunks the way LangChain would (`+`), falling back to the list."""
    try:
        if all(isinstance(c, str) for c in chunks):
            return "".join(chunks)
        first, *rest = chunks
        return first + rest if rest and isinstance(first, BaseMessage) else _fold(first, rest)
    except Exception:
        return list(chunks)


def _fold(first: Any, rest: list[Any]) -> Any:
    total = first
    for chunk in rest:
        total = total + chunk
    return total


def _request_facts(metadata: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    params = data.get("invocation_params") or {}
    facts: dict[str, Any] = {}
    provider = metadata.get("ls_provider")
    if provider:
        facts["provider"] = provider
    model = metadata.get("ls_model_name") or params.get("model") or params.get("model_name")
    if model:
        facts["request_model"] = str(model)
    request = {key: params[key] for key in REQUEST_PARAMS if params.get(key) is not None}
    for ls_key, key in (("ls_temperature", "temperature"), ("ls_max_tokens", "max_tokens")):
        if key not in request and metadata.get(ls_key) is not None:
            request[key] = metadata[ls_key]
    if request:
        facts["request_params"] = request
    if params.get("stream") or params.get("streaming"):
        facts["stream"] = True
    return facts


def _response_facts(output: Any, facts: dict[str, Any]) -> Usage | None:
    """Record model name, finish reason and response id in `facts`; return token usage."""
    if isinstance(output, BaseMessage):
        meta = output.response_metadata or {}
        model = meta.get("model_name") or meta.get("model")
        if model:
            facts["response_model"] = str(model)
        reason = meta.get("finish_reason") or meta.get("stop_reason")
        if reason:
            facts["finish_reason"] = str(reason)
        response_id = meta.get("id") or output.id
        if response_id and not str(response_id).startswith(("run-", "lc_run-")):
            facts["response_id"] = str(response_id)
        if isinstance(output, AIMessage) and output.usage_metadata:
            um = output.usage_metadata
            return Usage(um.get("input_tokens"), um.get("output_tokens"), um.get("total_tokens"))
        return None
    if isinstance(output, Mapping):
        llm_output = output.get("llm_output") or {}
        generations = output.get("generations") or []
        if generations and generations[0]:
            info = cast("Mapping[str, Any]", generations[0][0].get("generation_info") or {})
            if info.get("finish_reason"):
                facts["finish_reason"] = str(info["finish_reason"])
        model = llm_output.get("model_name") or llm_output.get("model")
        if model:
            facts["response_model"] = str(model)
        usage = llm_output.get("token_usage") or llm_output.get("usage")
        if isinstance(usage, Mapping):
            return Usage(
                usage.get("prompt_tokens", usage.get("input_tokens")),
                usage.get("completion_tokens", usage.get("output_tokens")),
                usage.get("total_tokens"),
            )
    return None
