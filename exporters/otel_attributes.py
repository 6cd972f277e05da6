"""How one recorded `Span` reads in OpenTelemetry: its name, kind and attributes.

Pure functions of a span and the trace it belongs to, with no SDK objects: the GenAI
semantic conventions always, OpenInference's on request, and lcel-trace's own `lcel.*`;
`TraceAttributes` maps one trace's spans, encoding each content value once.
`OtelExporter` turns what they return into SDK spans; anything else that speaks
OpenTelemetry attributes can use them too. Text is JSON cut to the trace's limit with
`lcel_trace.serialize.truncate`, so every cut ends in the same visible marker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from lcel_trace.cost import span_cost
from lcel_trace.json_text import dumps_text
from lcel_trace.serialize import to_jsonable, truncate
from lcel_trace.span import Span

from .genai_messages import GenAIMessage, input_messages, openinference_attributes, output_messages

Attributes = dict[str, AttributeValue]
_Messages = tuple[list[GenAIMessage] | None, list[GenAIMessage] | None]  # input, output

CONVENTIONS = frozenset(("gen_ai", "openinference"))
# GenAI operation per run type (OpenTelemetry GenAI semantic conventions).
OPERATION = {"chat_model": "chat", "llm": "text_completion", "tool": "execute_tool"}
MODEL_RUN_TYPES = frozenset(("chat_model", "llm"))
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
# A root of these types is the GenAI conventions' workflow: `invoke_workflow {name}`.
WORKFLOW_RUN_TYPES = frozenset(("chain", "lambda", "custom"))
# Run metadata keys that name a conversation and a user (first one present wins).
SESSION_KEYS = ("session_id", "thread_id", "conversation_id")
USER_KEYS = ("user_id",)


@dataclass(frozen=True, slots=True)
class AttributeOptions:
    """What an exporter decides once: conventions, content, and which metadata keys
    name a session and a user. The limit is per trace, so it is passed on each call."""

    conventions: frozenset[str] = frozenset(("gen_ai",))
    capture_content: bool = True
    session_keys: tuple[str, ...] = SESSION_KEYS
    user_keys: tuple[str, ...] = USER_KEYS

    def __post_init__(self) -> None:
        unknown = set(self.conventions) - CONVENTIONS
        if unknown:
            raise ValueError(f"unknown conventions {sorted(unknown)}; use {sorted(CONVENTIONS)}")
        for name in ("session_keys", "user_keys"):
            keys = getattr(self, name)
            if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
                raise ValueError(f"{name} must be a sequence of metadata keys, got {keys!r}")


def span_name(span: Span, workflow: str | None = None) -> str:
    """`chat {model}`, `text_completion {model}`, `execute_tool {tool}`, a root chain's
    `invoke_workflow {name}` (`workflow` is given for a trace's root), else the run name."""
    if workflow and span.run_type in WORKFLOW_RUN_TYPES:
        return f"invoke_workflow {workflow}"
    operation = OPERATION.get(span.run_type)
    if operation == "execute_tool":
        return f"execute_tool {span.name}"
    if operation is not None:
        model = span.attributes.get("request_model") or span.model
        return f"{operation} {model}" if model else operation
    return span.name


def span_kind(span: Span) -> SpanKind:
    """CLIENT for a model call (the GenAI conventions' choice), INTERNAL otherwise."""
    return SpanKind.CLIENT if span.run_type in MODEL_RUN_TYPES else SpanKind.INTERNAL


def text(value: Any, limit: int) -> str:
    """`value` as attribute text: a string as it is, anything else as JSON; cut to `limit`."""
    raw = value if isinstance(value, str) else dumps_text(to_jsonable(value))
    return truncate(raw, limit)


def metadata_id(sources: Iterable[Mapping[str, Any]], keys: Iterable[str]) -> str | None:
    """The first usable value of `keys` in the first source that has one, as a string.

    Strings (non-empty), integers and UUIDs name a session or user; anything else does not."""
    keys = tuple(keys)
    for metadata in sources:
        for key in keys:
            value = metadata.get(key)
            if isinstance(value, bool):
                continue
            if isinstance(value, (int, uuid.UUID)) or (isinstance(value, str) and value):
                return str(value)
    return None


def span_attributes(
    span: Span,
    options: AttributeOptions,
    *,
    limit: int,
    workflow: str | None = None,
    root_metadata: Mapping[str, Any] | None = None,
) -> Attributes:
    """The attributes of one span, GenAI conventions first, then lcel's own.

    `limit` is this trace's longest attribute text; `workflow` is given for a trace's
    root (the `trace(name=...)`, else its run name); `root_metadata` is the trace root's
    run metadata, read first for the session and user ids, the span's own after it."""
    return TraceAttributes(options, limit, root_metadata).span(span, workflow)


class TraceAttributes:
    """`span_attributes` for the spans of one trace: what is the same for all of them
    (options, limit, the root's session and user ids) is worked out once, and each
    content value is JSON-encoded once however many spans carry it (a model's output
    message is the next step's input: the same object)."""

    __slots__ = (
        "_capture",
        "_limit",
        "_openinference",
        "_options",
        "_root_session",
        "_root_user",
        "_texts",
    )

    def __init__(
        self,
        options: AttributeOptions,
        limit: int,
        root_metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._options = options
        self._limit = limit
        self._capture = options.capture_content
        self._openinference = "openinference" in options.conventions
        # the root's metadata is read first for every span: its answer, when it has one,
        # is every span's
        root = (root_metadata,) if root_metadata else ()
        self._root_session = metadata_id(root, options.session_keys)
        self._root_user = metadata_id(root, options.user_keys) if self._openinference else None
        # id -> (the value, its text): the entry holds the value, so its id stays its own
        self._texts: dict[int, tuple[Any, str]] = {}

    def text(self, value: Any) -> str:
        """`text(value, limit)`, encoded once per value object in this trace."""
        if isinstance(value, str):
            return truncate(value, self._limit)
        known = self._texts.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        encoded = truncate(dumps_text(to_jsonable(value)), self._limit)
        self._texts[id(value)] = (value, encoded)
        return encoded

    def span(self, span: Span, workflow: str | None = None) -> Attributes:
        """One span's attributes (`span_attributes`), in the same order."""
        limit = self._limit
        run_type = span.run_type
        attrs: Attributes = {
            "lcel.run_name": span.name,
            "lcel.run_type": run_type,
            "lcel.run_id": span.span_id,
            "lcel.trace_id": span.trace_id,
            "lcel.status": span.status,
        }
        if span.parent_id:
            attrs["lcel.parent_run_id"] = span.parent_id
        if span.tags:
            attrs["lcel.tags"] = list(span.tags)
        metadata = span.metadata
        if metadata:
            for key, value in metadata.items():
                if type(value) is str:
                    attrs[f"lcel.metadata.{key}"] = truncate(value, limit)
                elif isinstance(value, (bool, int, float)):
                    attrs[f"lcel.metadata.{key}"] = value
                else:
                    attrs[f"lcel.metadata.{key}"] = self.text(value)
        if span.chunk_count:
            attrs["lcel.chunk_count"] = span.chunk_count
        operation = "retrieval" if run_type == "retriever" else OPERATION.get(run_type)
        if workflow:
            if run_type in WORKFLOW_RUN_TYPES:
                operation = "invoke_workflow"
                attrs["gen_ai.workflow.name"] = workflow
            attrs["lcel.trace_name"] = workflow
        if operation is not None:
            attrs["gen_ai.operation.name"] = operation
        session = self._root_session
        if session is None and metadata:
            session = metadata_id((metadata,), self._options.session_keys)
        if session is not None:
            attrs["gen_ai.conversation.id"] = truncate(session, limit)
        if run_type in MODEL_RUN_TYPES:
            _model_attributes(span, span.attributes, attrs, limit)
        elif run_type == "tool":
            attrs["gen_ai.tool.name"] = span.name
            call_id = span.attributes.get("tool_call_id")
            if call_id:
                attrs["gen_ai.tool.call.id"] = str(call_id)
        error = span.error
        if error is not None and span.status == "error":
            attrs["error.type"] = error.type
        messages: _Messages = (None, None)
        if self._capture:
            if run_type == "chat_model":
                messages = _messages(span, limit)
            if span.inputs is not None:
                attrs["lcel.input"] = self.text(span.inputs)
            if span.outputs is not None:
                attrs["lcel.output"] = self.text(span.outputs)
            inputs, outputs = messages
            if inputs:
                attrs["gen_ai.input.messages"] = dumps_text(inputs)
            if outputs:
                attrs["gen_ai.output.messages"] = dumps_text(outputs)
        if self._openinference:
            _openinference_attributes(span, attrs, messages)
            if session is not None:
                attrs["session.id"] = truncate(session, limit)
            user = self._root_user
            if user is None and metadata:
                user = metadata_id((metadata,), self._options.user_keys)
            if user is not None:
                attrs["user.id"] = truncate(user, limit)
        return attrs


def metric_attributes(span: Span) -> Attributes | None:
    """The attributes of a model call's GenAI client metrics; None for other spans."""
    if span.run_type not in MODEL_RUN_TYPES:
        return None
    attrs: Attributes = {"gen_ai.operation.name": OPERATION[span.run_type]}
    if span.attributes.get("provider"):
        attrs["gen_ai.provider.name"] = str(span.attributes["provider"])
    if span.attributes.get("request_model"):
        attrs["gen_ai.request.model"] = str(span.attributes["request_model"])
    if span.status == "error" and span.error is not None:
        attrs["error.type"] = span.error.type
    return attrs


def _model_attributes(span: Span, facts: Mapping[str, Any], attrs: Attributes, limit: int) -> None:
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
            attrs[name] = _scalar(value, limit)
    if span.usage is not None:
        if span.usage.input_tokens is not None:
            attrs["gen_ai.usage.input_tokens"] = span.usage.input_tokens
        if span.usage.output_tokens is not None:
            attrs["gen_ai.usage.output_tokens"] = span.usage.output_tokens
    ttft = span.time_to_first_chunk_ns
    if ttft is not None:
        attrs["gen_ai.request.stream"] = True
        attrs["gen_ai.response.time_to_first_chunk"] = ttft / 1e9
    cost = span_cost(span)  # None without genai-prices, or for an unknown model
    if cost is not None:
        attrs["llm.cost.prompt"] = cost.input_usd
        attrs["llm.cost.completion"] = cost.output_usd
        attrs["llm.cost.total"] = cost.total_usd
        attrs["lcel.cost.source"] = cost.source


def _messages(span: Span, limit: int) -> _Messages:
    finish_reason = span.attributes.get("finish_reason")
    return (
        input_messages(span.inputs, limit),
        output_messages(span.outputs, str(finish_reason or "") or None, limit),
    )


def _openinference_attributes(span: Span, attrs: Attributes, messages: _Messages) -> None:
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


def _scalar(value: Any, limit: int) -> AttributeValue:
    if isinstance(value, (bool, int, float)):
        return value
    return text(value, limit)
