"""What a v2 event means: its family's run type, its phase, and the facts it carries.

Pure functions and tables shared by every producer and by the assembler: an
`astream_events(version="v2")` dict becomes a `TraceEvent`; a model's start and end
data become span facts (provider, model, request parameters, usage, finish reason).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage

from lcel_trace.span import EventKind, RunType, TraceEvent, Usage

__all__ = [
    "FAMILY_RUN_TYPE",
    "LIBRARY_PACKAGES",
    "PHASE_KIND",
    "REQUEST_PARAMS",
    "error_message",
    "fold_chunks",
    "has_content",
    "is_cancellation",
    "is_user_runnable",
    "normalise",
    "request_facts",
    "response_facts",
    "run_type_of",
    "split_event_name",
]

FAMILY_RUN_TYPE: Mapping[str, RunType] = {
    "chain": "chain",
    "prompt": "prompt",
    "parser": "parser",
    "chat_model": "chat_model",
    "llm": "llm",
    "tool": "tool",
    "retriever": "retriever",
}
"""v2 event family -> span run type. Families not listed become "custom"."""

PHASE_KIND: Mapping[str, EventKind] = {
    "start": "start",
    "stream": "stream",
    "end": "end",
    "error": "error",
}
"""v2 event phase -> normalised event kind."""

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
"""Request parameters worth keeping from a model's invocation params."""

_CANCELLATION_TYPES = ("GeneratorExit", "asyncio.exceptions.CancelledError", "CancelledError")

LIBRARY_PACKAGES = ("langchain", "langgraph", "lcel_trace")
"""Packages (by module name prefix) whose runnables LangChain reports truthfully: a
LangGraph graph or node is a chain. A chain run from any other package is the user's own
`Runnable` subclass: "custom"."""


def is_user_runnable(runnable: object) -> bool:
    """Whether `runnable`'s chain runs are the user's own `Runnable` subclass ("custom")."""
    return not type(runnable).__module__.startswith(LIBRARY_PACKAGES)


def run_type_of(family: str, name: str, name_run_types: Mapping[str, RunType]) -> RunType:
    """The span run type for a v2 event family; chains known (by name) to be lambdas or
    user-defined runnables get "lambda" or "custom"."""
    run_type = FAMILY_RUN_TYPE.get(family, "custom")
    if run_type == "chain":
        return name_run_types.get(name, "chain")
    return run_type


@lru_cache(maxsize=256)
def split_event_name(event: str) -> tuple[str, str]:
    """`on_chat_model_stream` -> (`chat_model`, `stream`); a handful of names repeat."""
    body = event[3:] if event.startswith("on_") else event
    family, _, phase = body.rpartition("_")
    return family, phase


def normalise(
    raw: Mapping[str, Any],
    trace_id: str,
    ts_ns: int,
    name_run_types: Mapping[str, RunType] | None = None,
) -> TraceEvent:
    """One raw `astream_events(version="v2")` event as a `TraceEvent` stamped `ts_ns`."""
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
        parent_ids=tuple(str(p) for p in raw.get("parent_ids") or ()),
        name=name,
        run_type=run_type,
        tags=tuple(raw.get("tags") or ()),
        metadata=dict(raw.get("metadata") or {}),
        data=dict(data),
        ts_ns=ts_ns,
    )


def is_cancellation(error: object) -> bool:
    """True for a consumer that stopped or a cancelled task, live or as recorded."""
    if isinstance(error, (GeneratorExit, asyncio.CancelledError)):
        return True
    if isinstance(error, Mapping):
        return str(error.get("error_type", "")) in _CANCELLATION_TYPES
    return False


def error_message(error: BaseException) -> str:
    """`str(error)`, or a stand-in when the exception's own `__str__` raises."""
    try:
        return str(error)
    except Exception:
        return f"<{type(error).__name__}: message unavailable (its __str__ raised)>"


def has_content(chunk: Any) -> bool:
    """Whether a stream chunk carries something a reader sees: text, a tool-call delta,
    or any non-empty value (an empty role chunk or empty string does not)."""
    if isinstance(chunk, str):
        return bool(chunk)
    if isinstance(chunk, BaseMessage):
        return bool(chunk.content) or bool(getattr(chunk, "tool_call_chunks", None))
    text = getattr(chunk, "text", None)
    if isinstance(text, str) and hasattr(chunk, "generation_info"):
        return bool(text)
    if chunk is None:
        return False
    try:
        return bool(chunk)
    except Exception:
        return True


def fold_chunks(chunks: Sequence[Any]) -> Any:
    """Join streamed chunks the way LangChain does (`+`); the list itself if they don't add."""
    if not chunks:
        return None
    try:
        if all(isinstance(c, str) for c in chunks):
            return "".join(chunks)
        total = chunks[0]
        for chunk in chunks[1:]:
            total = total + chunk
        return total
    except Exception:
        return list(chunks)


def request_facts(metadata: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """Provider, requested model and request parameters from a model run's start."""
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
    return facts


def response_facts(output: Any, facts: dict[str, Any]) -> Usage | None:
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
