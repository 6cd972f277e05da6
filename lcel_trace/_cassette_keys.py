"""What makes two model requests the same request: the canonical form a cassette keys on.

Both sides are reduced to the same plain JSON: a recorded model run (its start event,
as every trace file holds it: scrubbed, serialised, read back) and a live call (scrubbed
by the same `Redactor`, passed through the same serialisation). So a redacted recording
matches a live call whose secrets it never saw, and nothing that the file could not
hold can make a request differ.

Keyed: the model (its LangChain type and model name), the messages (role, content,
name, tool calls with their ids and arguments, the tool call a tool result answers),
the bound tools with their schemas, and every other request parameter (temperature,
stop, response format, tool choice, seed, ...). Left out: message ids and response
metadata, and the parameters that only say how the answer travels (`VOLATILE_PARAMS`).
Tools are keyed on their name and input, retrievers on their name and query.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, ToolMessage

from lcel_trace.redact import Redactor
from lcel_trace.serialize import from_jsonable, to_jsonable

__all__ = [
    "VOLATILE_PARAMS",
    "Difference",
    "chat_request",
    "differences",
    "live_chat_request",
    "live_llm_request",
    "live_retriever_request",
    "live_tool_request",
    "llm_request",
    "request_key",
    "retriever_request",
    "tool_request",
]

VOLATILE_PARAMS = frozenset(
    {
        "_type",
        "model",
        "model_name",
        "model_id",
        "stream",
        "streaming",
        "stream_usage",
        "stream_options",
        "request_timeout",
        "timeout",
        "max_retries",
        "default_headers",
        "default_query",
        "http_client",
        "http_async_client",
        "base_url",
        "openai_api_base",
        "api_base",
        "openai_organization",
        "organization",
        "openai_proxy",
        "callbacks",
        "tags",
        "metadata",
        "verbose",
        "cache",
        "rate_limiter",
        "disable_streaming",
        "include_response_headers",
    }
)
"""Invocation parameters left out of the key: transport, streaming and bookkeeping
settings, which change how an answer travels but not what it says (the model's type
and name are keyed on their own)."""

_ABSENT = "<absent>"
RECORDED_MAX_CHARS = 1_000_000
"""`JsonlExporter`'s default `max_value_chars`: a live value is cut as the file's was,
so a request longer than that still matches its recording (a test keeps them equal)."""


def request_key(request: Mapping[str, Any]) -> str:
    """A short stable digest of a canonical request."""
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """JSON-only data (tuples as lists, anything else as its JSON-safe text)."""
    plain: dict[str, Any] = json.loads(json.dumps(value, sort_keys=True, default=repr))
    return plain


def _model(params: Mapping[str, Any], metadata: Mapping[str, Any], fallback: str) -> dict[str, Any]:
    kind = params.get("_type") or metadata.get("ls_provider") or fallback
    name = (
        params.get("model")
        or params.get("model_name")
        or params.get("model_id")
        or metadata.get("ls_model_name")
    )
    return {"type": str(kind), "name": None if name is None else str(name)}


def _params(params: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    tools = params.get("tools")
    rest = {
        str(k): v
        for k, v in params.items()
        if k not in VOLATILE_PARAMS and k != "tools" and v is not None
    }
    return tools, rest


def _role(message: BaseMessage) -> str:
    if isinstance(message, ChatMessage):
        return message.role
    kind = message.type
    return kind[: -len("MessageChunk")].lower() if kind.endswith("MessageChunk") else kind


def _message(message: Any) -> Any:
    if not isinstance(message, BaseMessage):
        return {"role": "unknown", "content": message}
    out: dict[str, Any] = {"role": _role(message), "content": message.content}
    if message.name:
        out["name"] = message.name
    if isinstance(message, AIMessage) and message.tool_calls:
        out["tool_calls"] = [
            {"name": call["name"], "args": call["args"], "id": call.get("id")}
            for call in message.tool_calls
        ]
    if isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
    return out


def chat_request(
    messages: Any, params: Mapping[str, Any], metadata: Mapping[str, Any], fallback_name: str
) -> dict[str, Any]:
    """The canonical form of a chat model request, from recorded (or recorded-like) parts."""
    tools, rest = _params(params)
    listed = messages if isinstance(messages, list) else [messages]
    request: dict[str, Any] = {
        "model": _model(params, metadata, fallback_name),
        "messages": [_message(m) for m in listed],
    }
    if tools:
        request["tools"] = tools
    request["params"] = rest
    return _plain(request)


def llm_request(
    prompt: Any, params: Mapping[str, Any], metadata: Mapping[str, Any], fallback_name: str
) -> dict[str, Any]:
    """The canonical form of a completion LLM request (one prompt)."""
    tools, rest = _params(params)
    request: dict[str, Any] = {"model": _model(params, metadata, fallback_name), "prompt": prompt}
    if tools:
        request["tools"] = tools
    request["params"] = rest
    return _plain(request)


def tool_request(name: str, tool_input: Any) -> dict[str, Any]:
    """The canonical form of a tool call: the tool's name and its input."""
    return _plain({"tool": name, "input": tool_input})


def retriever_request(name: str, query: Any) -> dict[str, Any]:
    """The canonical form of a retriever call: the retriever's name and the query."""
    return _plain({"retriever": name, "query": query})


def live_tool_request(name: str, tool_input: Any, redactor: Redactor) -> dict[str, Any]:
    """The canonical form of a tool call about to run."""
    return tool_request(name, _as_recorded(tool_input, redactor))


def live_retriever_request(name: str, query: str, redactor: Redactor) -> dict[str, Any]:
    """The canonical form of a retriever call about to run."""
    return retriever_request(name, _as_recorded(query, redactor))


def _as_recorded(value: Any, redactor: Redactor) -> Any:
    """`value` as a trace file would give it back: scrubbed, serialised, rebuilt."""
    return from_jsonable(to_jsonable(redactor.content(value), RECORDED_MAX_CHARS))


def live_chat_request(
    messages: list[BaseMessage],
    params: Mapping[str, Any],
    metadata: Mapping[str, Any],
    name: str,
    redactor: Redactor,
) -> dict[str, Any]:
    """The canonical form of a chat request about to be sent."""
    seen = _as_recorded({"messages": messages, "params": dict(params)}, redactor)
    return chat_request(seen["messages"], seen["params"], metadata, name)


def live_llm_request(
    prompt: str,
    params: Mapping[str, Any],
    metadata: Mapping[str, Any],
    name: str,
    redactor: Redactor,
) -> dict[str, Any]:
    """The canonical form of a completion request about to be sent."""
    seen = _as_recorded({"prompt": prompt, "params": dict(params)}, redactor)
    return llm_request(seen["prompt"], seen["params"], metadata, name)


# -- differences -------------------------------------------------------------------------


Difference = tuple[str, Any, Any]
"""(path, recorded value, value now): `messages[1].content`, 'Review case 1', 'Review case 2'."""


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def differences(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[Difference]:
    """Every leaf where two canonical requests differ, in the request's own order."""
    before = dict(_leaves(dict(recorded)))
    after = dict(_leaves(dict(now)))
    paths = list(before) + [p for p in after if p not in before]
    order = {path: i for i, path in enumerate(after)}
    found = [
        (path, before.get(path, _ABSENT), after.get(path, _ABSENT))
        for path in paths
        if before.get(path, _ABSENT) != after.get(path, _ABSENT)
    ]
    found.sort(key=lambda d: order.get(d[0], len(order)))
    return found
